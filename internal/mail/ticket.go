package mail

import (
	"fmt"
	"strings"
	"time"
)

// Kinds of support-desk mail.
const (
	KindTicketCreated  = "ticket_created"
	KindTicketAnswered = "ticket_answered"
)

// TicketData is what the support-desk mails show. Every field is untrusted text: the HTML part
// escapes it.
type TicketData struct {
	Number  int64  // the ticket number, shown as "#1042"
	Subject string // the ticket's subject line
	Type    string // the request type in words
	// TrackingURL is the requester's link to the ticket; it carries the tracking token. Only
	// the confirmation has it (the server keeps only the token's hash); an answer without it
	// points to the first mail of the thread.
	TrackingURL string
	// Message is the agent's answer (TicketAnswered) or the requester's message
	// (TicketCreated).
	Message string
	// Agent names who answered; empty shows "The support desk".
	Agent       string
	Time        time.Time
	ProductName string
	// Domain is the host part of the threading Message-IDs, e.g. the public URL's host.
	Domain string
}

// Product is ProductName, or "Latchkey" when it is empty.
func (d TicketData) Product() string {
	if d.ProductName == "" {
		return "Latchkey"
	}
	return d.ProductName
}

// When is the time in UTC, for people.
func (d TicketData) When() string { return d.Time.UTC().Format("Monday 2 January 2006 at 15:04 UTC") }

// Ref is the subject prefix that keeps a ticket's mails in one conversation: "[Ticket #1042]".
func (d TicketData) Ref() string { return fmt.Sprintf("[Ticket #%d]", d.Number) }

// ThreadID is the Message-ID of the ticket's first mail; every later mail refers to it.
func (d TicketData) ThreadID() string {
	domain := strings.Trim(d.Domain, "[]")
	if domain == "" {
		domain = "latchkey.invalid"
	}
	return fmt.Sprintf("<ticket-%d@%s>", d.Number, domain)
}

// TicketCreated confirms a new ticket to its requester with the ticket number and the
// tracking link. It starts the mail thread (Message-ID ThreadID).
func TicketCreated(to string, d TicketData) (Message, error) {
	m, err := Render(KindTicketCreated, to, d)
	m.Headers = map[string]string{"Message-ID": d.ThreadID()}
	return m, err
}

// TicketAnswered sends an agent's answer to the requester, in the ticket's mail thread
// (In-Reply-To and References name the first mail; the subject keeps "[Ticket #N]").
func TicketAnswered(to string, d TicketData) (Message, error) {
	m, err := Render(KindTicketAnswered, to, d)
	m.Headers = map[string]string{"In-Reply-To": d.ThreadID(), "References": d.ThreadID()}
	return m, err
}
