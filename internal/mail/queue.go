package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	netmail "net/mail"
	"sync"
	"sync/atomic"
	"time"
)

// Queued is a message in the persisted outbox, as a worker claimed it.
type Queued struct {
	ID      int64
	Message Message
	// Attempts counts delivery attempts, the one this claim is for included.
	Attempts int
	// CreatedAt is when the message was queued.
	CreatedAt time.Time
	// Claim identifies this claim: the store accepts an outcome only from the claim that
	// holds the message.
	Claim string
}

// ErrClaimLost is returned by a Store when the claim an outcome is recorded for no longer
// holds the message: its lease ran out and another worker claimed it.
var ErrClaimLost = errors.New("the message's lease ran out and another worker claimed it")

// QueueStats counts the outbox.
type QueueStats struct {
	Pending int // waiting for a (first or further) delivery attempt
	Failed  int // given up on
	// Busy counts the pending messages that are due or held by a worker at the time asked.
	Busy    int
	NextDue time.Time // when the next pending message is due; zero when none is pending
}

// Store persists the outbox. Messages are claimed with a lease, so that several workers
// (on several nodes sharing one database) never hold the same message at once, and a
// message claimed by a worker that died is claimed again once the lease runs out.
// sqlstore.DB implements it.
type Store interface {
	// EnqueueMail stores m as pending, due at now, and returns its ID.
	EnqueueMail(ctx context.Context, m Message, now time.Time) (int64, error)
	// ClaimMail leases the pending message that has been due longest at now to claim until
	// the lease ends, counting one attempt. It returns nil and no error when none is due.
	ClaimMail(ctx context.Context, now, leaseEnd time.Time, claim string) (*Queued, error)
	// MarkMailSent records the message as sent and deletes its body.
	MarkMailSent(ctx context.Context, id int64, claim string, now time.Time) error
	// RetryMail makes the message due again at next, noting the error.
	RetryMail(ctx context.Context, id int64, claim string, next time.Time, lastErr string) error
	// MarkMailFailed gives up on the message: it is recorded as failed and its body deleted.
	MarkMailFailed(ctx context.Context, id int64, claim string, now time.Time, lastErr string) error
	// MailStats counts the outbox at now.
	MailStats(ctx context.Context, now time.Time) (QueueStats, error)
}

// QueueOptions configure NewQueue. Zero durations take the defaults.
type QueueOptions struct {
	Store Store
	// Transport delivers a message: the SMTP sender or the dev outbox of New.
	Transport Sender
	// Logger receives a line per failed attempt and per message given up on; nil discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MinBackoff is the wait after the first failed attempt, doubling after each further
	// one up to MaxBackoff; defaults 30 s and 1 h.
	MinBackoff, MaxBackoff time.Duration
	// GiveUpAfter is how long after it was queued a message that still fails is marked
	// failed; default 72 h.
	GiveUpAfter time.Duration
	// Lease is how long a claimed message is reserved for the worker that claimed it;
	// default 2 minutes, well beyond the SMTP timeout.
	Lease time.Duration
	// Poll bounds the worker's sleep, so that retries of messages queued on other nodes are
	// seen; default 1 minute.
	Poll time.Duration
	// SendTimeout bounds one delivery attempt; default 1 minute.
	SendTimeout time.Duration
}

// Queue is a Sender that stores messages in a persisted outbox and delivers them in the
// background, retrying with exponential backoff, so that a mail server that is down loses
// no message. It is safe for concurrent use.
type Queue struct {
	opt  QueueOptions
	log  *slog.Logger
	wake chan struct{}

	pending, failed atomic.Int64 // last counted, for metrics
	mu              sync.Mutex
	changed         chan struct{} // closed and replaced after every delivery round
}

var _ Sender = (*Queue)(nil)

// NewQueue returns a queue over opts.Store. Nothing is delivered until Run runs.
func NewQueue(opts QueueOptions) *Queue {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.MinBackoff, 30*time.Second)
	def(&opts.MaxBackoff, time.Hour)
	def(&opts.GiveUpAfter, 72*time.Hour)
	def(&opts.Lease, 2*time.Minute)
	def(&opts.Poll, time.Minute)
	def(&opts.SendTimeout, time.Minute)
	return &Queue{opt: opts, log: opts.Logger, wake: make(chan struct{}, 1), changed: make(chan struct{})}
}

// Send validates m, stores it in the outbox and returns; the worker delivers it moments
// later. An error means the message was not queued.
func (q *Queue) Send(ctx context.Context, m Message) error {
	if m.To == "" {
		return errors.New("mail: the message has no recipient")
	}
	if _, err := netmail.ParseAddress(m.To); err != nil {
		return fmt.Errorf("mail: recipient address %q: %w", m.To, err)
	}
	if _, err := q.opt.Store.EnqueueMail(ctx, m, q.opt.Now()); err != nil {
		return fmt.Errorf("mail: queue message: %w", err)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Stats returns the counts the worker took after its last delivery round (Send wakes it, so
// they follow moments later), without touching the database: cheap enough for every
// metrics scrape.
func (q *Queue) Stats() (pending, failed int) {
	return int(q.pending.Load()), int(q.failed.Load())
}

// Run delivers due messages until ctx ends. It wakes when Send queues a message, when the
// next retry is due, and at least every Poll. When ctx ends it finishes the attempt in
// progress (bounded by SendTimeout) and returns nil. Several Runs, in one process or on
// nodes sharing the database, never deliver one message twice, unless a worker is stopped
// for longer than Lease in the middle of an attempt.
func (q *Queue) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-t.C:
		}
		wait := q.opt.Poll
		if _, err := q.DeliverDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			q.log.Warn("mail outbox", "err", err)
			wait = min(wait, 5*time.Second)
		} else if st, err := q.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			q.log.Warn("mail outbox", "err", err)
			wait = min(wait, 5*time.Second)
		} else if !st.NextDue.IsZero() {
			wait = min(wait, max(st.NextDue.Sub(q.opt.Now()), 0))
		}
		q.signal()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// DeliverDue makes one delivery attempt for every message due now, one after the other,
// and returns how many were sent. It stops early, without error, when ctx ends. Run calls
// it; tests call it to deliver with a clock of their own.
func (q *Queue) DeliverDue(ctx context.Context) (sent int, err error) {
	for ctx.Err() == nil {
		now := q.opt.Now()
		claim, err := newClaim()
		if err != nil {
			return sent, err
		}
		m, err := q.opt.Store.ClaimMail(ctx, now, now.Add(q.opt.Lease), claim)
		if err != nil {
			return sent, fmt.Errorf("claim message: %w", err)
		}
		if m == nil {
			return sent, nil
		}
		ok, err := q.deliver(ctx, m)
		if ok {
			sent++
		}
		if errors.Is(err, ErrClaimLost) {
			q.log.Warn("mail outbox: the attempt outlasted its lease", "id", m.ID, "err", err)
		} else if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// deliver makes one attempt at m and records the outcome. The attempt and the record are
// not cut short by ctx: a worker asked to stop finishes the message it holds.
func (q *Queue) deliver(ctx context.Context, m *Queued) (sent bool, err error) {
	ctx = context.WithoutCancel(ctx)
	sctx, cancel := context.WithTimeout(ctx, q.opt.SendTimeout)
	sendErr := q.opt.Transport.Send(sctx, dated(m))
	cancel()
	now := q.opt.Now()
	switch {
	case sendErr == nil:
		if err := q.opt.Store.MarkMailSent(ctx, m.ID, m.Claim, now); err != nil {
			return true, fmt.Errorf("mark message %d sent: %w", m.ID, err)
		}
		return true, nil
	case now.Sub(m.CreatedAt) >= q.opt.GiveUpAfter:
		q.log.Error("mail given up", "id", m.ID, "to", m.Message.To, "subject", m.Message.Subject, "attempts", m.Attempts, "queued_at", m.CreatedAt, "err", sendErr)
		if err := q.opt.Store.MarkMailFailed(ctx, m.ID, m.Claim, now, sendErr.Error()); err != nil {
			return false, fmt.Errorf("mark message %d failed: %w", m.ID, err)
		}
		return false, nil
	default:
		next := now.Add(q.backoff(m.Attempts))
		q.log.Warn("mail not sent, will retry", "id", m.ID, "to", m.Message.To, "subject", m.Message.Subject, "attempts", m.Attempts, "retry_at", next, "err", sendErr)
		if err := q.opt.Store.RetryMail(ctx, m.ID, m.Claim, next, sendErr.Error()); err != nil {
			return false, fmt.Errorf("reschedule message %d: %w", m.ID, err)
		}
		return false, nil
	}
}

// dated returns the message with a Date header of the time it was queued (unless it has
// one), so that a mail delayed by a mail-server outage still says when it was written.
func dated(m *Queued) Message {
	msg := m.Message
	if _, ok := msg.Headers["Date"]; ok {
		return msg
	}
	h := maps.Clone(msg.Headers)
	if h == nil {
		h = map[string]string{}
	}
	h["Date"] = m.CreatedAt.Format(time.RFC1123Z)
	msg.Headers = h
	return msg
}

// backoff is the wait after the given number of failed attempts: MinBackoff doubling up to
// MaxBackoff.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.opt.MinBackoff
	for i := 1; i < attempts && d < q.opt.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.opt.MaxBackoff)
}

// refresh counts the outbox and keeps the counts for Stats.
func (q *Queue) refresh(ctx context.Context) (QueueStats, error) {
	st, err := q.opt.Store.MailStats(ctx, q.opt.Now())
	if err != nil {
		return st, fmt.Errorf("count messages: %w", err)
	}
	q.pending.Store(int64(st.Pending))
	q.failed.Store(int64(st.Failed))
	return st, nil
}

// signal tells Flush that a round ended.
func (q *Queue) signal() {
	q.mu.Lock()
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
}

// Flush waits until a delivery round of Run has found no message due, that is until every
// message queued before the call has been sent, rescheduled or given up on, or until ctx
// ends. It needs Run to be running.
func (q *Queue) Flush(ctx context.Context) error {
	for {
		q.mu.Lock()
		changed := q.changed
		q.mu.Unlock()
		st, err := q.opt.Store.MailStats(ctx, q.opt.Now())
		if err != nil {
			return fmt.Errorf("mail: count messages: %w", err)
		}
		if st.Busy == 0 {
			return nil
		}
		select {
		case q.wake <- struct{}{}:
		default:
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("mail: flush: %d messages still due: %w", st.Busy, ctx.Err())
		}
	}
}

func newClaim() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
