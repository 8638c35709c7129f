package support

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	lkmail "github.com/latchkey/latchkey/internal/mail"
)

// IsAgent reports whether u may work the support queue: role support or admin.
func IsAgent(u *latchkey.User) bool {
	return u != nil && !u.Disabled && (u.Role == latchkey.RoleSupport || u.Role == latchkey.RoleAdmin)
}

var errNotAgent = latchkey.Errorf(latchkey.EForbidden, "The support desk is for support agents and administrators.")

func agentOnly(u *latchkey.User) error {
	if !IsAgent(u) {
		return errNotAgent
	}
	return nil
}

// Queue filters, as the console offers them.
type Queue struct {
	// Status is a TicketStatus, "open" (neither resolved nor closed; the default) or "all".
	Status string
	// Type is a request type ID; "" for all.
	Type string
	// OlderThan shows only tickets created longer ago than this; 0 for all.
	OlderThan time.Duration
	// OldestFirst lists the oldest tickets first.
	OldestFirst bool
	Offset      int
	Limit       int
}

// Tickets lists the queue for an agent, newest first (or oldest, q.OldestFirst), with the
// total count. EForbidden for
// anyone else; EInvalid for an unknown status or type.
func (s *Service) Tickets(ctx context.Context, agent *latchkey.User, q Queue) ([]*latchkey.Ticket, int, error) {
	if err := agentOnly(agent); err != nil {
		return nil, 0, err
	}
	var f latchkey.TicketFilter
	switch st := latchkey.TicketStatus(q.Status); {
	case q.Status == "" || q.Status == "open":
		f.Open = true
	case q.Status == "all":
	case st.Valid():
		f.Status = &st
	default:
		return nil, 0, latchkey.Errorf(latchkey.EInvalid, "Unknown status %q.", q.Status)
	}
	if q.Type != "" {
		if !slices.ContainsFunc(s.opt.Types, func(c Choice) bool { return c.ID == q.Type }) {
			return nil, 0, latchkey.Errorf(latchkey.EInvalid, "Unknown request type %q.", q.Type)
		}
		f.Type = &q.Type
	}
	if q.OlderThan > 0 {
		before := s.now().Add(-q.OlderThan)
		f.CreatedBefore = &before
	}
	f.Offset, f.Limit, f.OldestFirst = q.Offset, q.Limit, q.OldestFirst
	return s.opt.Store.FindTickets(ctx, f)
}

// View is a ticket as the agent console shows it. It never holds a secret: factors are
// names, types and dates; sign-ins come from the audit trail.
type View struct {
	Ticket   *latchkey.Ticket
	Messages []*latchkey.TicketMessage
	// Account is the matching account: the ticket's username when it names one, else the
	// only account with the ticket's email address; nil when none matches. When the agent
	// may not act on it (CanAct), it holds only the ID and the role, and Factors and
	// SignIns are empty.
	Account *latchkey.User
	// MatchedBy says how Account was found ("username" or "email").
	MatchedBy string
	// EmailDiffers is set when the account was found by username but its email address is
	// not the ticket's: a reason for extra care.
	EmailDiffers bool
	Factors      []login.Factor
	SignIns      []*latchkey.AuditEvent
	// CanAct is nil when the agent may act on Account, else why not (admins, agents).
	CanAct error
	// ChecksDone reports whether every identity check is recorded, within ChecksValidFor;
	// ChecksStale that they were, longer ago.
	ChecksDone, ChecksStale bool
	// CanInvite is set when no account matches and users can be created from tickets.
	CanInvite bool
	// Invited is set when Account was created by an administrator or agent and its owner
	// has not activated it yet (set a password with the mailed link); InviteEnd is when its
	// latest link ends, and InviteExpired says it has; InviteMailFailed that the mail with
	// that link could not be sent, so the user has no link at all. Not set when the agent
	// may not act on the account.
	Invited, InviteExpired, InviteMailFailed bool
	InviteEnd                                time.Time
}

// Ticket returns a ticket with its conversation and the matching account for an agent.
func (s *Service) Ticket(ctx context.Context, agent *latchkey.User, id int64) (*View, error) {
	if err := agentOnly(agent); err != nil {
		return nil, err
	}
	t, err := s.opt.Store.FindTicketByID(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &View{Ticket: t, ChecksDone: s.checksDone(t)}
	v.ChecksStale = !v.ChecksDone && len(t.Checks) == len(s.opt.Checks) && len(t.Checks) > 0
	if v.Messages, err = s.opt.Store.FindTicketMessages(ctx, id); err != nil {
		return nil, err
	}
	if v.Account, v.MatchedBy, err = s.match(ctx, t); err != nil {
		return nil, err
	}
	if v.Account == nil {
		v.CanInvite = s.opt.Inviter != nil
		return v, nil
	}
	if v.CanAct = login.CanActOn(agent, v.Account); v.CanAct != nil {
		// An agent may not act on an administrator's or agent's account (or their own), so
		// the desk shows nothing of it either: no email, sign-ins (addresses, times) or
		// factors; only its ID and role, which say why the agent cannot act.
		v.Account = &latchkey.User{ID: v.Account.ID, Role: v.Account.Role}
		return v, nil
	}
	v.EmailDiffers = !strings.EqualFold(v.Account.Email, t.Email)
	inv, err := s.awaitingActivation(ctx, v.Account)
	if err != nil {
		return nil, err
	}
	if v.Invited = inv != nil; v.Invited {
		v.InviteEnd, v.InviteMailFailed = inv.ExpiresAt, inv.MailFailedAt != nil
		v.InviteExpired = !s.now().Before(v.InviteEnd)
	}
	if v.Factors, err = s.opt.Accounts.Factors(ctx, v.Account); err != nil {
		return nil, err
	}
	if v.SignIns, err = s.opt.Store.RecentSignIns(ctx, v.Account.ID, 10); err != nil {
		return nil, err
	}
	return v, nil
}

// awaitingActivation returns the invitation of u when its owner has not activated the
// account yet (its latest link: when it ends, whether its mail failed), nil otherwise. An
// invitation row, expired or not, means the account was never activated (as on the admin
// console's user pages): using the link deletes it.
func (s *Service) awaitingActivation(ctx context.Context, u *latchkey.User) (*latchkey.Invitation, error) {
	inv, err := s.opt.Store.FindInvitationByUserID(ctx, u.ID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil
	}
	return inv, err
}

// match finds the ticket's account: by username, else by a unique email address.
func (s *Service) match(ctx context.Context, t *latchkey.Ticket) (*latchkey.User, string, error) {
	if t.Username != "" {
		u, err := s.opt.Store.FindUserByUsername(ctx, t.Username)
		if err == nil {
			return u, "username", nil
		} else if latchkey.ErrorCode(err) != latchkey.ENotFound {
			return nil, "", err
		}
	}
	us, err := s.opt.Store.FindUsersByEmail(ctx, t.Email)
	if err != nil || len(us) != 1 {
		return nil, "", err
	}
	return us[0], "email", nil
}

// ChecksValidFor is how long a saved identity checklist stands: it is evidence of who called
// at that time, not for ever. After it (or after a reset of all MFA, which uses it up) the
// agent checks again before the next MFA action.
const ChecksValidFor = time.Hour

// checksDone reports whether every identity check is recorded on t, within ChecksValidFor.
func (s *Service) checksDone(t *latchkey.Ticket) bool {
	if t.CheckedAt == nil || s.now().Sub(*t.CheckedAt) > ChecksValidFor {
		return false
	}
	for _, c := range s.opt.Checks {
		if !slices.Contains(t.Checks, c.ID) {
			return false
		}
	}
	return true
}

func (s *Service) agentTicket(ctx context.Context, agent *latchkey.User, id int64) (*latchkey.Ticket, error) {
	if err := agentOnly(agent); err != nil {
		return nil, err
	}
	return s.opt.Store.FindTicketByID(ctx, id)
}

// RecordChecks records which identity checks the agent did (IDs of Checks), replacing the
// earlier record, and audits them. EInvalid for an unknown check.
func (s *Service) RecordChecks(ctx context.Context, c login.Client, agent *latchkey.User, id int64, checks []string) (*latchkey.Ticket, error) {
	t, err := s.agentTicket(ctx, agent, id)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, x := range s.opt.Checks { // configured order, no duplicates
		if slices.Contains(checks, x.ID) {
			done = append(done, x.ID)
		}
	}
	for _, x := range checks {
		if !slices.ContainsFunc(s.opt.Checks, func(c Choice) bool { return c.ID == x }) {
			return nil, latchkey.Errorf(latchkey.EInvalid, "Unknown identity check %q.", x)
		}
	}
	if done == nil {
		done = []string{}
	}
	t, err = s.opt.Store.UpdateTicket(ctx, t.ID, latchkey.TicketUpdate{Checks: &done, CheckedBy: agent.ID})
	if err != nil {
		return nil, err
	}
	s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketVerified, latchkey.OutcomeSuccess, "identity checks done: "+strings.Join(done, ", "))
	return t, nil
}

// mfaTarget loads what an MFA action needs and refuses it unless the identity checks are
// complete and the agent may act on the matching account. Refusals are audited, except that
// of an account awaiting activation (EConflict: there is nothing to act on, nothing is denied).
func (s *Service) mfaTarget(ctx context.Context, c login.Client, agent *latchkey.User, agentMFA bool, id int64, reason string) (*latchkey.Ticket, *latchkey.User, login.AgentAction, error) {
	var a login.AgentAction
	t, err := s.agentTicket(ctx, agent, id)
	if err != nil {
		return nil, nil, a, err
	}
	if reason, err = login.CleanReason(reason); err != nil {
		return nil, nil, a, err
	}
	a = login.AgentAction{Agent: agent, AgentMFA: agentMFA, TicketID: t.ID, Reason: reason}
	u, _, err := s.match(ctx, t)
	if err != nil {
		return nil, nil, a, err
	}
	if u == nil {
		return nil, nil, a, latchkey.Errorf(latchkey.ENotFound, "No account matches this ticket.")
	}
	if err := login.CanActOn(agent, u); err != nil {
		s.record(ctx, c, agent, u, t.ID, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "MFA action refused: protected account")
		return nil, nil, a, err
	}
	// An account awaiting activation has no sign-in method to reset or remove: a reset would
	// only mail its owner about a change that did not happen and use the checks up. Nothing
	// is written (the ticket page offers no such action; this is a form posted by hand). The
	// rule is login's (which refuses on its own too); asked here first, before the ticket's
	// rules, whose refusals are audited.
	if err := s.opt.Accounts.RequireActivated(ctx, u); err != nil {
		return nil, nil, a, err
	}
	if t.Status == latchkey.TicketResolved || t.Status == latchkey.TicketClosed {
		s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "MFA action refused: the ticket is "+string(t.Status))
		return nil, nil, a, latchkey.Errorf(latchkey.EConflict, "This ticket is %s: reopen it (set it in progress) before you change sign-in methods.", strings.ReplaceAll(string(t.Status), "_", " "))
	}
	if !s.checksDone(t) {
		s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "MFA action refused: identity checks incomplete or older than "+ChecksValidFor.String())
		return nil, nil, a, latchkey.Errorf(latchkey.EForbidden, "Complete and save the identity checklist before you change sign-in methods (a saved checklist stands for %v).", ChecksValidFor)
	}
	if !agentMFA {
		s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "MFA action refused: the agent's session has no second factor")
		return nil, nil, a, latchkey.Errorf(latchkey.EForbidden, "Sign in with a second factor before you change someone's sign-in methods: set one up on your Security page.")
	}
	return t, u, a, nil
}

// ResetMFA removes every second factor of the ticket's account (see login.AgentResetMFA)
// once the identity checks are complete, and moves the ticket to in progress if it was new.
// agentMFA reports whether the agent's own session passed a second factor; without one the
// action is refused (EForbidden). An account whose owner has not activated it yet has nothing
// to reset: EConflict, and nothing is written (no audit entry, mail or change of the ticket).
func (s *Service) ResetMFA(ctx context.Context, c login.Client, agent *latchkey.User, agentMFA bool, id int64, reason string) error {
	t, u, a, err := s.mfaTarget(ctx, c, agent, agentMFA, id, reason)
	if err != nil {
		return err
	}
	if err := s.opt.Accounts.AgentResetMFA(ctx, c, a, u); err != nil {
		return err
	}
	// The checks are used up: another reset of this account needs them again.
	none := []string{}
	if _, err := s.opt.Store.UpdateTicket(ctx, t.ID, latchkey.TicketUpdate{Checks: &none}); err != nil {
		return fmt.Errorf("clear identity checks: %w", err)
	}
	s.touch(ctx, t)
	return nil
}

// RemoveFactor removes one second factor (a reference like "totp:3") of the ticket's account
// once the identity checks are complete; agentMFA, and an account awaiting activation, as
// for ResetMFA.
func (s *Service) RemoveFactor(ctx context.Context, c login.Client, agent *latchkey.User, agentMFA bool, id int64, factorRef, reason string) error {
	t, u, a, err := s.mfaTarget(ctx, c, agent, agentMFA, id, reason)
	if err != nil {
		return err
	}
	if err := s.opt.Accounts.AgentRemoveFactor(ctx, c, a, u, factorRef); err != nil {
		return err
	}
	s.touch(ctx, t)
	return nil
}

// touch moves a new ticket to in progress once an agent acted on it.
func (s *Service) touch(ctx context.Context, t *latchkey.Ticket) {
	if t.Status != latchkey.TicketNew {
		return
	}
	st := latchkey.TicketInProgress
	if _, err := s.opt.Store.UpdateTicket(ctx, t.ID, latchkey.TicketUpdate{Status: &st}); err != nil {
		s.log.ErrorContext(ctx, "move ticket to in progress", "ticket", t.ID, "err", err)
	}
}

// InviteUser creates the account a ticket asks for (role user, the ticket's email address)
// through the Inviter, which mails the activation link. EConflict when an account already
// matches the ticket; EForbidden when users cannot be created from tickets. When the account
// was created but the mail failed it returns the account and the Inviter's error, and the
// creation is recorded on the ticket all the same.
func (s *Service) InviteUser(ctx context.Context, c login.Client, agent *latchkey.User, id int64, username, reason string) (*latchkey.User, error) {
	t, err := s.agentTicket(ctx, agent, id)
	if err != nil {
		return nil, err
	}
	if s.opt.Inviter == nil {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Creating users from tickets is not available on this server.")
	}
	if reason, err = login.CleanReason(reason); err != nil {
		return nil, err
	}
	if u, _, err := s.match(ctx, t); err != nil {
		return nil, err
	} else if u != nil {
		return nil, latchkey.Errorf(latchkey.EConflict, "An account already matches this ticket: %s.", u.Username)
	}
	username = login.NormalizeUsername(username)
	if username == "" {
		username = t.Username
	}
	// Role user only: the desk never creates agents or admins, so the agent's second factor
	// is not asked here (false: should the role ever change, the Inviter refuses it).
	u, err := s.opt.Inviter.InviteUser(ctx, c, agent, false, username, t.Email, latchkey.RoleUser)
	if u == nil {
		return nil, err
	}
	// The account exists even when its activation mail failed (err): the trail links it to
	// the ticket either way.
	detail := "invited; reason: " + reason
	if err != nil {
		detail = "created, activation mail not sent; reason: " + reason
	}
	s.record(ctx, c, agent, u, t.ID, latchkey.ActionTicketUserAdded, latchkey.OutcomeSuccess, detail)
	s.touch(ctx, t)
	return u, err
}

// Reply sends the agent's answer to the requester by email (threaded with the confirmation),
// adds it to the conversation and sets the status (default: waiting for the requester).
func (s *Service) Reply(ctx context.Context, c login.Client, agent *latchkey.User, id int64, body string, status latchkey.TicketStatus) (*latchkey.Ticket, error) {
	t, err := s.agentTicket(ctx, agent, id)
	if err != nil {
		return nil, err
	}
	if body, err = cleanMessage(body); err != nil {
		return nil, err
	}
	if status == "" {
		status = latchkey.TicketWaiting
	}
	if !status.Valid() {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Unknown status %q.", status)
	}
	m := &latchkey.TicketMessage{TicketID: t.ID, Author: latchkey.AuthorAgent, AgentID: agent.ID, AgentName: agent.Username, Body: body}
	if err := s.opt.Store.AddTicketMessage(ctx, m, &status); err != nil {
		return nil, err
	}
	t.Status = status
	s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketReplied, latchkey.OutcomeSuccess, "answered by email; status "+string(status))
	d := s.mailData(t, "", body)
	// Signed "The support desk": an agent's username is the sign-in name of a privileged
	// account, not for a requester nobody has verified.
	d.TrackingURL = ""
	msg, err := lkmail.TicketAnswered(t.Email, d)
	s.send(ctx, t, msg, err)
	return t, nil
}

// SetStatus changes a ticket's status and audits it with the reason (which may be empty).
func (s *Service) SetStatus(ctx context.Context, c login.Client, agent *latchkey.User, id int64, status latchkey.TicketStatus, reason string) (*latchkey.Ticket, error) {
	t, err := s.agentTicket(ctx, agent, id)
	if err != nil {
		return nil, err
	}
	if !status.Valid() {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Unknown status %q.", status)
	}
	if reason, err = login.OptionalReason(reason); err != nil {
		return nil, err
	}
	from := t.Status
	if t, err = s.opt.Store.UpdateTicket(ctx, t.ID, latchkey.TicketUpdate{Status: &status}); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("status %s → %s", from, status)
	if reason != "" {
		detail += "; reason: " + reason
	}
	s.record(ctx, c, agent, nil, t.ID, latchkey.ActionTicketStatus, latchkey.OutcomeSuccess, detail)
	return t, nil
}
