package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestIdleConnectionsMakeRoom: past the high mark, each new connection closes the oldest
// idle keep-alive connection, so that connections that made one request and wait cannot
// keep a new client out; connections in the middle of a request are not touched.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = newIdleReaper(4).ConnState
	srv.Start()
	defer srv.Close()
	// get sends one request on a new connection and leaves it open (keep-alive).
	get := func(path string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		return c, bufio.NewReader(c)
	}
	read := func(r *bufio.Reader) {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// closed waits up to d for the server to close c: briefly where it must not (a close comes
	// at once when it comes), long where it must (the server may be slow under load).
	closed := func(c net.Conn, r *bufio.Reader, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := r.ReadByte()
		return err == io.EOF
	}
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 4 {
		c, r := get("/")
		read(r)
		conns, readers = append(conns, c), append(readers, r)
		time.Sleep(20 * time.Millisecond) // each idle before the next connects
	}
	for i := range conns {
		if closed(conns[i], readers[i], 300*time.Millisecond) {
			t.Fatalf("idle connection %d closed within the high mark", i)
		}
	}
	// A slow request in progress, past the mark: it must finish; the oldest idle goes.
	slow, slowR := get("/slow")
	if !closed(conns[0], readers[0], 10*time.Second) {
		t.Fatal("the oldest idle connection is still open past the high mark")
	}
	for i := 1; i < 4; i++ {
		if closed(conns[i], readers[i], 300*time.Millisecond) {
			t.Fatalf("idle connection %d closed too; only the oldest should", i)
		}
	}
	_, r := get("/")
	read(r)
	read(slowR)
	_ = slow
}

// BenchmarkIdleReaperConnState is what the hook adds to every request on a keep-alive
// connection: the turn to active and back to idle, from every processor at once.
func BenchmarkIdleReaperConnState(b *testing.B) {
	r := newIdleReaper(1 << 20)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		r.ConnState(s, http.StateNew)
		for pb.Next() {
			r.ConnState(s, http.StateActive)
			r.ConnState(s, http.StateIdle)
		}
	})
}
