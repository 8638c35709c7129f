package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/deviceproto"
)

// TestListenBacksOffWhenStreamsEndAtOnce: a stream that the server ends at once (another
// copy of the device displaced it, or the server is going away) is reconnected after a
// backoff, so that copies of one device do not displace each other in a tight loop.
func TestListenBacksOffWhenStreamsEndAtOnce(t *testing.T) {
	var opened atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != deviceproto.PathEvents {
			http.Error(w, "not found", 404)
			return
		}
		opened.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200) // and the stream ends at once
	}))
	defer srv.Close()
	key, err := deviceproto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_ = newClient(srv.URL, key, 1).listen(ctx, func(deviceproto.Challenge) {})
	// At 0 s, after 1–1.5 s, after 2–3 s more: two or three, never hundreds.
	if n := opened.Load(); n < 2 || n > 3 {
		t.Fatalf("%d streams opened in 2.5 s, want 2 or 3 (a backoff between streams that end at once)", n)
	}
}

// TestListenReadsWhenTheServerIsBusy: when the server holds as many device connections as
// it may (503 for the stream and the long poll), latch still reads what is pending with a
// plain read, so that a sign-in request is not missed until its next try.
func TestListenReadsWhenTheServerIsBusy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == deviceproto.PathChallenges && r.URL.Query().Get("wait") == "0s" {
			w.Write([]byte(`{"challenges":[{"id":"c1","kind":"login","username":"alice","number_length":2}]}`))
			return
		}
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"unavailable","message":"The server is busy. Please try again shortly."}}`))
	}))
	defer srv.Close()
	key, err := deviceproto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 10)
	go func() {
		_ = newClient(srv.URL, key, 1).listen(ctx, func(ch deviceproto.Challenge) { got <- ch.ID })
	}()
	select {
	case id := <-got:
		if id != "c1" {
			t.Fatalf("challenge %q, want c1", id)
		}
	case <-ctx.Done():
		t.Fatal("the pending request was not read while the server refused streams and long polls")
	}
}
