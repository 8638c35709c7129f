package login

import (
	"context"
	"fmt"
	"slices"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
)

// AgentAction describes an action of the support desk on someone's account: who does it,
// for which ticket and why. Every agent action is audited with all three.
type AgentAction struct {
	Agent *latchkey.User
	// AgentMFA reports whether the agent's own session passed a second factor: changing
	// someone else's sign-in methods needs one.
	AgentMFA bool
	TicketID int64
	Reason   string
}

// CanActOn returns EForbidden unless agent may change target's sign-in methods from the
// support desk: the agent has the role support or admin, and the target is a plain user
// other than the agent. Admins and agents are managed by administrators, never from a ticket,
// so an agent cannot take over another privileged account.
func CanActOn(agent, target *latchkey.User) error {
	if agent == nil || (agent.Role != latchkey.RoleSupport && agent.Role != latchkey.RoleAdmin) || agent.Disabled {
		return latchkey.Errorf(latchkey.EForbidden, "Only support agents and administrators can do this.")
	}
	if target.ID == agent.ID {
		return latchkey.Errorf(latchkey.EForbidden, "You cannot change your own account from the support desk. Use the Security page.")
	}
	if target.Role != latchkey.RoleUser {
		return latchkey.Errorf(latchkey.EForbidden, "This account belongs to an administrator or a support agent. Only an administrator can change it, from the admin console.")
	}
	return nil
}

func (s *Service) auditAgent(ctx context.Context, c Client, a AgentAction, target *latchkey.User, action, outcome, what string) {
	_ = s.opt.Audit.Record(ctx, *agentEvent(c, a, target, action, outcome, what))
}

// agentEvent is the audit entry of a support desk action: the agent, the ticket and the
// reason with it.
func agentEvent(c Client, a AgentAction, target *latchkey.User, action, outcome, what string) *latchkey.AuditEvent {
	e := event(c, a.Agent, target, "", action, outcome, what+"; reason: "+a.Reason)
	e.TicketID = a.TicketID
	return e
}

var errAgentMFA = latchkey.Errorf(latchkey.EForbidden, "Sign in with a second factor before you change someone's sign-in methods: set one up on your Security page.")

func checkAction(a AgentAction, target *latchkey.User) error {
	if err := CanActOn(a.Agent, target); err != nil {
		return err
	}
	if !a.AgentMFA {
		return errAgentMFA
	}
	if a.TicketID <= 0 {
		return latchkey.Errorf(latchkey.EInvalid, "An action of the support desk needs a ticket.")
	}
	if a.Reason == "" {
		return latchkey.Errorf(latchkey.EInvalid, "Give a reason: it is recorded in the audit trail.")
	}
	return nil
}

// AgentResetMFA removes every second factor of target (apps, Latch devices, security keys,
// recovery codes) in one transaction for the support desk, signs out all of target's
// sessions and tells target by email. Under MFARequired the next sign-in goes to the rollout.
// It returns EForbidden when the agent may not act on target (CanActOn), and audits the
// action (or its refusal) with the agent, the ticket and the reason. An account whose owner
// has not activated it yet (RequireActivated), or that has no second factor
// (HasSecondFactor), has nothing to reset: EConflict, and nothing is written or mailed.
func (s *Service) AgentResetMFA(ctx context.Context, c Client, a AgentAction, target *latchkey.User) error {
	if err := checkAction(a, target); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EForbidden {
			s.auditAgent(ctx, c, a, target, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "reset of all MFA refused")
		}
		return err
	}
	if err := s.RequireActivated(ctx, target); err != nil {
		return err
	}
	if err := s.requireFactor(ctx, target); err != nil {
		return err
	}
	if err := s.resetMFA(ctx, target.ID, nil, agentEvent(c, a, target, latchkey.ActionMFAReset, latchkey.OutcomeSuccess, "all MFA reset")); err != nil {
		return err
	}
	if err := s.endUserSessions(ctx, target.ID, ""); err != nil {
		s.log.ErrorContext(ctx, "sign out sessions after a support reset", "user_id", target.ID, "err", err)
	}
	s.notifyAgent(ctx, c, a, target, mail.MFAReset, "")
	return nil
}

// notifyAgent mails target a security notice (tmpl) of a support desk action, naming the
// ticket; name is the factor's, for a removal.
func (s *Service) notifyAgent(ctx context.Context, c Client, a AgentAction, target *latchkey.User, tmpl func(string, mail.Data) (mail.Message, error), name string) {
	s.sendNotice(ctx, c, target, tmpl, mail.Data{DeviceName: name, Ticket: a.TicketID})
}

// AgentRemoveFactor removes one second factor of target, named by its reference ("totp:3",
// "device:7", "webauthn:12"), for the support desk; with the last factor go the recovery
// codes. It signs out target's sessions and tells target by email. ENotFound when target has
// no such factor; EForbidden and EConflict as AgentResetMFA.
func (s *Service) AgentRemoveFactor(ctx context.Context, c Client, a AgentAction, target *latchkey.User, factorRef string) error {
	if err := checkAction(a, target); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EForbidden {
			s.auditAgent(ctx, c, a, target, latchkey.ActionTicketRefused, latchkey.OutcomeDenied, "removal of "+factorRef+" refused")
		}
		return err
	}
	if err := s.RequireActivated(ctx, target); err != nil {
		return err
	}
	kind, id, err := ParseFactorRef(factorRef)
	if err != nil {
		return err
	}
	fs, err := s.Factors(ctx, target)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(fs, func(f Factor) bool { return f.Kind == kind && f.ID == id })
	if i < 0 {
		return latchkey.Errorf(latchkey.ENotFound, "This account has no such sign-in method.")
	}
	f := fs[i]
	// The desk may remove the last factor (the user then sets one up again); the recovery
	// codes go with it (the stores decide, in the removal's transaction).
	tmpl := mail.TOTPDisabled
	switch kind {
	case KindTOTP:
		err = s.opt.Store.DeleteTOTPCredential(ctx, target.ID, id, false)
	case KindKey:
		err, tmpl = s.opt.Store.DeleteWebAuthnCredential(ctx, target.ID, id, false), mail.KeyRemoved
	case KindDevice:
		err, tmpl = s.opt.Store.DeleteDevice(ctx, target.ID, id, false), mail.DeviceRemoved
	}
	if err != nil {
		return fmt.Errorf("remove factor %s: %w", factorRef, err)
	}
	if kind == KindDevice && s.opt.Pusher != nil {
		s.opt.Pusher.WakeDevice(id) // its open stream ends now, not at its next ping
	}
	if err := s.endUserSessions(ctx, target.ID, ""); err != nil {
		s.log.ErrorContext(ctx, "sign out sessions after a support removal", "user_id", target.ID, "err", err)
	}
	s.auditAgent(ctx, c, a, target, latchkey.ActionTicketFactor, latchkey.OutcomeSuccess, fmt.Sprintf("%s %q (%s) removed", factorRef, f.Name, f.Type))
	s.notifyAgent(ctx, c, a, target, tmpl, f.Name)
	return nil
}
