package mail_test

import (
	"strings"
	"testing"

	lkmail "github.com/latchkey/latchkey/internal/mail"
)

var kinds = []struct {
	name    string
	render  func(string, lkmail.Data) (lkmail.Message, error)
	subject string
	says    string
}{
	{"TOTPEnabled", lkmail.TOTPEnabled, "Two-factor authentication was enabled", "turned on"},
	{"TOTPDisabled", lkmail.TOTPDisabled, "Two-factor authentication was disabled", "turned off"},
	{"PasswordChanged", lkmail.PasswordChanged, "Your password was changed", "password of your account was changed"},
	{"RecoveryCodeUsed", lkmail.RecoveryCodeUsed, "A recovery code was used to sign in", "7 recovery codes left"},
	{"KeyAdded", lkmail.KeyAdded, "A security key was added", "was added to your account"},
	{"KeyRemoved", lkmail.KeyRemoved, "A security key was removed", "can no longer be used"},
	{"MFAReset", lkmail.MFAReset, "All your sign-in methods were reset", "Every second factor"},
}

func TestKinds(t *testing.T) {
	for _, tt := range kinds {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.render("alice@example.com", data)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if m.To != "alice@example.com" || m.Subject != tt.subject {
				t.Errorf("To %q, Subject %q; want alice@example.com, %q", m.To, m.Subject, tt.subject)
			}
			for _, part := range []struct{ name, body string }{{"text", m.Text}, {"HTML", m.HTML}} {
				for _, want := range []string{
					tt.says,
					"alice",
					"Sunday 22 November 2026 at 10:15 UTC",
					"192.0.2.7",
					"Firefox/140.0",
					"If this wasn't you",
					"contact your support desk",
					securityURL,
					"Latchkey",
				} {
					if !strings.Contains(part.body, want) {
						t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
					}
				}
			}
			if strings.Contains(m.Text, "{{") || strings.Contains(m.HTML, "{{") || strings.Contains(m.Text, "\n\n\n") {
				t.Errorf("untidy output:\n%s", m.Text)
			}
			if strings.Contains(m.HTML, "http://") || strings.Contains(m.HTML, "<link") || strings.Contains(m.HTML, "<img") || strings.Contains(m.HTML, "<script") {
				t.Errorf("the HTML loads external resources:\n%s", m.HTML)
			}
		})
	}
}

func TestKindsEscapeHTML(t *testing.T) {
	evil := data
	evil.Username = `<script>alert(1)</script>`
	evil.UserAgent = `"><img src=x onerror=alert(2)>`
	evil.IP = `<b>192.0.2.7</b>`
	evil.ProductName = `<i>Acme</i>`
	for _, tt := range kinds {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.render("a@example.com", evil)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range []string{"<script>", "<img", "<b>", "<i>"} {
				if strings.Contains(m.HTML, raw) {
					t.Errorf("the HTML contains %q unescaped", raw)
				}
			}
			for _, esc := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "&lt;b&gt;192.0.2.7&lt;/b&gt;", "&lt;i&gt;Acme&lt;/i&gt;"} {
				if !strings.Contains(m.HTML, esc) {
					t.Errorf("the HTML lacks %q", esc)
				}
			}
			if !strings.Contains(m.Text, evil.Username) {
				t.Errorf("the text part should show the username as it is:\n%s", m.Text)
			}
		})
	}
}

func TestRecoveryCodesLeft(t *testing.T) {
	tests := []struct {
		name string
		left int
		want string
	}{
		{"none", 0, "You have no recovery codes left"},
		{"one", 1, "You have 1 recovery code left"},
		{"several", 9, "You have 9 recovery codes left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := data
			d.RecoveryCodesLeft = tt.left
			m, err := lkmail.RecoveryCodeUsed("a@example.com", d)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Text, tt.want) || !strings.Contains(m.HTML, tt.want) {
				t.Errorf("RecoveryCodeUsed with %d left lacks %q:\n%s", tt.left, tt.want, m.Text)
			}
		})
	}
}

func TestRenderOptionalFields(t *testing.T) {
	d := lkmail.Data{Username: "bob", Time: data.Time, ProductName: "Acme ID"}
	m, err := lkmail.PasswordChanged("bob@example.com", d)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"From:", "Browser:", "/settings/security", "Latchkey"} {
		if strings.Contains(m.Text, absent) {
			t.Errorf("text part shows %q without data for it:\n%s", absent, m.Text)
		}
	}
	if strings.Contains(m.HTML, "<a ") || !strings.Contains(m.HTML, "Acme ID") || !strings.Contains(m.Text, "Acme ID") {
		t.Errorf("HTML part:\n%s", m.HTML)
	}
}

func TestRenderUnknownKind(t *testing.T) {
	for _, kind := range []string{"", "nope", "layout.txt", "greeting", "totp_enabled.body"} {
		if _, err := lkmail.Render(kind, "a@example.com", data); err == nil {
			t.Errorf("Render(%q) = nil error, want unknown kind", kind)
		}
	}
}
