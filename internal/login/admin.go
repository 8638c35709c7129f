package login

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
)

// The admin console's account actions. Each takes the acting administrator, refuses anyone
// else with EForbidden, and is audited on the target account with the actor in the detail.

func requireAdmin(actor *latchkey.User) error {
	if actor == nil || actor.Disabled || actor.Role != latchkey.RoleAdmin {
		return latchkey.Errorf(latchkey.EForbidden, "Only administrators can do that.")
	}
	return nil
}

func (s *Service) target(ctx context.Context, actor *latchkey.User, id latchkey.UserID) (*latchkey.User, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	u, err := s.opt.Store.FindUserByID(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, latchkey.Errorf(latchkey.ENotFound, "There is no such user.")
	}
	return u, err
}

// keepsAnAdmin returns EConflict when taking u out of the enabled admins would leave none.
func (s *Service) keepsAnAdmin(ctx context.Context, u *latchkey.User, what string) error {
	if u.Role != latchkey.RoleAdmin || u.Disabled {
		return nil
	}
	n, err := s.opt.Store.CountEnabledAdmins(ctx)
	if err != nil {
		return err
	}
	if n <= 1 {
		return latchkey.Errorf(latchkey.EConflict, "%s is the only enabled administrator: %s would leave nobody to run this server. Make someone else an administrator first.", u.Username, what)
	}
	return nil
}

// AdminSetDisabled disables or enables an account. Disabling ends every session of the user
// at once; it is refused for the actor's own account and for the last enabled admin.
func (s *Service) AdminSetDisabled(ctx context.Context, c Client, actor *latchkey.User, id latchkey.UserID, disabled bool) (*latchkey.User, error) {
	u, err := s.target(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if disabled {
		if u.ID == actor.ID {
			s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserDisabled, latchkey.OutcomeDenied, "own account")
			return nil, latchkey.Errorf(latchkey.EConflict, "You cannot disable your own account.")
		}
		if err := s.keepsAnAdmin(ctx, u, "disabling them"); err != nil {
			s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserDisabled, latchkey.OutcomeDenied, "last enabled admin")
			return nil, err
		}
	}
	action := latchkey.ActionUserEnabled
	if disabled {
		action = latchkey.ActionUserDisabled
	}
	e := event(c, actor, u, "", action, latchkey.OutcomeSuccess, "")
	if u, err = s.opt.Store.UpdateUser(ctx, id, latchkey.UserUpdate{Disabled: &disabled, KeepAnAdmin: disabled, Audit: e}); err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	if disabled {
		if err := s.endUserSessions(ctx, id, ""); err != nil {
			return nil, fmt.Errorf("end sessions: %w", err)
		}
	}
	return u, nil
}

// AdminSetRole changes an account's role. Demoting the last enabled admin is refused.
// CleanReason is the reason an administrator or a support agent gives for an action on an
// account, as the audit trail keeps it (latchkey.CleanLine: one line of printable text, at
// most 500 characters); an empty one is refused too. OptionalReason is the same for a reason
// that may be left out.
func CleanReason(reason string) (string, error) {
	reason, err := OptionalReason(reason)
	if err == nil && reason == "" {
		err = latchkey.Errorf(latchkey.EInvalid, "Give a reason: it is recorded in the audit trail.")
	}
	return reason, err
}

// OptionalReason is CleanReason for a reason that may be empty.
func OptionalReason(reason string) (string, error) {
	reason, ok := latchkey.CleanLine(reason, 500)
	if !ok {
		return "", latchkey.Errorf(latchkey.EInvalid, "Keep the reason to at most 500 characters of text (no control characters).")
	}
	return reason, nil
}

// errAdminMFA refuses an account's sign-in methods or role, or a new administrator or agent,
// to an administrator whose own session passed no second factor: a phished password alone
// must not strip a user's MFA or make an administrator (the support desk asks the same of its
// agents).
var errAdminMFA = latchkey.Errorf(latchkey.EForbidden, "Sign in with a second factor before you change someone's sign-in methods or role, or create an administrator or support agent: set one up on your Security page.")

// adminMFA audits and returns errAdminMFA when actorMFA is false (the entry concerns target).
func (s *Service) adminMFA(ctx context.Context, c Client, actor, target *latchkey.User, actorMFA bool, what string) error {
	if actorMFA {
		return nil
	}
	s.auditBy(ctx, c, actor, target, "", latchkey.ActionAdminDenied, latchkey.OutcomeDenied, what+" refused: the administrator's session has no second factor")
	return errAdminMFA
}

func (s *Service) AdminSetRole(ctx context.Context, c Client, actor *latchkey.User, actorMFA bool, id latchkey.UserID, role latchkey.Role) (*latchkey.User, error) {
	if !role.Valid() {
		return nil, latchkey.Errorf(latchkey.EInvalid, "The role must be admin, support or user.")
	}
	u, err := s.target(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if u.Role == role {
		return u, nil
	}
	if err := s.adminMFA(ctx, c, actor, u, actorMFA, "role → "+string(role)); err != nil {
		return nil, err
	}
	if role != latchkey.RoleAdmin {
		if err := s.keepsAnAdmin(ctx, u, "changing their role"); err != nil {
			s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserRole, latchkey.OutcomeDenied, "last enabled admin → "+string(role))
			return nil, err
		}
	}
	e := event(c, actor, u, "", latchkey.ActionUserRole, latchkey.OutcomeSuccess, fmt.Sprintf("%s → %s", u.Role, role))
	if u, err = s.opt.Store.UpdateUser(ctx, id, latchkey.UserUpdate{Role: &role, KeepAnAdmin: role != latchkey.RoleAdmin, Audit: e}); err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// AdminResetMFA removes every second factor of an account (apps, Latch devices, keys,
// recovery codes), ends its sessions and mails the user. reason is required and audited;
// actorMFA says whether the administrator's own session passed a second factor, without
// which the reset is refused (EForbidden), as is a role change (AdminSetRole). An account
// whose owner has not activated it yet (RequireActivated), or that has no second factor
// (HasSecondFactor), has nothing to reset: EConflict, and nothing is written or mailed.
// Under MFARequired the user's next sign-in goes to the rollout.
func (s *Service) AdminResetMFA(ctx context.Context, c Client, actor *latchkey.User, actorMFA bool, id latchkey.UserID, reason string) error {
	reason, err := CleanReason(reason)
	if err != nil {
		return err
	}
	u, err := s.target(ctx, actor, id)
	if err != nil {
		return err
	}
	if err := s.adminMFA(ctx, c, actor, u, actorMFA, "MFA reset"); err != nil {
		return err
	}
	if err := s.RequireActivated(ctx, u); err != nil {
		return err
	}
	if err := s.requireFactor(ctx, u); err != nil {
		return err
	}
	if err := s.resetMFA(ctx, u.ID, nil, event(c, actor, u, "", latchkey.ActionAdminMFAReset, latchkey.OutcomeSuccess, "reason: "+reason)); err != nil {
		return err
	}
	if err := s.endUserSessions(ctx, u.ID, ""); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	// The mail says when and from where; the address is the administrator's, which is what
	// the user should see.
	s.notify(ctx, c, u, mail.MFAReset, 0)
	return nil
}

// AdminRevokeSessions signs a user out everywhere; keep (the actor's own session ID, or "")
// survives so that revoking one's own other sessions does not sign out the admin console.
func (s *Service) AdminRevokeSessions(ctx context.Context, c Client, actor *latchkey.User, keep string, id latchkey.UserID) error {
	u, err := s.target(ctx, actor, id)
	if err != nil {
		return err
	}
	if u.ID != actor.ID {
		keep = ""
	}
	if err := s.endUserSessions(ctx, u.ID, keep); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	s.auditBy(ctx, c, actor, u, "", latchkey.ActionSessionsRevoked, latchkey.OutcomeSuccess, "")
	return nil
}

// AdminUnlock clears the failure counter of an account, which ends a wait or the lock
// after LockAt consecutive failures.
func (s *Service) AdminUnlock(ctx context.Context, c Client, actor *latchkey.User, id latchkey.UserID) error {
	u, err := s.target(ctx, actor, id)
	if err != nil {
		return err
	}
	if err := s.opt.Store.ResetThrottle(ctx, userKey(u.Username)); err != nil {
		return fmt.Errorf("reset throttle: %w", err)
	}
	s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserUnlocked, latchkey.OutcomeSuccess, "")
	return nil
}

// Lock describes an account's failure counter.
type Lock struct {
	Failures int
	// Locked is true after LockAt consecutive failures: only an administrator unlocks it.
	Locked bool
	// WaitUntil is when the next attempt is allowed while the account is only slowed down.
	WaitUntil time.Time
}

// Throttled reports whether it is locked or waiting.
func (l Lock) Throttled(now time.Time) bool { return l.Locked || now.Before(l.WaitUntil) }

// LockState returns the failure counter of u.
func (s *Service) LockState(ctx context.Context, u *latchkey.User) (Lock, error) {
	th, err := s.opt.Store.FindThrottle(ctx, userKey(u.Username))
	if err != nil {
		return Lock{}, fmt.Errorf("find throttle: %w", err)
	}
	wait, locked := s.opt.Throttle.accountWait(th.Failures)
	l := Lock{Failures: th.Failures, Locked: locked}
	if wait > 0 {
		l.WaitUntil = th.LastFailureAt.Add(wait)
	}
	return l, nil
}

// Policy is the sign-in policy in effect, for the admin console's read-only view.
type Policy struct {
	MFA                  string   // MFAOptional or MFARequired
	Methods              []string // the methods users may enrol and this server provides
	Configured           []string // the configured allow-list; empty means all
	MaxAge, Idle, Reauth time.Duration
	FlowTTL              time.Duration
	PasswordMin          int // without a second factor
	PasswordMinMFA       int // with one
	PasswordMax          int
	Throttle             ThrottleOptions
	Passkeys             bool
	InvitationTTL        time.Duration
}

// Policy returns the policy in effect.
func (s *Service) Policy() Policy {
	return Policy{
		MFA: s.opt.MFA, Methods: s.EnrollMethods(), Configured: s.opt.Methods,
		MaxAge: s.opt.MaxAge, Idle: s.opt.IdleTimeout, Reauth: s.opt.ReauthWindow, FlowTTL: s.opt.FlowTTL,
		PasswordMin: s.opt.Policy.MinWithoutMFA, PasswordMinMFA: s.opt.Policy.MinWithMFA, PasswordMax: s.opt.Policy.Max,
		Throttle: s.opt.Throttle, Passkeys: s.PasskeysEnabled(), InvitationTTL: InvitationTTL,
	}
}
