package web_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/deviceproto"
)

// lineWriter passes each log write on as a line, without blocking.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// TestDeviceEventStream: a device's event stream answers 200 text/event-stream, delivers a
// push the moment it is created, and is served from the hijacked connection: the request's
// handler has returned (its access line is written) while the stream stays open, so a
// waiting device holds no request goroutine with its deep stack and buffers.
func TestDeviceEventStream(t *testing.T) {
	logs := make(lineWriter, 1000)
	f := newFixtureLog(t, "", logs)
	_, d := f.activated(t)
	resp, err := http.DefaultClient.Do(d.request("GET", deviceproto.PathEvents, nil, d.id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("event stream: %d %v", resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the stream lost the security headers: %v", resp.Header)
	}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case line := <-logs:
			done = strings.Contains(line, `msg="http request"`) && strings.Contains(line, "path="+deviceproto.PathEvents+" status=200")
		case <-timeout:
			t.Fatal("no access line for the open stream: its handler is still waiting")
		}
	}

	ids := make(chan string, 4)
	go func() {
		defer close(ids)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
	}()
	_, id, _ := f.pushLogin(t)
	select {
	case got, ok := <-ids:
		if !ok || got != id {
			t.Fatalf("stream event id %q (open %v), want the challenge %q", got, ok, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the push did not reach the open stream within 10 s")
	}
}
