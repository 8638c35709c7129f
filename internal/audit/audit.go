// Package audit records security events in the append-only, hash-chained audit trail and
// verifies the chain.
//
// The store chains each entry to the one before it (PrevHash is the previous entry's Hash,
// Hash is ComputeHash(PrevHash)), so editing an entry breaks its own hash and removing one
// breaks the link of the entry after it. Removing entries from the end of the trail leaves
// a shorter chain that is still intact: to detect that, keep Report.LastID and
// Report.LastHash somewhere else and compare them with a later Verify.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/latchkey/latchkey"
)

// Recorder appends events to the audit trail. It is safe for concurrent use when its store
// is.
type Recorder struct {
	store latchkey.AuditStore
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Recorder that appends to store. A nil logger discards; a nil now uses
// time.Now.
func New(store latchkey.AuditStore, logger *slog.Logger, now func() time.Time) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: store, log: logger, now: now}
}

// Record appends e, stamped with now() when e.Time is zero; the store sets ID and the hashes.
// When the store fails, Record logs the failure at error level with the action, outcome and
// user ID only (never IP, user agent or detail) and returns the error, so the caller decides
// whether the operation may go on without its audit entry.
func (r *Recorder) Record(ctx context.Context, e latchkey.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if err := r.store.AppendAuditEvent(ctx, &e); err != nil {
		r.log.ErrorContext(ctx, "append audit event failed",
			"action", e.Action, "outcome", e.Outcome, "user_id", int64(e.UserID), "actor_id", int64(e.ActorID), "err", err)
		return fmt.Errorf("append audit event %s: %w", e.Action, err)
	}
	return nil
}

// Report is the outcome of Verify.
type Report struct {
	// Entries is how many entries were checked, the broken one included.
	Entries int
	// FirstBroken is the ID of the first entry whose PrevHash differs from the previous
	// entry's Hash, or whose Hash differs from ComputeHash(PrevHash); 0 when the chain is
	// intact.
	FirstBroken int64
	// Reason says what is wrong with FirstBroken; "" when the chain is intact.
	Reason string
	// LastID and LastHash identify the last entry of an intact chain (0 and nil for an empty
	// trail), an anchor to keep elsewhere: a later trail must still contain this entry with
	// this hash, or its tail was cut off.
	LastID   int64
	LastHash []byte
	// Pending counts the entries not yet chained when the walk began (on PostgreSQL, those
	// committed while Verify chained the ones waiting): they are not checked.
	Pending int
}

// pageSize is how many entries Verify reads at a time.
const pageSize = 1000

// Verify chains the entries still waiting for it (the store's ChainAuditEvents), then walks
// the whole chain in chain order (on SQLite ID order), a page at a time, and checks each
// entry's link to the previous entry and its own hash. It stops at the first broken entry.
// Places and IDs may skip values (database sequences do), so only the chain counts. The
// error is for failures to read the trail, not for a broken chain.
func Verify(ctx context.Context, store latchkey.AuditStore) (Report, error) {
	var rep Report
	pending, err := store.ChainAuditEvents(ctx)
	if err != nil {
		return rep, fmt.Errorf("chain pending audit events: %w", err)
	}
	rep.Pending = pending
	var prev []byte
	var after int64
	for {
		page, err := store.FindAuditChain(ctx, after, pageSize)
		if err != nil {
			return rep, fmt.Errorf("read audit chain after %d: %w", after, err)
		}
		for _, e := range page {
			if e.Seq <= after {
				// A store that returns entries out of order would make the walk loop or
				// skip entries; that is a bug, not tampering.
				return rep, fmt.Errorf("read audit chain after %d: got place %d out of order", after, e.Seq)
			}
			rep.Entries++
			switch {
			case !bytes.Equal(e.PrevHash, prev):
				rep.FirstBroken = e.ID
				rep.Reason = "its link to the previous entry does not match: an entry before it was removed or changed"
			case !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)):
				rep.FirstBroken = e.ID
				rep.Reason = "its content does not match its hash: the entry was changed"
			}
			if rep.FirstBroken != 0 {
				rep.LastID, rep.LastHash = 0, nil
				return rep, nil
			}
			prev, after = e.Hash, e.Seq
			rep.LastID, rep.LastHash = e.ID, e.Hash
		}
		if len(page) < pageSize {
			return rep, nil
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("verify audit trail: %w", err)
		}
	}
}
