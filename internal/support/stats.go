package support

import (
	"context"
	"time"

	"github.com/latchkey/latchkey"
)

// ageBands are the dashboard's bands of open tickets, youngest first.
var ageBands = []struct {
	label string
	older time.Duration // the band holds tickets at least this old...
}{
	{"under a day", 0},
	{"1–3 days", 24 * time.Hour},
	{"3–7 days", 3 * 24 * time.Hour},
	{"over a week", 7 * 24 * time.Hour},
}

// TicketStats counts the open tickets (neither resolved nor closed) by age, oldest band
// last, for the admin dashboard (latchkey.TicketStats).
func (s *Service) TicketStats(ctx context.Context) ([]latchkey.TicketAge, error) {
	now := s.now()
	// olderThan[i] is the number of open tickets at least ageBands[i].older old.
	olderThan := make([]int, len(ageBands))
	for i, b := range ageBands {
		f := latchkey.TicketFilter{Open: true, Limit: 1}
		if b.older > 0 {
			before := now.Add(-b.older)
			f.CreatedBefore = &before
		}
		_, n, err := s.opt.Store.FindTickets(ctx, f)
		if err != nil {
			return nil, err
		}
		olderThan[i] = n
	}
	out := make([]latchkey.TicketAge, len(ageBands))
	for i, b := range ageBands {
		n := olderThan[i]
		if i+1 < len(ageBands) {
			n -= olderThan[i+1]
		}
		out[i] = latchkey.TicketAge{Label: b.label, Count: n}
	}
	return out, nil
}
