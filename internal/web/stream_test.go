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
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/web"
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

// openStream opens the device's event stream and returns a channel closed when it ends.
func openStream(t *testing.T, d *testDevice) (*http.Response, chan struct{}) {
	t.Helper()
	resp, err := http.DefaultClient.Do(d.request("GET", deviceproto.PathEvents, nil, d.id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ended := make(chan struct{})
	if resp.StatusCode != 200 {
		close(ended)
		return resp, ended
	}
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	return resp, ended
}

func isOpen(ended chan struct{}) bool {
	select {
	case <-ended:
		return false
	default:
		return true
	}
}

// TestDeviceStreamsLimited: one device holds at most three event streams and long polls; a
// fourth displaces the oldest, which ends at once. A node that holds its limit of device
// connections answers 503 with Retry-After, and serves sign-ins all the while. (Before, any
// device could open streams until the server ran out of descriptors and answered no one.)
func TestDeviceStreamsLimited(t *testing.T) {
	f := newFixture(t, "")
	_, d := f.activated(t)
	var streams []chan struct{}
	for i := range push.WaitsPerDevice {
		resp, ended := openStream(t, d)
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		streams = append(streams, ended)
	}
	waitFor(t, func() bool { return f.push.Hub().Waits() == push.WaitsPerDevice })
	for i, s := range streams {
		if !isOpen(s) {
			t.Fatalf("stream %d ended within the device's limit", i)
		}
	}
	// A long poll counts too: it displaces the oldest stream.
	poll := make(chan response, 1)
	go func() { poll <- d.call("GET", deviceproto.PathChallenges+"?wait=20s", nil) }()
	select {
	case <-streams[0]:
	case <-time.After(5 * time.Second):
		t.Fatal("the oldest stream is still open 5 s after a fourth wait of its device")
	}
	for i, s := range streams[1:] {
		if !isOpen(s) {
			t.Fatalf("stream %d ended too: only the oldest should", i+1)
		}
	}
	// Oldest first: the second stream, then the third, then the long poll.
	for i := 1; i < 3; i++ {
		_, newer := openStream(t, d)
		select {
		case <-streams[i]:
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d is still open 5 s after a newer wait of its device", i)
		}
		if !isOpen(newer) {
			t.Fatal("the newer stream ended")
		}
	}
	select {
	case <-poll:
		t.Fatal("the long poll ended before it was the oldest")
	default:
	}
	// The displaced long poll answers at once, with what is pending.
	_, _ = openStream(t, d)
	select {
	case r := <-poll:
		if r.code != 200 {
			t.Fatalf("displaced long poll: %d %s", r.code, r.raw)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll is still waiting 5 s after it was displaced")
	}
	waitFor(t, func() bool { return f.push.Hub().Waits() == push.WaitsPerDevice })

	// The node's limit: the next wait is refused, and sign-ins go on.
	f.push.Hub().LimitWaits(push.WaitsPerDevice)
	resp, _ := openStream(t, d)
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" || !strings.Contains(string(raw), `"unavailable"`) {
		t.Fatalf("a stream past the node's limit: %d Retry-After %q %s; want 503, 30", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	if r := d.call("GET", deviceproto.PathChallenges+"?wait=1s", nil); r.code != 503 {
		t.Fatalf("a long poll past the node's limit: %d %s", r.code, r.raw)
	}
	if r := d.call("GET", deviceproto.PathChallenges, nil); r.code != 200 {
		t.Fatalf("a read without a wait is not a connection held: %d %s", r.code, r.raw)
	}
	f.pushLogin(t) // a push sign-in starts while the node holds its device connections
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClosedStreamEndsWhenItsDeviceReturns: a stream whose client closed the connection
// holds its place until its next ping (TestClosedStreamEndsAtThePing); the device's next
// stream ends it at once, so that a device that reconnects counts once, and a proxy's
// restart in front of a node full of streams does not leave the node holding twice as many.
func TestClosedStreamEndsWhenItsDeviceReturns(t *testing.T) {
	f := newFixture(t, "")
	_, d := f.activated(t)
	first, ended := openStream(t, d)
	if first.StatusCode != 200 {
		t.Fatalf("stream: %d", first.StatusCode)
	}
	waitFor(t, func() bool { return f.push.Hub().Waits() == 1 })
	first.Body.Close() // the client goes away; the server reads nothing from the stream
	<-ended
	time.Sleep(100 * time.Millisecond) // the FIN crosses the loopback
	if n := f.push.Hub().Waits(); n != 1 {
		t.Fatalf("%d waits after the client closed, before any write: want 1 (nothing noticed yet)", n)
	}
	second, _ := openStream(t, d)
	if second.StatusCode != 200 {
		t.Fatalf("second stream: %d", second.StatusCode)
	}
	deadline := time.Now().Add(3 * time.Second) // well before the first ping (pingEvery)
	for f.push.Hub().Waits() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the closed stream still holds its place: %d waits with one client", f.push.Hub().Waits())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClosedStreamEndsAtThePing: a stream whose client closed the connection, and whose
// device does not come back, gives up its place at the first ping after, not the second.
// (The first write to a connection the client closed succeeds; only the client's reset to
// it makes the next one fail, so a write alone took two pings: 30 s at the default.)
func TestClosedStreamEndsAtThePing(t *testing.T) {
	const every = 2 * time.Second
	f := newFixtureStore(t, "", io.Discard, nil, func(o *web.Options) { o.StreamPing = every })
	_, d := f.activated(t)
	resp, ended := openStream(t, d)
	opened := time.Now() // the ping's ticker started just before the headers were written
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	waitFor(t, func() bool { return f.push.Hub().Waits() == 1 })
	resp.Body.Close()
	<-ended
	// The pings are at every and 2·every after the stream opened: half a period of slack.
	deadline := opened.Add(every + every/2)
	for f.push.Hub().Waits() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the closed stream still holds its place %v after it opened, past its first ping (%v)", time.Since(opened).Round(time.Millisecond), every)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held := time.Since(opened); held < every-every/4 {
		t.Fatalf("the stream ended %v after it opened, before its first ping (%v): something else ended it", held.Round(time.Millisecond), every)
	}
}
