//go:build !unix

package pgtest

import "os/exec"

// owner is the user the server's programs run as. Outside Unix there is no root to step
// down from (os.Geteuid is -1), so none is ever set.
type owner struct{ uid, gid int }

// runAs does nothing here: the programs run as this process's user.
func runAs(*exec.Cmd, *owner) {}
