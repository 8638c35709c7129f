package login

import (
	"context"
	"slices"
	"time"

	"github.com/latchkey/latchkey"
)

// ActionStepUp is audited when a password-only session is turned into a second step.
const ActionStepUp = "login.step_up"

// StepUp turns the password-only signed-in session of token into the second step of sign-in
// for the same user, under a new token (the old one stops working): an application asked for
// two-step verification. With factors, the result is StateSecondFactor with the methods in
// the order the normal second step offers them (primary first); completing one gives the
// session the mfa AMR. Without any, it is StateEnroll (the rollout flow), where setting up a
// factor completes the sign-in with mfa. The password proof (PasswordAt) is kept, and the step
// itself ends no later than the session did; once the second factor is given, the session
// ends as after any sign-in with one (the workday's end, at most max_age after the code: a
// new code is what earns the time, README "One sign-in for the workday"). A session that has MFA already,
// given at since or later (the zero time: any), gives EConflict: an older one is asked again
// (an application's max_age); a user with no factor while policy allows none to be set up,
// EForbidden.
func (s *Service) StepUp(ctx context.Context, c Client, token string, since time.Time) (*Result, error) {
	sess, u, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	if slices.Contains(sess.AMR, latchkey.AMRMFA) && (sess.MFAAt == nil || !sess.MFAAt.Before(since)) {
		return nil, latchkey.Errorf(latchkey.EConflict, "You have already signed in with two-step verification.")
	}
	methods, err := s.methods(ctx, u)
	if err != nil {
		return nil, err
	}
	now := s.now()
	next := *sess
	s.secondStep(&next, c, now)
	if len(methods) == 0 {
		if methods = s.EnrollMethods(); len(methods) == 0 {
			return nil, latchkey.Errorf(latchkey.EForbidden, "This application needs two-step verification, and no method can be set up here. Ask your administrator.")
		}
		next.State = latchkey.StateEnroll
	}
	res, err := s.issue(ctx, token, &next)
	if err != nil {
		return nil, err
	}
	res.User, res.Methods = u, methods
	s.audit(ctx, c, u, "", ActionStepUp, latchkey.OutcomeSuccess, "next: "+string(next.State))
	return res, nil
}

// secondStep turns next, a signed-in session, into the second step of sign-in from now: no
// second factor yet, and at most FlowTTL left (never more than the session had).
func (s *Service) secondStep(next *latchkey.Session, c Client, now time.Time) {
	next.State, next.AMR = latchkey.StateSecondFactor, []string{latchkey.AMRPassword}
	next.MFAAt, next.LastSeenAt, next.IP, next.UserAgent = nil, now, c.IP, c.UserAgent
	if end := now.Add(s.opt.FlowTTL); end.Before(next.ExpiresAt) {
		next.ExpiresAt = end
	}
}
