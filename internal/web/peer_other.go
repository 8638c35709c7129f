//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package web

import "net"

// peerClosed cannot tell here; a stream's client that went away is noticed when a write
// fails.
func peerClosed(net.Conn) bool { return false }
