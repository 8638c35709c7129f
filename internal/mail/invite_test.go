package mail_test

import (
	"strings"
	"testing"
	"time"

	lkmail "github.com/latchkey/latchkey/internal/mail"
)

func TestUserInvited(t *testing.T) {
	d := lkmail.InviteData{
		Username:  "bob<script>",
		InvitedBy: "<i>root</i>",
		URL:       "https://id.example.com/activate?token=abc_DEF-123",
		ExpiresAt: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC),
	}
	m, err := lkmail.UserInvited("bob@example.com", d)
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "bob@example.com" || m.Subject != "Your Latchkey account is ready to activate" {
		t.Errorf("To %q, Subject %q", m.To, m.Subject)
	}
	for _, part := range []struct{ name, body string }{{"text", m.Text}, {"html", m.HTML}} {
		for _, want := range []string{"https://id.example.com/activate?token=abc_DEF-123", "id.example.com", "Thursday 26 November 2026 at 09:30 UTC", "works once"} {
			if !strings.Contains(part.body, want) {
				t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
			}
		}
	}
	if !strings.Contains(m.HTML, `href="https://id.example.com/activate?token=abc_DEF-123"`) || !strings.Contains(m.HTML, "Activate your account") {
		t.Error("the HTML part has no activation button")
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<i>root") || !strings.Contains(m.HTML, "bob&lt;script&gt;") {
		t.Error("the HTML part does not escape the user's data")
	}
	if (lkmail.InviteData{}).Product() != "Latchkey" || (lkmail.InviteData{ProductName: "Acme ID"}).Product() != "Acme ID" {
		t.Error("Product")
	}
}
