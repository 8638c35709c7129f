package main

// Connection limits. Every connection costs the process a file descriptor, and so does every
// database file and socket. A node that runs out cannot accept a connection or open a file,
// and stops answering everyone (accept: too many open files). So the listener holds at most
// the descriptor limit less a reserve, and device waits (event streams and long polls, which
// last minutes) at most half of that, so that sign-ins always find a connection.

const (
	// fdReserve is kept for what is not a client connection: the database, its WAL, logs,
	// the mail outbox, PostgreSQL's pool.
	fdReserve = 256
	// maxDeviceWaits caps the derived limit of device waits where descriptors are plenty:
	// a wait costs memory too (docs/performance.md: about 10 KiB), and a node with more
	// devices than this should be one of several.
	maxDeviceWaits = 100_000
)

// connectionLimits returns how many connections the listener accepts at once and how many
// device waits the node holds, from the descriptor limit (0: unknown) and the configured
// push.max_connections (0: derived). A zero means no limit.
func connectionLimits(nofile uint64, configured int) (conns, waits int) {
	if nofile > 0 {
		reserve := min(fdReserve, nofile/4)
		conns = int(min(nofile-reserve, 1<<30))
	}
	waits = configured
	if waits == 0 && conns > 0 {
		waits = min(conns/2, maxDeviceWaits)
	}
	return conns, waits
}
