// Package pgnotify relays push wake-ups between Latchkey nodes through PostgreSQL
// LISTEN/NOTIFY, so that a challenge created on one node reaches a Latch app waiting on
// another at once, with no message bus besides the database the nodes share.
//
// A Relay is a push.Notifier: the node's push.Hub hands it every local notification, and
// the relay sends it with pg_notify. The relay also listens on a dedicated connection and
// signals the local hub, without relaying, when a notification comes from another node;
// its own notifications come back from PostgreSQL too and are ignored. A payload is the
// sending node's random ID, a kind and an ID ("3f9c…:d:42" for device 42, "3f9c…:c:<id>"
// for a challenge): no secret, no content. The woken party reads the database, so a lost,
// late or forged notification costs at most one read, and the waiting loops' periodic
// re-reads cover whatever is lost while a connection is down.
package pgnotify

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/internal/push"
)

// DefaultChannel is the notification channel that the nodes of one database share.
const DefaultChannel = "latchkey"

// maxIDLen bounds a challenge ID taken from a payload (challenge IDs are 32 hex digits).
const maxIDLen = 128

// Receiver is what a Relay wakes up on this node; *push.Hub implements it. The Signal
// methods must not relay again, or notifications would circle between the nodes.
type Receiver interface {
	SignalDevice(id int64)
	SignalChallenge(id string)
	// SignalAll wakes every waiter: called after each (re)connection of the listener,
	// since notifications sent while it was down are lost.
	SignalAll()
}

var (
	_ push.Notifier = (*Relay)(nil)
	_ Receiver      = (*push.Hub)(nil)
)

// Options configure New.
type Options struct {
	// DSN is the PostgreSQL URL (postgres://...), the same database as the store's.
	DSN string
	// Channel is the LISTEN/NOTIFY channel; empty means DefaultChannel.
	Channel string
	// Logger receives connection losses and reconnections; nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnection attempts, which doubles
	// after each failure (with jitter); zero means 250 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// QueueSize bounds the notifications waiting to be sent; beyond it they are dropped
	// (the waiters' periodic re-reads catch up). Zero means 4096.
	QueueSize int
	// ConnectTimeout bounds each connection attempt; zero means 5 s.
	ConnectTimeout time.Duration
	// IdleCheck is how long the listener waits without traffic before it pings the server,
	// so that a connection lost without a reset is noticed; zero means 30 s.
	IdleCheck time.Duration
	// OnLost, when not nil, is called each time the listener loses its connection or fails
	// to connect again. The listener waits on the server all the time, so it is usually the
	// first on the node to see it go away (a restart, a fail-over); the store's pool then
	// checks its connections before it reuses them (sqlstore's ServerLost).
	OnLost func()
}

// Relay sends this node's notifications to the other nodes and delivers theirs here. It is
// safe for concurrent use. Notify methods never block: they queue.
type Relay struct {
	opt     Options
	cfg     *pgx.ConnConfig
	node    string
	queue   chan string
	dropped atomic.Int64
	sent    atomic.Int64
}

// New returns a relay for the database at opt.DSN. It connects only when Run starts.
func New(opt Options) (*Relay, error) {
	cfg, err := pgx.ParseConfig(opt.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: %w", err)
	}
	if opt.Channel == "" {
		opt.Channel = DefaultChannel
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 250 * time.Millisecond
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(5*time.Second, opt.MinBackoff)
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 4096
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 5 * time.Second
	}
	if opt.IdleCheck <= 0 {
		opt.IdleCheck = 30 * time.Second
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > opt.ConnectTimeout {
		cfg.ConnectTimeout = opt.ConnectTimeout
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "latchkey-pgnotify"
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("pgnotify: node id: %w", err)
	}
	return &Relay{opt: opt, cfg: cfg, node: hex.EncodeToString(b[:]), queue: make(chan string, opt.QueueSize)}, nil
}

// NotifyDevice tells the other nodes that the device has news.
func (r *Relay) NotifyDevice(id int64) { r.enqueue("d:" + strconv.FormatInt(id, 10)) }

// NotifyChallenge tells the other nodes that the challenge changed.
func (r *Relay) NotifyChallenge(id string) { r.enqueue("c:" + id) }

func (r *Relay) enqueue(msg string) {
	select {
	case r.queue <- r.node + ":" + msg:
	default:
		r.dropped.Add(1)
	}
}

// Stats returns how many notifications were sent and how many were dropped because the
// queue was full or the database unreachable.
func (r *Relay) Stats() (sent, dropped int64) { return r.sent.Load(), r.dropped.Load() }

// Run listens for the other nodes' notifications, delivering them to to, and sends this
// node's, until ctx ends. Lost connections are re-opened with backoff. It returns ctx's
// error.
func (r *Relay) Run(ctx context.Context, to Receiver) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.sendLoop(ctx) })
	r.listenLoop(ctx, to)
	wg.Wait()
	return ctx.Err()
}

// ---- Listening ---------------------------------------------------------------------------

func (r *Relay) listenLoop(ctx context.Context, to Receiver) {
	backoff := r.opt.MinBackoff
	lost := false
	for ctx.Err() == nil {
		err := r.listen(ctx, to, func() {
			backoff = r.opt.MinBackoff
			if lost {
				r.opt.Logger.Info("push relay listening again", "channel", r.opt.Channel)
			} else {
				r.opt.Logger.Info("push relay listening", "channel", r.opt.Channel)
			}
			lost = false
			// Whatever was sent while we were not listening is lost: every waiter re-reads.
			to.SignalAll()
		})
		if ctx.Err() != nil {
			return
		}
		if r.opt.OnLost != nil {
			r.opt.OnLost()
		}
		if !lost {
			r.opt.Logger.Warn("push relay: connection lost, reconnecting", "err", err)
			lost = true
		}
		wait := backoff + rand.N(backoff/2+1)
		backoff = min(2*backoff, r.opt.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// listen opens the dedicated connection, LISTENs, calls connected, and delivers
// notifications until the connection fails or ctx ends.
func (r *Relay) listen(ctx context.Context, to Receiver, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, r.cfg.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{r.opt.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	for {
		wctx, cancel := context.WithTimeout(ctx, r.opt.IdleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
				return fmt.Errorf("wait for notification: %w", err)
			}
			// Quiet for a while: make sure the server is still there.
			pctx, cancel := context.WithTimeout(ctx, r.opt.ConnectTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		}
		r.deliver(n.Payload, to)
	}
}

// deliver signals the receiver for a payload from another node; its own, and anything it
// does not understand, it ignores.
func (r *Relay) deliver(payload string, to Receiver) {
	node, rest, ok := strings.Cut(payload, ":")
	if !ok || node == r.node {
		return
	}
	kind, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return
	}
	switch kind {
	case "d":
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 {
			to.SignalDevice(n)
		}
	case "c":
		if len(id) <= maxIDLen {
			to.SignalChallenge(id)
		}
	}
}

// ---- Sending -----------------------------------------------------------------------------

// maxBatch bounds the notifications sent in one statement.
const maxBatch = 256

// sendLoop sends queued notifications on a connection of its own, batching whatever has
// queued up meanwhile into one statement. While the database is unreachable the queue is
// drained and dropped, with one log line per outage.
func (r *Relay) sendLoop(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	failing := false
	var retryAt time.Time
	batch := make([]string, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case p := <-r.queue:
			batch = append(batch, p)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-r.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		if conn == nil && time.Now().Before(retryAt) {
			r.dropped.Add(int64(len(batch)))
			continue
		}
		err := r.send(ctx, &conn, batch)
		if err == nil {
			r.sent.Add(int64(len(batch)))
			if failing {
				r.opt.Logger.Info("push relay sending again")
				failing = false
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.dropped.Add(int64(len(batch)))
		if conn != nil {
			closeConn(conn)
			conn = nil
		}
		// Do not try a connection for every notification while the database is away.
		retryAt = time.Now().Add(r.opt.MinBackoff)
		if !failing {
			r.opt.Logger.Warn("push relay: cannot send, notifications are dropped until the database is back", "err", err)
			failing = true
		}
	}
}

// send sends the batch on *conn, opening it when nil. A connection that worked before but
// fails now (the database restarted since) is replaced once at once, so that the first
// notification after a restart is not lost.
func (r *Relay) send(ctx context.Context, conn **pgx.Conn, batch []string) error {
	for attempt := 0; ; attempt++ {
		reused := *conn != nil
		err := r.sendOnce(ctx, conn, batch)
		if err == nil || !reused || attempt > 0 || ctx.Err() != nil {
			return err
		}
		closeConn(*conn)
		*conn = nil
	}
}

func (r *Relay) sendOnce(ctx context.Context, conn **pgx.Conn, batch []string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.ConnectTimeout)
	defer cancel()
	if *conn == nil {
		c, err := pgx.ConnectConfig(ctx, r.cfg.Copy())
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		*conn = c
	}
	_, err := (*conn).Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, r.opt.Channel, batch)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
