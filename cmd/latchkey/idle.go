package main

import (
	"net"
	"net/http"
	"sync"
)

// idleReaper closes idle keep-alive connections when the server holds many connections:
// an idle connection costs a descriptor and a place under the listener's limit for up to the
// server's IdleTimeout, so a client with no account could otherwise fill the limit with
// connections that made one request each, and every sign-in would wait. Past high open
// connections (hijacked device streams not counted: the hub limits those), each new
// connection closes the oldest idle one. Browsers and proxies reopen a closed keep-alive
// connection without an error.
type idleReaper struct {
	high int

	mu   sync.Mutex
	open int                 // connections in the server's hands (new, active, idle)
	seq  uint64              // counts the turns to idle: their order, without reading a clock
	idle map[net.Conn]uint64 // the idle ones, with the turn each became idle at
}

func newIdleReaper(high int) *idleReaper {
	return &idleReaper{high: high, idle: map[net.Conn]uint64{}}
}

// ConnState is the http.Server's ConnState hook.
func (r *idleReaper) ConnState(c net.Conn, st http.ConnState) {
	var victim net.Conn
	r.mu.Lock()
	switch st {
	case http.StateNew:
		r.open++
		if r.open > r.high {
			victim = r.oldestIdle()
		}
	case http.StateIdle:
		r.seq++
		r.idle[c] = r.seq
	case http.StateActive:
		delete(r.idle, c)
	case http.StateHijacked, http.StateClosed:
		delete(r.idle, c)
		r.open--
	}
	r.mu.Unlock()
	if victim != nil {
		victim.Close() // the server sees StateClosed
	}
}

// oldestIdle takes the longest-idle connection out of the set. r.mu is held. With many
// idle connections the scan is linear, but it runs only past the high mark, where the
// alternative is a server that stops answering.
func (r *idleReaper) oldestIdle() net.Conn {
	var oldest net.Conn
	var since uint64
	for c, t := range r.idle {
		if oldest == nil || t < since {
			oldest, since = c, t
		}
	}
	if oldest != nil {
		delete(r.idle, oldest)
	}
	return oldest
}
