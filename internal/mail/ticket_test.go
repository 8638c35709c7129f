package mail_test

import (
	"strings"
	"testing"
	"time"

	lkmail "github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
)

var ticket = lkmail.TicketData{
	Number:      1042,
	Subject:     "Lost or new phone / authenticator",
	Type:        "Lost or new phone / authenticator",
	TrackingURL: "https://id.example.com/support/t/TOKEN123",
	Message:     "I lost my phone & can't sign in.",
	Agent:       "sam",
	Time:        time.Date(2026, 11, 22, 10, 15, 0, 0, time.UTC),
	Domain:      "id.example.com",
}

func TestTicketMails(t *testing.T) {
	for _, tt := range []struct {
		name    string
		render  func(string, lkmail.TicketData) (lkmail.Message, error)
		subject string
		says    []string
		headers map[string]string
	}{
		{"TicketCreated", lkmail.TicketCreated, "[Ticket #1042] We received your request: Lost or new phone / authenticator",
			[]string{"#1042", "TOKEN123", "will ever ask for your password", "Sunday 22 November 2026 at 10:15 UTC"},
			map[string]string{"Message-Id": "<ticket-1042@id.example.com>"}},
		{"TicketAnswered", lkmail.TicketAnswered, "[Ticket #1042] Lost or new phone / authenticator",
			[]string{"#1042", "sam of the support desk", "open the link in our first email"},
			map[string]string{"In-Reply-To": "<ticket-1042@id.example.com>", "References": "<ticket-1042@id.example.com>"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := ticket
			if tt.name == "TicketAnswered" {
				d.TrackingURL = "" // only the token's hash is stored: answers point to the first mail
			}
			m, err := tt.render("alice@example.com", d)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			for _, want := range tt.says {
				if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
					t.Errorf("a part lacks %q:\n%s\n%s", want, m.Text, m.HTML)
				}
			}
			// The answer carries the agent's message (escaped in HTML); the confirmation never
			// repeats the requester's, which anyone can send to any address.
			shown := strings.Contains(m.Text, "I lost my phone & can't sign in.") && strings.Contains(m.HTML, "I lost my phone &amp; can&#39;t sign in.")
			if shown != (tt.name == "TicketAnswered") {
				t.Errorf("the message shown: %v\n%s\n%s", shown, m.Text, m.HTML)
			}
			// Over a real SMTP server, the threading headers arrive.
			srv := mailtest.StartServer(t)
			s, err := lkmail.New(lkmail.Options{SMTPURL: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t)
			if err := s.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, err := srv.WaitFor(ctx, "alice@example.com", tt.subject)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				if h := got.Header.Get(k); h != v {
					t.Errorf("header %s = %q, want %q", k, h, v)
				}
			}
		})
	}
}

func TestTicketMailsEscapeHTML(t *testing.T) {
	evil := ticket
	evil.Message = `<script>alert(1)</script>`
	evil.Subject = `<img src=x>`
	for _, render := range []func(string, lkmail.TicketData) (lkmail.Message, error){lkmail.TicketCreated, lkmail.TicketAnswered} {
		m, err := render("a@example.com", evil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<img") {
			t.Errorf("the HTML holds raw markup from the ticket:\n%s", m.HTML)
		}
	}
}
