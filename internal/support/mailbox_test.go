package support_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/support"
)

func TestMailboxKey(t *testing.T) {
	for want, spellings := range map[string][]string{
		"alice@example.com":       {"alice@example.com", "Alice@EXAMPLE.com", "alice+desk@example.com", "ALICE+x+y@Example.Com", "\uff41lice@\uff45xample.com", "alice@example.com."},
		"jörg@xn--mller-kva.de":   {"jörg@müller.de", "JÖRG@MÜLLER.DE", "jo\u0308rg@mu\u0308ller.de", "Jörg+1@xn--mller-kva.de", "jörg@XN--MLLER-KVA.DE"},
		"strasse@example.org":     {"STRASSE@example.org", "straße@example.org"},
		"+tag@example.com":        {"+tag@example.com"}, // a local part that is only a tag keeps it
		"root@localhost":          {"Root@LOCALHOST"},
		"bob.smith@example.com":   {"Bob.Smith@example.com"}, // dots are the provider's business
		"x@b\u00fccher.invalid--": {"x@B\u00dcCHER.invalid--"},
	} {
		for _, s := range spellings {
			if got := support.MailboxKey(s); got != want {
				t.Errorf("MailboxKey(%q) = %q, want %q", s, got, want)
			}
		}
	}
	if a, b := support.MailboxKey("alice@example.com"), support.MailboxKey("alice@example.net"); a == b {
		t.Errorf("two domains, one key %q", a)
	}
}

// TestPerAddressLimitCountsTheMailbox: the per-address limit counts one mailbox however its
// address is spelled: Unicode case (which SQLite's lower() does not fold), the IDN's U-label
// and A-label, a +tag, full-width letters.
func TestPerAddressLimitCountsTheMailbox(t *testing.T) {
	e := newEnv(t, func(o *support.Options) { o.PerEmail = 3; o.IPBurst = 100 })
	ctx := context.Background()
	spellings := []string{"jörg@müller.de", "JÖRG@MÜLLER.DE", "jörg+help@xn--mller-kva.de", "jörg@MÜLLER.de", "\uff4a\u00f6rg@m\u00fcller.de"}
	for i, addr := range spellings {
		_, err := e.svc.Create(ctx, login.Client{IP: fmt.Sprintf("192.0.2.%d", 10+i)}, support.NewTicket{Email: addr, Type: "other", Message: "hi"})
		if i < 3 && err != nil {
			t.Fatalf("ticket %d (%s): %v", i, addr, err)
		}
		if i >= 3 && code(err) != latchkey.EThrottled {
			t.Errorf("ticket %d (%s) = %v, want throttled: the same mailbox as the three before", i, addr, err)
		}
	}
	// Mail goes to the address as written.
	tickets, n, err := e.db.FindTickets(ctx, latchkey.TicketFilter{})
	if err != nil || n != 3 {
		t.Fatalf("FindTickets = %d, %v", n, err)
	}
	for _, tk := range tickets {
		if tk.EmailKey != "jörg@xn--mller-kva.de" {
			t.Errorf("ticket %d: key %q", tk.ID, tk.EmailKey)
		}
		if tk.Email == tk.EmailKey {
			t.Errorf("ticket %d: the address %q was replaced by its key", tk.ID, tk.Email)
		}
	}
	if _, err := e.svc.Create(ctx, login.Client{IP: "192.0.2.99"}, support.NewTicket{Email: "jorg@muller.de", Type: "other", Message: "hi"}); err != nil {
		t.Errorf("another mailbox: %v", err)
	}
}
