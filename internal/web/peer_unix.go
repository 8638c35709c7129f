//go:build linux || darwin || freebsd || netbsd || openbsd

package web

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerClosed reports whether the client has closed its side of conn: a read that does not
// wait and takes nothing off the socket (MSG_PEEK) finds its end. Bytes waiting, nothing yet,
// or a connection that is not a socket of this process: false.
func peerClosed(conn net.Conn) bool {
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn() // a TLS close_notify comes first: seen as bytes, so false
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil
		return true // never wait for readiness
	})
	return closed
}
