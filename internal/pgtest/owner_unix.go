//go:build unix

package pgtest

import (
	"os/exec"
	"syscall"
)

// owner is the user the server's programs run as (PostgreSQL refuses to run as root).
type owner struct{ uid, gid int }

// runAs makes cmd run as o; nil leaves it as this process's user.
func runAs(cmd *exec.Cmd, o *owner) {
	if o != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}}
	}
}
