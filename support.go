package latchkey

import (
	"log/slog"
	"strconv"
	"time"
)

// TicketStatus is where a support ticket stands. A ticket starts new and moves through
// in progress, waiting (for the requester) and resolved to closed; agents may set any status.
type TicketStatus string

// Ticket statuses.
const (
	TicketNew        TicketStatus = "new"
	TicketInProgress TicketStatus = "in_progress"
	TicketWaiting    TicketStatus = "waiting"
	TicketResolved   TicketStatus = "resolved"
	TicketClosed     TicketStatus = "closed"
)

// TicketStatuses lists every status in workflow order.
var TicketStatuses = []TicketStatus{TicketNew, TicketInProgress, TicketWaiting, TicketResolved, TicketClosed}

// Valid reports whether s is one of TicketStatuses.
func (s TicketStatus) Valid() bool {
	for _, x := range TicketStatuses {
		if s == x {
			return true
		}
	}
	return false
}

// Label is the status in words, for pages and mails.
func (s TicketStatus) Label() string {
	switch s {
	case TicketNew:
		return "New"
	case TicketInProgress:
		return "In progress"
	case TicketWaiting:
		return "Waiting for requester"
	case TicketResolved:
		return "Resolved"
	case TicketClosed:
		return "Closed"
	}
	return string(s)
}

// Open reports whether the ticket still needs work (not resolved or closed).
func (s TicketStatus) Open() bool { return s != TicketResolved && s != TicketClosed }

// Audit actions of the support desk. Every agent action carries the ticket (AuditEvent.TicketID).
const (
	ActionTicketCreated   = "ticket.created"
	ActionTicketMessage   = "ticket.message"  // the requester added a message
	ActionTicketReplied   = "ticket.replied"  // an agent answered (by email)
	ActionTicketStatus    = "ticket.status"   // an agent changed the status
	ActionTicketVerified  = "ticket.verified" // an agent recorded identity checks
	ActionTicketFactor    = "ticket.factor_removed"
	ActionTicketUserAdded = "ticket.user_invited"
	ActionTicketRefused   = "ticket.refused" // an agent action refused (role, missing checks)
)

// Ticket is a support request. ID is the number people quote ("#1042"); the tracking token
// that lets the requester follow the ticket is never stored, only its hash.
type Ticket struct {
	ID    int64
	Email string // as entered, trimmed
	// EmailKey is the mailbox Email reaches in canonical form (support.MailboxKey), which the
	// per-address limit counts.
	EmailKey string
	Username string // as entered, normalised; may be empty
	Type     string // a request type ID from configuration, e.g. "lost_phone"
	Subject  string // a short line for the queue and the mail subjects
	Status   TicketStatus
	// TrackingHash is the keyed hash of the tracking token.
	TrackingHash []byte
	// Checks are the IDs of the identity checks an agent recorded as done, CheckedBy the
	// agent and CheckedAt when; an MFA action needs them complete.
	Checks    []string
	CheckedBy UserID
	CheckedAt *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Number is the ticket number as people write it: "#1042".
func (t *Ticket) Number() string { return "#" + strconv.FormatInt(t.ID, 10) }

// LogValue keeps the tracking hash and the requester's address out of logs.
func (t *Ticket) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", t.ID), slog.String("status", string(t.Status)))
}

// Ticket message authors.
const (
	AuthorRequester = "requester"
	AuthorAgent     = "agent"
)

// TicketMessage is one entry of a ticket's conversation.
type TicketMessage struct {
	ID       int64
	TicketID int64
	Author   string // AuthorRequester or AuthorAgent
	// AgentID and AgentName name the agent of an AuthorAgent message.
	AgentID   UserID
	AgentName string
	Body      string
	CreatedAt time.Time
}

// TicketFilter selects tickets, newest first. Nil or zero fields do not filter.
type TicketFilter struct {
	Status *TicketStatus
	// Open selects tickets that are neither resolved nor closed (ignored when Status is set).
	Open bool
	Type *string
	// CreatedBefore selects tickets created before this time (the queue's age filter).
	CreatedBefore *time.Time
	// OldestFirst lists the oldest tickets first (the most overdue); newest first otherwise.
	OldestFirst bool
	Offset      int
	Limit       int // 0 means no limit
}

// TicketUpdate changes the non-nil fields of a ticket.
type TicketUpdate struct {
	Status *TicketStatus
	// Checks replaces the recorded identity checks, stamped with CheckedBy and the store's
	// clock.
	Checks    *[]string
	CheckedBy UserID
}

// TicketLimit bounds the tickets opened from one email address: at most Max since Since.
// A zero Max does not limit.
type TicketLimit struct {
	Max   int
	Since time.Time
}

// TicketStore persists support tickets.
type TicketStore interface {
	// CreateTicket inserts t (status new) with its first message in one transaction and sets
	// t.ID, t.CreatedAt, t.UpdatedAt and the message's IDs and time. With limit.Max > 0 it
	// first counts the tickets with t.EmailKey (t.Email in lower case when empty) created
	// since limit.Since and
	// returns EThrottled, inserting nothing, when there are limit.Max already; the count and
	// the insert are serialised per address, so concurrent requests cannot exceed it.
	CreateTicket(ctx Context, t *Ticket, first *TicketMessage, limit TicketLimit) error
	// FindTicketByID returns ENotFound when there is no such ticket.
	FindTicketByID(ctx Context, id int64) (*Ticket, error)
	// FindTicketByTrackingHash returns ENotFound when no ticket has that tracking hash.
	FindTicketByTrackingHash(ctx Context, hash []byte) (*Ticket, error)
	// FindTickets returns the matching tickets, newest first, and their total count
	// ignoring Offset and Limit.
	FindTickets(ctx Context, f TicketFilter) ([]*Ticket, int, error)
	// UpdateTicket applies upd, sets UpdatedAt and returns the ticket, or ENotFound.
	UpdateTicket(ctx Context, id int64, upd TicketUpdate) (*Ticket, error)
	// AddTicketMessage appends m to its ticket and, in the same transaction, sets the
	// ticket's status to status when it is not nil. ENotFound when the ticket does not exist.
	AddTicketMessage(ctx Context, m *TicketMessage, status *TicketStatus) error
	// FindTicketMessages returns a ticket's conversation, oldest first.
	FindTicketMessages(ctx Context, ticketID int64) ([]*TicketMessage, error)
	// FindUsersByEmail returns the users whose address is email (case-insensitively), by ID.
	FindUsersByEmail(ctx Context, email string) ([]*User, error)
	// RecentSignIns returns the user's latest sign-in audit events (actions "login.*"),
	// newest first, at most limit.
	RecentSignIns(ctx Context, userID UserID, limit int) ([]*AuditEvent, error)
}
