// Package support is the support desk: tickets that anyone can open without signing in
// (throttled, answered by email, followed through an unguessable tracking link) and the agent
// console's actions on them (identity checks, reset of MFA, removal of one factor, inviting
// the user, replies, status changes), each audited with the agent, the ticket and the reason.
//
// The account-security rules of the actions (who may act on whom, what a reset removes) live
// in internal/login; this package decides when a ticket allows them.
package support

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	lkmail "github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/ratelimit"
)

// Store is the storage the support desk needs.
type Store interface {
	latchkey.TicketStore
	latchkey.UserStore
	// FindInvitationByUserID tells the agent console an account that was never activated.
	latchkey.InvitationStore
}

// Accounts is what the support desk asks of the sign-in service (*login.Service).
type Accounts interface {
	Factors(ctx context.Context, u *latchkey.User) ([]login.Factor, error)
	AgentResetMFA(ctx context.Context, c login.Client, a login.AgentAction, target *latchkey.User) error
	AgentRemoveFactor(ctx context.Context, c login.Client, a login.AgentAction, target *latchkey.User, factorRef string) error
	// RequireActivated refuses (EConflict) an account whose owner has not activated it yet:
	// it has nothing to reset or remove. The desk asks it before the ticket's own rules.
	RequireActivated(ctx context.Context, u *latchkey.User) error
}

// Inviter creates an account that receives an activation email to set a password and enrol
// MFA: (*login.Service).InviteUser of the admin console. actorMFA says whether the actor's
// session passed a second factor; it matters only for roles other than user, which the desk
// never asks for.
type Inviter interface {
	InviteUser(ctx context.Context, c login.Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error)
}

// Choice is a configurable option with a stable ID and a name people read: a request type
// or an identity check.
type Choice struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
}

// DefaultTypes are the request types offered when the configuration names none.
var DefaultTypes = []Choice{
	{"account_change", "Account and user data change (incl. user creation by admin and multi-factor authentication, MFA)"},
	{"lost_phone", "Lost or new phone / authenticator"},
	{"lost_key", "Security key lost"},
	{"other", "Other"},
}

// DefaultChecks are the identity checks an agent completes before an MFA action when the
// configuration names none.
var DefaultChecks = []Choice{
	{"callback", "Identity confirmed by a callback to the phone number on record"},
	{"manager", "Confirmed by the user's manager"},
	{"question", "Answered a question only the user knows"},
}

// Options configure a Service. Zero values take the defaults shown.
type Options struct {
	Store    Store
	Accounts Accounts
	// Inviter creates users from a ticket; nil hides that action.
	Inviter Inviter
	Mailer  lkmail.Sender
	Audit   *audit.Recorder
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	Rand    io.Reader        // default crypto/rand.Reader
	// Key keys the hashes of tracking tokens (at least 32 bytes), so a database dump yields
	// no working tracking link.
	Key []byte
	// PublicURL is where requesters reach the server; tracking links start with it.
	PublicURL string
	// Types are the request types (default DefaultTypes); Checks the identity checks
	// (default DefaultChecks), all of which an MFA action needs.
	Types  []Choice
	Checks []Choice
	// PerEmail tickets may be opened from one address per EmailWindow (default 5 per hour),
	// counted in the database so that every node sees them.
	PerEmail    int
	EmailWindow time.Duration
	// IPBurst requests (new tickets and requester messages) per IP address, then one more
	// per IPRefill (default 10, one every 3 minutes), per node.
	IPBurst  int
	IPRefill time.Duration
}

// Service is the support desk. It is safe for concurrent use.
type Service struct {
	opt Options
	ip  *ratelimit.Limiter
	log *slog.Logger
}

// New returns a Service. It panics on a missing dependency, which is a wiring bug.
func New(opt Options) *Service {
	if opt.Store == nil || opt.Accounts == nil || opt.Mailer == nil || opt.Audit == nil {
		panic("support: Store, Accounts, Mailer and Audit are required")
	}
	if len(opt.Key) < 32 {
		panic("support: Key must have at least 32 bytes")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	if len(opt.Types) == 0 {
		opt.Types = DefaultTypes
	}
	if len(opt.Checks) == 0 {
		opt.Checks = DefaultChecks
	}
	if opt.PerEmail <= 0 {
		opt.PerEmail = 5
	}
	if opt.EmailWindow <= 0 {
		opt.EmailWindow = time.Hour
	}
	if opt.IPBurst <= 0 {
		opt.IPBurst = 10
	}
	if opt.IPRefill <= 0 {
		opt.IPRefill = 3 * time.Minute
	}
	return &Service{opt: opt, ip: ratelimit.New(opt.IPBurst, opt.IPRefill), log: opt.Logger}
}

// Types lists the request types a requester chooses from.
func (s *Service) Types() []Choice { return s.opt.Types }

// Checks lists the identity checks of the agent console.
func (s *Service) Checks() []Choice { return s.opt.Checks }

// TypeName returns the name of a request type, or its ID when it is no longer configured.
func (s *Service) TypeName(id string) string {
	if i := slices.IndexFunc(s.opt.Types, func(c Choice) bool { return c.ID == id }); i >= 0 {
		return s.opt.Types[i].Name
	}
	return id
}

// ValidChoices reports every problem with a configured list of choices at once: IDs must be
// unique, 1–40 characters of a–z, 0–9, _ and -, and names 1–200 characters.
func ValidChoices(what string, cs []Choice) []string {
	var problems []string
	seen := map[string]bool{}
	for i, c := range cs {
		if !validID(c.ID) {
			problems = append(problems, fmt.Sprintf("%s %d: the id %q must be 1–40 characters of a–z, 0–9, _ and -", what, i+1, c.ID))
		}
		if seen[c.ID] {
			problems = append(problems, fmt.Sprintf("%s %d: the id %q appears twice", what, i+1, c.ID))
		}
		seen[c.ID] = true
		if n := utf8.RuneCountInString(strings.TrimSpace(c.Name)); n == 0 || n > 200 {
			problems = append(problems, fmt.Sprintf("%s %d: the name must be 1–200 characters", what, i+1))
		}
	}
	return problems
}

func validID(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

// TrackingPath is the path of a ticket's tracking page for token. The token is the only
// secret in it; the access log shows the path as TrackingPrefix + "…".
func TrackingPath(token string) string { return TrackingPrefix + token }

// TrackingPrefix starts every tracking path.
const TrackingPrefix = "/support/t/"

// TrackingURL is the absolute tracking link for token.
func (s *Service) TrackingURL(token string) string {
	return strings.TrimSuffix(s.opt.PublicURL, "/") + TrackingPath(token)
}

func (s *Service) hash(token string) []byte {
	m := hmac.New(sha256.New, s.opt.Key)
	m.Write([]byte("ticket-tracking\x00"))
	m.Write([]byte(token))
	return m.Sum(nil)
}

func (s *Service) newToken() (string, error) {
	b := make([]byte, 32) // 256 bits
	if _, err := io.ReadFull(s.opt.Rand, b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// record audits a step of ticketID: taken by agent (nil: by the requester, who is nobody
// signed in), on the account u when it concerns one (nil: the ticket only).
func (s *Service) record(ctx context.Context, c login.Client, agent, u *latchkey.User, ticketID int64, action, outcome, detail string) {
	e := latchkey.AuditEvent{Action: action, Outcome: outcome, IP: c.IP, UserAgent: c.UserAgent, TicketID: ticketID, Detail: detail}
	if agent != nil {
		e.ActorID, e.Actor = agent.ID, agent.Username
	}
	if u != nil {
		e.UserID, e.Username = u.ID, u.Username
	}
	_ = s.opt.Audit.Record(ctx, e)
}

func (s *Service) domain() string {
	if u, err := url.Parse(s.opt.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return ""
}

func (s *Service) mailData(t *latchkey.Ticket, token, message string) lkmail.TicketData {
	return lkmail.TicketData{Number: t.ID, Subject: t.Subject, Type: s.TypeName(t.Type), TrackingURL: s.TrackingURL(token),
		Message: message, Time: s.now(), Domain: s.domain()}
}

func (s *Service) send(ctx context.Context, t *latchkey.Ticket, m lkmail.Message, err error) {
	if err == nil {
		err = s.opt.Mailer.Send(ctx, m)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "send ticket mail", "ticket", t.ID, "err", err)
	}
}

// Limits of what a requester types.
const (
	MaxMessage = 5000 // characters
	MaxEmail   = 254
)

// NewTicket is what a requester submits.
type NewTicket struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	Type     string `json:"type"`
	Message  string `json:"message"`
}

// Validate checks and normalises n (trims, normalises the username). Bad input gives
// InputErrors (EInvalid) that name every problem, in the order of the form: email,
// username, type, message. types are the allowed request types.
func (n *NewTicket) Validate(types []Choice) error {
	n.Email = strings.TrimSpace(n.Email)
	n.Username = login.NormalizeUsername(n.Username)
	n.Type = strings.TrimSpace(n.Type)
	var errs InputErrors
	if n.Email == "" {
		errs = append(errs, inputError("email", "Enter your email address, so that we can answer you."))
	} else if a, err := mail.ParseAddress(n.Email); err != nil || a.Address != n.Email || a.Name != "" || len(n.Email) > MaxEmail || !strings.Contains(n.Email[strings.LastIndexByte(n.Email, '@')+1:], ".") && !strings.HasSuffix(n.Email, "@localhost") {
		errs = append(errs, inputError("email", "Enter a valid email address, like name@example.com."))
	}
	if n.Username != "" && !login.ValidUsername(n.Username) {
		errs = append(errs, inputError("username", "The username can have up to 64 letters, digits and . _ - @. Leave it empty if you don't know it."))
	}
	if !slices.ContainsFunc(types, func(c Choice) bool { return c.ID == n.Type }) {
		errs = append(errs, inputError("type", "Choose what your request is about."))
	}
	if msg, err := cleanMessage(n.Message); err != nil {
		errs = append(errs, &InputError{Field: "message", Err: err.(*latchkey.Error)})
	} else {
		n.Message = msg
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// InputError is an EInvalid error about one field of a form ("email", "username", "type",
// "message"), so that a page can show it next to that field.
type InputError struct {
	Field string
	Err   *latchkey.Error
}

func (e *InputError) Error() string { return e.Err.Error() }

// Unwrap lets latchkey.ErrorCode and latchkey.ErrorMessage see the domain error.
func (e *InputError) Unwrap() error { return e.Err }

func inputError(field, msg string) *InputError {
	return &InputError{Field: field, Err: latchkey.Errorf(latchkey.EInvalid, "%s", msg)}
}

// InputErrors is every problem of one form, never none, in the order of the form. To
// errors.As, latchkey.ErrorCode and latchkey.ErrorMessage it is its first problem: the JSON
// API, which answers one error, answers that one.
type InputErrors []*InputError

func (es InputErrors) Error() string { return es[0].Error() }

// Unwrap returns the problems, first first.
func (es InputErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Problems returns the problems of the input that err reports, in the order of the form, or
// nil when err is not about the input.
func Problems(err error) []*InputError {
	var es InputErrors
	if errors.As(err, &es) {
		return es
	}
	var e *InputError
	if errors.As(err, &e) {
		return []*InputError{e}
	}
	return nil
}

// cleanMessage trims a message and refuses an empty, too long or malformed one.
func cleanMessage(m string) (string, error) {
	if !utf8.ValidString(m) || strings.ContainsRune(m, 0) {
		return "", latchkey.Errorf(latchkey.EInvalid, "The message contains characters that are not text.")
	}
	m = strings.TrimSpace(strings.ReplaceAll(m, "\r\n", "\n"))
	if m == "" {
		return "", latchkey.Errorf(latchkey.EInvalid, "Describe your request in the message.")
	}
	if utf8.RuneCountInString(m) > MaxMessage {
		return "", latchkey.Errorf(latchkey.EInvalid, "The message is too long: keep it under %d characters.", MaxMessage)
	}
	return m, nil
}

// Created is the outcome of Create.
type Created struct {
	Ticket *latchkey.Ticket
	// Token is the tracking token; it is shown to the requester and mailed, never stored.
	Token       string
	TrackingURL string
}

// Create opens a ticket and mails the confirmation with the ticket number and the tracking
// link. It returns EInvalid for bad input and EThrottled (with RetryAfter) when the IP address
// or the email address opened too many tickets. It never looks at accounts, so its answer
// cannot reveal whether one exists.
func (s *Service) Create(ctx context.Context, c login.Client, n NewTicket) (*Created, error) {
	if err := n.Validate(s.opt.Types); err != nil {
		return nil, err
	}
	if err := s.ip.Take(c.IP, s.now()); err != nil {
		return nil, err
	}
	token, err := s.newToken()
	if err != nil {
		return nil, err
	}
	t := &latchkey.Ticket{Email: n.Email, EmailKey: MailboxKey(n.Email), Username: n.Username, Type: n.Type, Subject: s.TypeName(n.Type), TrackingHash: s.hash(token)}
	limit := latchkey.TicketLimit{Max: s.opt.PerEmail, Since: s.now().Add(-s.opt.EmailWindow)}
	if err := s.opt.Store.CreateTicket(ctx, t, &latchkey.TicketMessage{Author: latchkey.AuthorRequester, Body: n.Message}, limit); latchkey.ErrorCode(err) == latchkey.EThrottled {
		// Waiting one window is always enough; the exact time would need the oldest ticket.
		s.record(ctx, c, nil, nil, 0, latchkey.ActionTicketCreated, latchkey.OutcomeDenied, "too many tickets from one address")
		return nil, &latchkey.Error{Code: latchkey.EThrottled, RetryAfter: s.opt.EmailWindow.Round(time.Second),
			Message: fmt.Sprintf("Too many tickets were opened from this email address. Try again in %s, or add a message to one of your open tickets.", wait(s.opt.EmailWindow))}
	} else if err != nil {
		return nil, fmt.Errorf("create ticket: %w", err)
	}
	s.record(ctx, c, nil, nil, t.ID, latchkey.ActionTicketCreated, latchkey.OutcomeSuccess, "type "+t.Type)
	m, err := lkmail.TicketCreated(t.Email, s.mailData(t, token, n.Message))
	s.send(ctx, t, m, err)
	return &Created{Ticket: t, Token: token, TrackingURL: s.TrackingURL(token)}, nil
}

var errNoTicket = latchkey.Errorf(latchkey.ENotFound, "There is no ticket at this link. Check that you copied the whole link from the email.")

// Track returns the ticket of a tracking token and its conversation; ENotFound for an unknown
// token.
func (s *Service) Track(ctx context.Context, token string) (*latchkey.Ticket, []*latchkey.TicketMessage, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, errNoTicket
	}
	t, err := s.opt.Store.FindTicketByTrackingHash(ctx, s.hash(token))
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil, errNoTicket
	} else if err != nil {
		return nil, nil, err
	}
	msgs, err := s.opt.Store.FindTicketMessages(ctx, t.ID)
	if err != nil {
		return nil, nil, err
	}
	return t, msgs, nil
}

// AddMessage adds the requester's message to the ticket of token. A ticket that waited for
// the requester or was resolved goes back to in progress; a closed ticket takes no more
// messages (EConflict). Throttled per IP address like Create.
func (s *Service) AddMessage(ctx context.Context, c login.Client, token, body string) (*latchkey.Ticket, error) {
	t, _, err := s.Track(ctx, token)
	if err != nil {
		return nil, err
	}
	body, err = cleanMessage(body)
	if err != nil {
		return nil, err
	}
	if t.Status == latchkey.TicketClosed {
		return nil, latchkey.Errorf(latchkey.EConflict, "This ticket is closed. If you still need help, open a new ticket.")
	}
	if err := s.ip.Take(c.IP, s.now()); err != nil {
		return nil, err
	}
	var status *latchkey.TicketStatus
	if t.Status == latchkey.TicketWaiting || t.Status == latchkey.TicketResolved {
		st := latchkey.TicketInProgress
		status = &st
	}
	if err := s.opt.Store.AddTicketMessage(ctx, &latchkey.TicketMessage{TicketID: t.ID, Author: latchkey.AuthorRequester, Body: body}, status); err != nil {
		return nil, err
	}
	s.record(ctx, c, nil, nil, t.ID, latchkey.ActionTicketMessage, latchkey.OutcomeSuccess, "by the requester")
	if status != nil {
		t.Status = *status
	}
	return t, nil
}

// wait says a duration for people: "1 hour", "45 minutes".
func wait(d time.Duration) string {
	switch {
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= time.Hour:
		return "1 hour"
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return "a minute"
}
