package main

// Connection limits. Every connection costs the process a file descriptor, and so does every
// database file and socket. A node that runs out cannot accept a connection or open a file,
// and stops answering everyone (accept: too many open files). So the listener holds at most
// the descriptor limit less a reserve; device waits (event streams and long polls, which
// last minutes, and are most of a node's connections) at most three quarters of that, and
// never so many that fewer than 4,096 (or half, on a small limit) are left for the rest, so
// that sign-ins always find a connection; and idle keep-alive connections make room past
// half of what the device waits leave (idle.go).

const (
	// fdReserve is kept for what is not a client connection: the database, its WAL, logs,
	// the mail outbox, PostgreSQL's pool.
	fdReserve = 256
	// maxDeviceWaits caps the derived limit of device waits where descriptors are plenty:
	// a wait costs memory too (docs/performance.md: about 10 KiB), and a node with more
	// devices than this should be one of several.
	maxDeviceWaits = 100_000
	// minOtherConns is what derived device waits leave for browsers, proxies and API clients
	// at least, where the descriptor limit allows (a quarter, if more).
	minOtherConns = 4096
)

// connectionLimits returns how many connections the listener accepts at once, how many
// device waits the node holds, and the number of open connections past which a new one closes
// the oldest idle keep-alive connection, from the descriptor limit (0: unknown) and the
// configured push.max_connections (0: derived). A zero means no limit.
func connectionLimits(nofile uint64, configured int) (conns, waits, idleHigh int) {
	if nofile > 0 {
		reserve := min(fdReserve, nofile/4)
		conns = int(min(nofile-reserve, 1<<30))
	}
	waits = configured
	if waits == 0 && conns > 0 {
		others := max(conns/4, min(conns/2, minOtherConns))
		waits = min(conns-others, maxDeviceWaits)
	}
	if conns > 0 {
		// Device streams are hijacked and not the reaper's; what they leave is the others'.
		idleHigh = (conns - min(waits, conns*3/4)) / 2
	}
	return conns, waits, idleHigh
}
