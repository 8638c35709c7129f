package pgnotify_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/pgnotify"
	"github.com/latchkey/latchkey/internal/pgtest"
	"github.com/latchkey/latchkey/internal/push"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// recorder is a Receiver that reports each signal as "d:ID", "c:ID" or "all".
type recorder chan string

func (r recorder) SignalDevice(id int64)     { r <- fmt.Sprintf("d:%d", id) }
func (r recorder) SignalChallenge(id string) { r <- "c:" + id }
func (r recorder) SignalAll()                { r <- "all" }

func (r recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no signal within 10 s")
		return ""
	}
}

func (r recorder) want(t *testing.T, want string) {
	t.Helper()
	if got := r.next(t); got != want {
		t.Fatalf("signal = %q, want %q", got, want)
	}
}

func wait(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no wake-up within 10 s", what)
	}
}

// start runs a relay on dsn delivering to to, until the test ends.
func start(t *testing.T, dsn string, to func(*pgnotify.Relay) pgnotify.Receiver) *pgnotify.Relay {
	t.Helper()
	return startOpts(t, pgnotify.Options{DSN: dsn}, to)
}

func startOpts(t *testing.T, opt pgnotify.Options, to func(*pgnotify.Relay) pgnotify.Receiver) *pgnotify.Relay {
	t.Helper()
	opt.MinBackoff, opt.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	r, err := pgnotify.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	recv := to(r)
	go func() { done <- r.Run(ctx, recv) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of cancel")
		}
	})
	return r
}

func openDB(t *testing.T, dsn string) *sql.DB {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRelayBetweenNodes: a notification on node A wakes node B's hub; A ignores its own;
// B does not send back what it received.
func TestRelayBetweenNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	recA := make(recorder, 16)
	a := start(t, dsn, func(*pgnotify.Relay) pgnotify.Receiver { return recA })
	var hubB *push.Hub
	b := start(t, dsn, func(r *pgnotify.Relay) pgnotify.Receiver { hubB = push.NewHub(r); return hubB })
	recA.want(t, "all") // listening
	// B's listener may not be up yet: retry until it is (a lost wake-up is allowed by design).
	dev, cancel := hubB.SubscribeDevice(42)
	defer cancel()
	deadline := time.Now().Add(20 * time.Second)
	for got := false; !got; {
		a.NotifyDevice(42)
		select {
		case <-dev:
			got = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("node B was not woken by node A's notification")
			}
		}
	}
	// B's notification reaches A. Notifications arrive in order, so A's own for device 42
	// came back before this one: seeing this first shows that A ignored its own.
	hubB.NotifyChallenge("0123abcd")
	recA.want(t, "c:0123abcd")
	// The challenge's subscribers on B are woken too.
	ch, cancel2 := hubB.SubscribeChallenge("feed")
	defer cancel2()
	a.NotifyChallenge("feed")
	wait(t, ch, "challenge feed on B")
	// B counts a notification as sent once pg_notify returns, which may be after A got it.
	for sent, _ := b.Stats(); sent != 1; sent, _ = b.Stats() {
		if sent > 1 || time.Now().After(deadline) {
			t.Fatalf("node B sent %d notifications, want 1 (what it receives must not be relayed)", sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sent, dropped := a.Stats(); sent == 0 || dropped != 0 {
		t.Errorf("node A stats: sent %d, dropped %d", sent, dropped)
	}
}

// TestRelayIgnoresMalformedPayloads: anything but a well-formed payload from another node is
// ignored, however it got onto the channel.
func TestRelayIgnoresMalformedPayloads(t *testing.T) {
	dsn := pgtest.Start(t)
	rec := make(recorder, 16)
	start(t, dsn, func(*pgnotify.Relay) pgnotify.Receiver { return rec })
	rec.want(t, "all")
	db := openDB(t, dsn)
	for _, p := range []string{"", "nonsense", "n:d", "n:d:", "n:d:abc", "n:d:-1", "n:d:0", "n:x:1", "n:c:" + strings.Repeat("a", 200), "n:d:7"} {
		if _, err := db.Exec(`SELECT pg_notify($1, $2)`, pgnotify.DefaultChannel, p); err != nil {
			t.Fatal(err)
		}
	}
	rec.want(t, "d:7")
}

// TestRelayReconnects: the relay's connections are killed on the server (as in a restart);
// the listener comes back by itself and wakes every waiter, and the next notification is sent
// on a fresh connection rather than lost.
func TestRelayReconnects(t *testing.T) {
	dsn := pgtest.Start(t)
	recA := make(recorder, 16)
	recB := make(recorder, 16)
	a := start(t, dsn, func(*pgnotify.Relay) pgnotify.Receiver { return recA })
	start(t, dsn, func(*pgnotify.Relay) pgnotify.Receiver { return recB })
	recA.want(t, "all")
	recB.want(t, "all")
	a.NotifyDevice(1)
	recB.want(t, "d:1") // A's sending connection is open now
	db := openDB(t, dsn)
	var n int
	if err := db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'latchkey-pgnotify' AND datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 { // two listeners, A's sender
		t.Errorf("terminated %d relay connections, want 3", n)
	}
	recA.want(t, "all")
	recB.want(t, "all")
	a.NotifyDevice(2)
	recB.want(t, "d:2")
	if _, dropped := a.Stats(); dropped != 0 {
		t.Errorf("dropped %d notifications, want 0", dropped)
	}
}

// TestRelayWakesAllAfterReconnect: after the listener reconnects, a real hub's waiters are
// woken, since a notification may have been missed meanwhile.
func TestRelayWakesAllAfterReconnect(t *testing.T) {
	dsn := pgtest.Start(t)
	listening := make(chan struct{}, 4)
	var hub *push.Hub
	start(t, dsn, func(r *pgnotify.Relay) pgnotify.Receiver {
		hub = push.NewHub(r)
		return notifying{hub, listening}
	})
	wait(t, listening, "first listen")
	dev, cancel := hub.SubscribeDevice(5)
	defer cancel()
	ch, cancel2 := hub.SubscribeChallenge("x")
	defer cancel2()
	db := openDB(t, dsn)
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'latchkey-pgnotify' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	wait(t, dev, "device waiter after reconnect")
	wait(t, ch, "challenge waiter after reconnect")
}

// TestRelayReportsLoss: when the listener's connection is cut (as in a restart), OnLost is
// called, before the listener is back; not while the connection stands.
func TestRelayReportsLoss(t *testing.T) {
	dsn := pgtest.Start(t)
	rec := make(recorder, 16)
	var lost atomic.Int32
	startOpts(t, pgnotify.Options{DSN: dsn, OnLost: func() { lost.Add(1) }}, func(*pgnotify.Relay) pgnotify.Receiver { return rec })
	rec.want(t, "all")
	if n := lost.Load(); n != 0 {
		t.Fatalf("OnLost called %d times with the connection standing", n)
	}
	db := openDB(t, dsn)
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'latchkey-pgnotify' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	rec.want(t, "all") // listening again
	if n := lost.Load(); n != 1 {
		t.Errorf("OnLost called %d times for one lost connection, want 1", n)
	}
}

// notifying is a hub that also reports each SignalAll.
type notifying struct {
	*push.Hub
	c chan struct{}
}

func (n notifying) SignalAll() { n.Hub.SignalAll(); n.c <- struct{}{} }

// TestRelayIdleChecks: the listener's periodic liveness check (a wait that times out, then a
// ping) leaves the connection usable: notifications spaced wider than the check still arrive,
// on the same connection.
func TestRelayIdleChecks(t *testing.T) {
	dsn := pgtest.Start(t)
	rec := make(recorder, 16)
	startOpts(t, pgnotify.Options{DSN: dsn, IdleCheck: 10 * time.Millisecond}, func(*pgnotify.Relay) pgnotify.Receiver { return rec })
	rec.want(t, "all")
	db := openDB(t, dsn)
	for i := range 5 {
		time.Sleep(35 * time.Millisecond) // let a few idle checks pass
		if _, err := db.Exec(`SELECT pg_notify($1, $2)`, pgnotify.DefaultChannel, fmt.Sprintf("other:d:%d", i+1)); err != nil {
			t.Fatal(err)
		}
		rec.want(t, fmt.Sprintf("d:%d", i+1)) // and no "all": the connection never dropped
	}
}

func TestNewRejectsBadDSN(t *testing.T) {
	if _, err := pgnotify.New(pgnotify.Options{DSN: "postgres://%zz"}); err == nil {
		t.Error("New accepted a malformed DSN")
	}
}
