package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
)

// memStore is an in-memory AuditStore that chains like the SQL store.
type memStore struct{ events []*latchkey.AuditEvent }

func (m *memStore) AppendAuditEvent(_ context.Context, e *latchkey.AuditEvent) error {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.ID = int64(len(m.events) + 1)
	if n := len(m.events); n > 0 {
		e.PrevHash = m.events[n-1].Hash
	}
	e.Hash = e.ComputeHash(e.PrevHash)
	c := *e
	m.events = append(m.events, &c)
	return nil
}

func (m *memStore) FindAuditEvents(_ context.Context, f latchkey.AuditFilter) ([]*latchkey.AuditEvent, error) {
	var out []*latchkey.AuditEvent
	for _, e := range m.events {
		if e.ID > f.AfterID && (f.Limit == 0 || len(out) < f.Limit) {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}

func filled(t *testing.T, n int) *memStore {
	m := &memStore{}
	r := audit.New(m, nil, func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) })
	for i := range n {
		if err := r.Record(context.Background(), latchkey.AuditEvent{UserID: 1, Username: "alice", Action: latchkey.ActionLogin, Outcome: latchkey.OutcomeFailure, IP: "192.0.2.1", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		tamper func(m *memStore)
		want   int64
	}{
		{"empty", 0, nil, 0},
		{"intact", 5, nil, 0},
		{"edited field", 5, func(m *memStore) { m.events[2].Outcome = latchkey.OutcomeSuccess }, 3},
		{"edited time", 5, func(m *memStore) { m.events[2].Time = m.events[2].Time.Add(time.Second) }, 3},
		{"removed entry", 5, func(m *memStore) { m.events = append(m.events[:2], m.events[3:]...) }, 4},
		{"first entry's hash replaced", 3, func(m *memStore) { m.events[0].Hash = make([]byte, 32) }, 1},
		{"entry rehashed but next not relinked", 4, func(m *memStore) {
			e := m.events[1]
			e.Detail = "forged"
			e.Hash = e.ComputeHash(e.PrevHash)
		}, 3},
		{"intact across pages", 2500, nil, 0},
		{"broken on the third page", 2500, func(m *memStore) { m.events[2100].Username = "mallory" }, 2101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filled(t, tt.n)
			if tt.tamper != nil {
				tt.tamper(m)
			}
			rep, err := audit.Verify(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if rep.FirstBroken != tt.want {
				t.Errorf("FirstBroken = %d (%s), want %d", rep.FirstBroken, rep.Reason, tt.want)
			}
			if tt.want == 0 && rep.Entries != tt.n {
				t.Errorf("Entries = %d, want %d", rep.Entries, tt.n)
			}
		})
	}
}
