package web_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/login"
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

// TestEventStreamEndsWhenDeviceRemoved: a Latch device's open event stream ends at once (not
// at its next ping, 15 s later) when the device goes by an administrator's MFA reset, the
// support desk's reset or the support desk removing that one device: the device stops
// hearing of sign-ins the moment it is no longer the account's.
func TestEventStreamEndsWhenDeviceRemoved(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		remove func(f *fixture, staff, alice *latchkey.User, deviceID int64) error
	}{
		{"admin resets MFA", func(f *fixture, staff, alice *latchkey.User, _ int64) error {
			return f.svc.AdminResetMFA(ctx, login.Client{}, staff, true, alice.ID, "lost phone")
		}},
		{"support resets MFA", func(f *fixture, staff, alice *latchkey.User, _ int64) error {
			return f.svc.AgentResetMFA(ctx, login.Client{}, login.AgentAction{Agent: staff, AgentMFA: true, TicketID: 1, Reason: "lost phone"}, alice)
		}},
		{"support removes the device", func(f *fixture, staff, alice *latchkey.User, id int64) error {
			return f.svc.AgentRemoveFactor(ctx, login.Client{}, login.AgentAction{Agent: staff, AgentMFA: true, TicketID: 1, Reason: "stolen laptop"}, alice, "device:"+strconv.FormatInt(id, 10))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			_, d := f.activated(t)
			staff, err := f.svc.CreateUser(ctx, login.Client{}, login.NewUser{Username: "root", Email: "root@example.com", Role: latchkey.RoleAdmin, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			alice, err := f.db.FindUserByUsername(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(d.request("GET", deviceproto.PathEvents, nil, d.id))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("event stream: %d", resp.StatusCode)
			}
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				_, _ = io.Copy(io.Discard, resp.Body)
			}()
			select {
			case <-ended:
				t.Fatal("the stream ended before the device was removed")
			case <-time.After(200 * time.Millisecond):
			}
			if err := tt.remove(f, staff, alice, d.id); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("the removed device's event stream is still open 5 s later")
			}
		})
	}
}
