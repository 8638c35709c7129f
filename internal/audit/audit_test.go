package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
)

// memStore is an in-memory AuditStore that chains entries the way the SQL store must. The
// function fields, when set, replace its behaviour.
type memStore struct {
	events  []*latchkey.AuditEvent
	nextID  int64
	gaps    bool                   // IDs skip values, as database sequences may
	filters []latchkey.AuditFilter // every FindAuditEvents call

	appendFunc func(e *latchkey.AuditEvent) error
	findFunc   func(f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error)
	// pending and chainErr are ChainAuditEvents' answer; chained counts its calls.
	pending  int
	chainErr error
	chained  int
}

// ChainAuditEvents has nothing to chain: memStore chains each entry as it is appended, as
// the SQLite store does.
func (m *memStore) ChainAuditEvents(context.Context) (int, error) {
	m.chained++
	return m.pending, m.chainErr
}

// FindAuditChain is the chain in ID order, as on SQLite: an entry's place is its ID.
func (m *memStore) FindAuditChain(ctx context.Context, afterSeq int64, limit int) ([]*latchkey.AuditEvent, error) {
	events, err := m.FindAuditEvents(ctx, latchkey.AuditFilter{AfterID: afterSeq, Limit: limit})
	for _, e := range events {
		e.Seq = e.ID
	}
	return events, err
}

func (m *memStore) AppendAuditEvent(_ context.Context, e *latchkey.AuditEvent) error {
	if m.appendFunc != nil {
		return m.appendFunc(e)
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	m.nextID++
	if m.gaps {
		m.nextID += m.nextID % 3
	}
	e.ID = m.nextID
	e.PrevHash = nil
	if n := len(m.events); n > 0 {
		e.PrevHash = m.events[n-1].Hash
	}
	e.Hash = e.ComputeHash(e.PrevHash)
	c := *e
	m.events = append(m.events, &c)
	return nil
}

func (m *memStore) FindAuditEvents(_ context.Context, f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) {
	m.filters = append(m.filters, f)
	if m.findFunc != nil {
		return m.findFunc(f)
	}
	var out []*latchkey.AuditEvent
	for _, e := range m.events {
		if e.ID > f.AfterID && (f.UserID == nil || e.UserID == *f.UserID) && (f.Limit == 0 || len(out) < f.Limit) {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// filled returns a store holding n entries recorded through a Recorder.
func filled(t *testing.T, n int, gaps bool) *memStore {
	t.Helper()
	m := &memStore{gaps: gaps}
	r := audit.New(m, nil, func() time.Time { return t0 })
	for i := range n {
		e := latchkey.AuditEvent{UserID: 1, Username: "alice", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeFailure, IP: "192.0.2.1", UserAgent: "Firefox", Detail: fmt.Sprint(i)}
		if err := r.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		gaps   bool
		tamper func(m *memStore)
		broken int // 1-based position of the first broken entry as appended (its ID without gaps); 0 intact
	}{
		{name: "empty trail", n: 0},
		{name: "one entry", n: 1},
		{name: "intact", n: 5},
		{name: "edited field of entry 3", n: 5, tamper: func(m *memStore) { m.events[2].Outcome = latchkey.OutcomeSuccess }, broken: 3},
		{name: "edited time of entry 3", n: 5, tamper: func(m *memStore) { m.events[2].Time = m.events[2].Time.Add(time.Second) }, broken: 3},
		{name: "edited user of entry 3", n: 5, tamper: func(m *memStore) { m.events[2].UserID = 2 }, broken: 3},
		{name: "removed entry 3", n: 5, tamper: func(m *memStore) { m.events = append(m.events[:2], m.events[3:]...) }, broken: 4},
		{name: "removed first entry", n: 5, tamper: func(m *memStore) { m.events = m.events[1:] }, broken: 2},
		{name: "first entry's hash replaced", n: 3, tamper: func(m *memStore) { m.events[0].Hash = make([]byte, 32) }, broken: 1},
		{name: "first entry given a predecessor", n: 3, tamper: func(m *memStore) { m.events[0].PrevHash = make([]byte, 32) }, broken: 1},
		{name: "last entry edited", n: 5, tamper: func(m *memStore) { m.events[4].Detail = "forged" }, broken: 5},
		{name: "entry 2 rehashed but entry 3 not relinked", n: 4, tamper: func(m *memStore) {
			e := m.events[1]
			e.Detail = "forged"
			e.Hash = e.ComputeHash(e.PrevHash)
		}, broken: 3},
		{name: "entries 2 and 3 swapped", n: 4, tamper: func(m *memStore) {
			m.events[1].ID, m.events[2].ID = m.events[2].ID, m.events[1].ID
			m.events[1], m.events[2] = m.events[2], m.events[1]
		}, broken: 2},
		{name: "intact with gaps in IDs", n: 10, gaps: true},
		{name: "edited with gaps in IDs", n: 10, gaps: true, tamper: func(m *memStore) { m.events[6].IP = "203.0.113.1" }, broken: 7},
		{name: "removed with gaps in IDs", n: 10, gaps: true, tamper: func(m *memStore) { m.events = append(m.events[:6], m.events[7:]...) }, broken: 8},
		{name: "intact across pages", n: 2500},
		{name: "exactly one page", n: 1000},
		{name: "broken on the third page", n: 2500, tamper: func(m *memStore) { m.events[2100].Username = "mallory" }, broken: 2101},
		{name: "removed at a page boundary", n: 2500, tamper: func(m *memStore) { m.events = append(m.events[:1000], m.events[1001:]...) }, broken: 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filled(t, tt.n, tt.gaps)
			var wantID int64
			if tt.broken > 0 {
				wantID = m.events[tt.broken-1].ID
			}
			if tt.tamper != nil {
				tt.tamper(m)
			}
			rep, err := audit.Verify(context.Background(), m)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.FirstBroken != wantID {
				t.Errorf("Verify: FirstBroken = %d (%s), want %d", rep.FirstBroken, rep.Reason, wantID)
			}
			if (rep.Reason == "") != (wantID == 0) {
				t.Errorf("Verify: Reason = %q with FirstBroken %d", rep.Reason, rep.FirstBroken)
			}
			if wantID == 0 {
				if rep.Entries != len(m.events) {
					t.Errorf("Verify: Entries = %d, want %d", rep.Entries, len(m.events))
				}
				var lastID int64
				var lastHash []byte
				if n := len(m.events); n > 0 {
					lastID, lastHash = m.events[n-1].ID, m.events[n-1].Hash
				}
				if rep.LastID != lastID || !bytes.Equal(rep.LastHash, lastHash) {
					t.Errorf("Verify: last entry %d %x, want %d %x", rep.LastID, rep.LastHash, lastID, lastHash)
				}
			}
			for _, f := range m.filters {
				if f.Limit < 1 || f.Limit > 1000 {
					t.Fatalf("Verify read with Limit %d, want pages of at most 1000", f.Limit)
				}
			}
			if min := len(m.events)/1000 + 1; wantID == 0 && len(m.filters) < min {
				t.Errorf("Verify read %d pages, want at least %d", len(m.filters), min)
			}
		})
	}
}

func TestVerifyHashesAsComputeHash(t *testing.T) {
	// Guards the test fake: the chain Verify accepts is the one ComputeHash defines.
	m := filled(t, 3, false)
	for i, e := range m.events {
		var prev []byte
		if i > 0 {
			prev = m.events[i-1].Hash
		}
		if !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, e.ComputeHash(prev)) {
			t.Fatalf("entry %d is not chained", e.ID)
		}
	}
}

func TestVerifyStoreErrors(t *testing.T) {
	boom := errors.New("database is locked")
	tests := []struct {
		name string
		find func(f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error)
		want error
	}{
		{"read fails", func(latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) { return nil, boom }, boom},
		{"entries out of order", func(f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) {
			return []*latchkey.AuditEvent{{ID: f.AfterID}}, nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := audit.Verify(context.Background(), &memStore{findFunc: tt.find})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Verify = %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
	t.Run("chaining fails", func(t *testing.T) {
		m := filled(t, 3, false)
		m.chainErr = boom
		if _, err := audit.Verify(context.Background(), m); !errors.Is(err, boom) {
			t.Errorf("Verify = %v, want an error wrapping %v", err, boom)
		}
		if len(m.filters) != 0 {
			t.Errorf("Verify read the chain after chaining failed")
		}
	})
}

// TestVerifyChainsFirst: Verify asks the store to chain what waits before it walks, and
// reports what is still pending.
func TestVerifyChainsFirst(t *testing.T) {
	m := filled(t, 3, false)
	m.pending = 2
	rep, err := audit.Verify(context.Background(), m)
	if err != nil || rep.FirstBroken != 0 || rep.Entries != 3 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if m.chained != 1 || rep.Pending != 2 {
		t.Errorf("ChainAuditEvents called %d times, Pending = %d; want 1 and 2", m.chained, rep.Pending)
	}
}

func TestRecord(t *testing.T) {
	later := t0.Add(time.Hour)
	tests := []struct {
		name     string
		time     time.Time
		wantTime time.Time
	}{
		{"zero time is stamped now", time.Time{}, t0},
		{"given time is kept", later, later},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memStore{}
			r := audit.New(m, nil, func() time.Time { return t0 })
			e := latchkey.AuditEvent{Time: tt.time, UserID: 7, Username: "bob", Action: latchkey.ActionTOTPEnabled, Outcome: latchkey.OutcomeSuccess, IP: "192.0.2.9", UserAgent: "Safari", Detail: "x", TicketID: 3}
			if err := r.Record(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			if len(m.events) != 1 {
				t.Fatalf("store holds %d events, want 1", len(m.events))
			}
			got := *m.events[0]
			if !got.Time.Equal(tt.wantTime) {
				t.Errorf("stored Time = %v, want %v", got.Time, tt.wantTime)
			}
			want := e
			want.Time, got.Time = time.Time{}, time.Time{}
			got.ID, got.PrevHash, got.Hash = 0, nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored %+v, want %+v", got, want)
			}
		})
	}
}

func TestRecordFailure(t *testing.T) {
	boom := errors.New("disk full")
	var logs bytes.Buffer
	m := &memStore{appendFunc: func(*latchkey.AuditEvent) error { return boom }}
	r := audit.New(m, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
	e := latchkey.AuditEvent{UserID: 7, Username: "bob", Action: latchkey.ActionLoginTOTP, Outcome: latchkey.OutcomeFailure, IP: "192.0.2.9", UserAgent: "SecretAgent/1.0", Detail: "code 123456"}
	err := r.Record(context.Background(), e)
	if !errors.Is(err, boom) {
		t.Fatalf("Record = %v, want an error wrapping %v", err, boom)
	}
	log := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"action":"login.totp"`, `"user_id":7`, "disk full"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s: %s", want, log)
		}
	}
	for _, secret := range []string{"123456", "SecretAgent", "192.0.2.9"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains %q: %s", secret, log)
		}
	}
}
