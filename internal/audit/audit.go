// Package audit records security events in the append-only, hash-chained audit trail and
// verifies the chain.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/latchkey/latchkey"
)

// Recorder appends audit events.
type Recorder struct {
	store latchkey.AuditStore
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Recorder. A nil logger discards; a nil now uses time.Now.
func New(store latchkey.AuditStore, logger *slog.Logger, now func() time.Time) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: store, log: logger, now: now}
}

// Record appends e, stamping it with the current time when e.Time is zero. A failure is logged
// (without the event's details) and returned.
func (r *Recorder) Record(ctx context.Context, e latchkey.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if err := r.store.AppendAuditEvent(ctx, &e); err != nil {
		r.log.ErrorContext(ctx, "append audit event", "action", e.Action, "err", err)
		return fmt.Errorf("append audit event: %w", err)
	}
	return nil
}

// Report is the outcome of Verify.
type Report struct {
	// Entries is how many entries were checked.
	Entries int
	// FirstBroken is the ID of the first entry whose link to its predecessor or whose own hash
	// does not hold; 0 when the chain is intact.
	FirstBroken int64
	// Reason says what is wrong with FirstBroken.
	Reason string
}

// pageSize is how many entries Verify reads at a time.
const pageSize = 1000

// Verify walks the whole trail in ID order and checks each entry's hash and its link to the
// previous entry. An edited entry breaks its own hash; a removed entry breaks the link of the
// one after it; a removed last entry is not detectable from the chain alone.
func Verify(ctx context.Context, store latchkey.AuditStore) (Report, error) {
	var rep Report
	var prev []byte
	var after int64
	for {
		page, err := store.FindAuditEvents(ctx, latchkey.AuditFilter{AfterID: after, Limit: pageSize})
		if err != nil {
			return rep, fmt.Errorf("read audit events: %w", err)
		}
		for _, e := range page {
			rep.Entries++
			switch {
			case !bytes.Equal(e.PrevHash, prev):
				rep.FirstBroken, rep.Reason = e.ID, "its link to the previous entry does not match (an entry before it was removed or changed)"
				return rep, nil
			case !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)):
				rep.FirstBroken, rep.Reason = e.ID, "its content does not match its hash (the entry was changed)"
				return rep, nil
			}
			prev, after = e.Hash, e.ID
		}
		if len(page) < pageSize {
			return rep, nil
		}
	}
}
