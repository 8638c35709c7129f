package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"
)

// deviceEvents streams challenges to the device as Server-Sent Events: every pending one when
// the stream opens, then each new one the moment it is created. The stream ends when the
// device is removed or moved to another key, when a newer stream or long poll of the device
// or its user displaces it (push.WaitsPerDevice, push.WaitsPerUser), or after streamLife.
//
// A stream waits for minutes, and a node holds thousands of them, so what one costs while it
// waits is what matters (docs/performance.md). On HTTP/1.1 the connection is hijacked once
// the device is authenticated: the request's goroutine, whose stack grew deep in the
// signature check and the database, returns and frees that stack and the connection's read
// and write buffers; a new goroutine waits with a small stack, and the database checks run
// on short-lived goroutines of their own so that its stack stays small. The body is
// delimited by closing the connection (HTTP/1.1, Connection: close). Where hijacking is not
// possible (HTTP/2) the stream is served in the handler.
func (s *Server) deviceEvents(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, _ []byte) (any, error) {
	wait, err := s.waitDevice(u, d)
	if err != nil {
		return nil, err
	}
	st := &eventStream{s: s, d: d, u: u, sent: map[string]bool{}, sig: wait.C, displaced: wait.Displaced, unsubscribe: wait.Close}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			// A newer wait of the device ends this stream if its client closed the connection
			// (nothing reads it until a write fails).
			wait.SetAlive(func() bool { return !peerClosed(conn) })
			// The request context ends when the handler returns; the stream's own outlives it.
			ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
			go st.serveConn(ctx, cancel, conn, h.Clone())
			return nil, errWritten
		}
	}
	defer st.unsubscribe()
	return nil, st.serveHandler(r.Context(), w)
}

// eventStream is one device's open event stream.
type eventStream struct {
	s           *Server
	d           *latchkey.Device
	u           *latchkey.User
	sig         <-chan struct{}
	displaced   <-chan struct{} // a newer stream or long poll of the device or user took its place
	unsubscribe func()
	sent        map[string]bool // challenges already sent
}

// check reads the device's pending challenges and returns the events of those not sent yet,
// or ok false when the stream must end: the device is no longer active with this key, or the
// database cannot be read.
func (st *eventStream) check(ctx context.Context) (events []byte, ok bool) {
	chs, err := st.s.push.Pending(ctx, st.u, st.d)
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	for _, ch := range chs {
		if st.sent[ch.ID] {
			continue
		}
		st.sent[ch.ID] = true
		data, _ := json.Marshal(ch)
		fmt.Fprintf(&b, "event: %s\nid: %s\ndata: %s\n\n", deviceproto.EventChallenge, ch.ID, data)
	}
	return b.Bytes(), true
}

// checkAside is check on a goroutine of its own, which ends with it and takes the deep stack
// of the database calls along.
func (st *eventStream) checkAside(ctx context.Context) ([]byte, bool) {
	type result struct {
		events []byte
		ok     bool
	}
	c := make(chan result, 1)
	go func() {
		ev, ok := st.check(ctx)
		c <- result{ev, ok}
	}()
	r := <-c
	return r.events, r.ok
}

const streamPing = ": ping\n\n"

// gone reports whether a newer wait displaced the stream: it ends before it reads the
// database again (a flood of one device's streams costs no reads for those displaced).
func (st *eventStream) gone() bool {
	select {
	case <-st.displaced:
		return true
	default:
		return false
	}
}

// serveConn serves the stream on a hijacked connection and closes it at the end. A client
// that closed the connection is noticed at the next ping, where a peek at the socket finds
// its FIN (a write alone would succeed once more: it fails only after the client's reset),
// or when its device opens a new wait (DeviceWait.SetAlive), whichever comes first. One
// that vanished without a FIN (a phone off the network) holds its place until its device
// returns, the kernel gives up retransmitting, or the stream's life (streamLife) ends.
func (st *eventStream) serveConn(ctx context.Context, cancel context.CancelFunc, conn net.Conn, h http.Header) {
	defer conn.Close()
	defer cancel()
	defer st.unsubscribe()
	_ = conn.SetReadDeadline(time.Time{}) // the server's read timeout no longer applies
	write := func(b []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := conn.Write(b)
		return err == nil
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = h.Write(&head)
	head.WriteString("\r\n")
	pending := head.Bytes()

	end := time.NewTimer(streamLife)
	defer end.Stop()
	ping := time.NewTicker(st.s.pingEvery)
	defer ping.Stop()
	for {
		if st.gone() {
			if pending != nil {
				write(pending) // an empty stream, as for a device that is gone
			}
			return
		}
		events, ok := st.checkAside(ctx)
		if !ok {
			if pending != nil {
				write(pending) // an empty stream: the device reconnects and is told why
			}
			return
		}
		if pending != nil || len(events) > 0 {
			if !write(append(pending, events...)) {
				return
			}
			pending = nil
		}
		select {
		case <-st.s.stop:
			return
		case <-st.displaced:
			return
		case <-end.C:
			return
		case <-ping.C:
			if peerClosed(conn) || !write([]byte(streamPing)) {
				return
			}
		case <-st.sig:
		}
	}
}

// serveHandler serves the stream in the handler, for connections that cannot be hijacked.
func (st *eventStream) serveHandler(ctx context.Context, w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	end := time.NewTimer(streamLife)
	defer end.Stop()
	ping := time.NewTicker(st.s.pingEvery)
	defer ping.Stop()
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(st.s.pingEvery + 10*time.Second))
		if st.gone() {
			return errWritten
		}
		events, ok := st.check(ctx)
		if !ok {
			return errWritten
		}
		if _, err := w.Write(events); err != nil {
			return errWritten
		}
		if err := rc.Flush(); err != nil {
			return errWritten
		}
		select {
		case <-ctx.Done():
			return errWritten
		case <-st.s.stop:
			return errWritten
		case <-st.displaced:
			return errWritten
		case <-end.C:
			return errWritten
		case <-ping.C:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write([]byte(streamPing)); err != nil {
				return errWritten
			}
		case <-st.sig:
		}
	}
}
