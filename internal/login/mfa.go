package login

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/totp"
)

// matchTOTP finds the confirmed TOTP credential of u that code belongs to and the time step
// it is for, newer than the credential's last used step; it records nothing: the caller
// records the step with what the code proves (the sign-in in CompleteSecondFactor, the reset
// in ResetMFA), where the replay guard holds against concurrent requests. A failure counts
// against key.
func (s *Service) matchTOTP(ctx context.Context, c Client, u *latchkey.User, key attempt, code, action string) (*latchkey.TOTPCredential, int64, error) {
	cr, step, replayed, err := s.findTOTP(ctx, u, code)
	if err != nil {
		return nil, 0, err
	}
	if cr == nil {
		s.fail(ctx, c, key)
		if replayed {
			s.audit(ctx, c, u, "", latchkey.ActionCodeReplayed, latchkey.OutcomeFailure, "code for a step already used")
		} else {
			s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, "wrong code")
		}
		return nil, 0, errBadCode
	}
	return cr, step, nil
}

// findTOTP returns the confirmed TOTP credential of u that code belongs to and the time step
// it is for, when that step is newer than the credential's last used one. It writes and
// counts nothing. When no credential matches, cr is nil, and replayed tells whether the code
// was right for a step that was used already.
//
// Steps already used are skipped before the codes are compared: the codes of two steps of
// the window are the same about once in 500,000 windows, and a code right for a new step must
// not be refused as a replay because it is also the code of an old one (nor because another
// credential of the user used it).
func (s *Service) findTOTP(ctx context.Context, u *latchkey.User, code string) (cr *latchkey.TOTPCredential, step int64, replayed bool, err error) {
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return nil, 0, false, fmt.Errorf("find totp credentials: %w", err)
	}
	cr, step, replayed = s.matchTOTPCode(creds, code)
	return cr, step, replayed, nil
}

// matchTOTPCode is findTOTP over creds, the user's credentials read already.
func (s *Service) matchTOTPCode(creds []*latchkey.TOTPCredential, code string) (cr *latchkey.TOTPCredential, step int64, replayed bool) {
	now := s.now()
	for _, cr := range creds {
		if !cr.Confirmed() {
			continue
		}
		if step, ok := totp.Verify(cr.Secret, code, now, cr.LastStep); ok {
			return cr, step, false
		}
		if !replayed {
			_, replayed = totp.Verify(cr.Secret, code, now, math.MinInt64)
		}
	}
	return nil, 0, replayed
}

// errResetMeanwhile answers a Reset all MFA whose user has no factor left by the time of its
// transaction: another request removed them after its checks (the first of two resets with
// one code, a double submit).
var errResetMeanwhile = latchkey.Errorf(latchkey.EConflict, "Your sign-in methods were removed meanwhile, by another request: there is nothing left to reset.")

// ResetProof is what "Reset all MFA" asks for: the password and one current factor, either a
// code (authenticator app, Latch offline code or recovery code) or a security key's answer to
// a CeremonyConfirm ceremony.
type ResetProof struct {
	Password    string
	Code        string
	CeremonyID  string
	KeyResponse []byte
}

// BeginConfirmKey starts a security-key check of a signed-in user (for ResetAllMFA).
func (s *Service) BeginConfirmKey(ctx context.Context, sess *latchkey.Session, u *latchkey.User) (*KeyOptions, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	return s.beginAssertion(ctx, latchkey.CeremonyConfirm, sess, u)
}

// ResetAllMFA removes every factor of the user after checking the password and a current
// factor, signs out the user's other sessions, and tells the user by email. Under
// MFARequired the next sign-in goes to the rollout page.
func (s *Service) ResetAllMFA(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, p ResetProof) error {
	n, err := s.factorCount(ctx, u)
	if err != nil {
		return err
	}
	if n == 0 {
		return latchkey.Errorf(latchkey.ENotFound, "You have no second factor to reset.")
	}
	if p.Code == "" && len(p.KeyResponse) == 0 {
		return latchkey.Errorf(latchkey.EInvalid, "Confirm with a current factor: a code from your authenticator app, a recovery code, or your security key.")
	}
	if err := s.checkPassword(ctx, c, u, latchkey.ActionMFAReset, p.Password); err != nil {
		return err
	}
	key, err := s.admit(ctx, c, u, latchkey.ActionMFAReset, errBadCode)
	if err != nil {
		return err
	}
	// The proof is written with the reset: the app code's step or the recovery code, none for
	// a key (recorded as it was checked). Its attempt is then settled after the reset.
	proof := &latchkey.MFAResetProof{}
	switch {
	case len(p.KeyResponse) > 0:
		if err := s.webauthnReady(); err != nil {
			return err
		}
		if err := s.verifyAssertion(ctx, c, u, key, latchkey.CeremonyConfirm, sess.ID, p.CeremonyID, p.KeyResponse, latchkey.ActionMFAReset); err != nil {
			return err
		}
	default:
		if code, err := totp.ParseCode(p.Code); err == nil {
			cr, step, err := s.matchTOTP(ctx, c, u, key, code, latchkey.ActionMFAReset)
			if err != nil {
				return err
			}
			proof.TOTPCredentialID, proof.TOTPStep = cr.ID, step
		} else if rc, err := normalizeRecoveryCode(p.Code); err == nil {
			proof.RecoveryCodeHash = s.keyedHash("recovery", rc)
		} else {
			return latchkey.Errorf(latchkey.EInvalid, "Enter the 6-digit code from your authenticator app, or a recovery code.")
		}
	}
	// An app code's time step and a recovery code are written in the reset's own transaction,
	// as a sign-in writes them with its completion: a reset that fails burns no code, and of
	// two resets with one code one happens; the other finds no factor left and says so. As at
	// sign-in, a used recovery code says so (the security bar), an unknown one does not; every
	// refusal removes nothing. A code's attempt is settled here, after the reset, as a key's
	// is once the key checked out: a refused code stays counted, and one that was not refused
	// (the reset happened, or did not for another reason) is taken back.
	settle := proof.TOTPCredentialID != 0 || proof.RecoveryCodeHash != nil
	err = s.resetMFA(ctx, u.ID, proof, event(c, nil, u, "", latchkey.ActionMFAReset, latchkey.OutcomeSuccess, "by the user"))
	switch code := latchkey.ErrorCode(err); {
	case errors.Is(err, latchkey.ErrNoFactor):
		// Removed by another request since the checks above: the factor was not compared
		// with anything, and there is nothing left to reset.
		if settle {
			s.refund(ctx, key)
		}
		return errResetMeanwhile
	case proof.TOTPCredentialID != 0 && code == latchkey.EConflict:
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionCodeReplayed, latchkey.OutcomeFailure, "concurrent use of the same code")
		return errBadCode
	case proof.RecoveryCodeHash != nil && code == latchkey.ENotFound:
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionMFAReset, latchkey.OutcomeFailure, "wrong recovery code")
		return errBadCode
	case proof.RecoveryCodeHash != nil && code == latchkey.EConflict:
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionMFAReset, latchkey.OutcomeFailure, "recovery code already used")
		return errUsedRecoveryCode
	case err != nil:
		if settle {
			s.abandon(ctx, key)
		}
		return err
	}
	if settle {
		s.refund(ctx, key)
	}
	if err := s.endUserSessions(ctx, u.ID, sess.ID); err != nil {
		s.log.ErrorContext(ctx, "sign out other sessions", "err", err)
	}
	s.notify(ctx, c, u, mail.MFAReset, 0)
	return nil
}

// EnrollMethods lists the methods a user may set up, in the order the rollout page offers
// them: the policy's allowed methods that this server can provide.
func (s *Service) EnrollMethods() []string {
	var m []string
	for _, x := range []string{latchkey.MethodPush, latchkey.MethodTOTP, latchkey.MethodWebAuthn} {
		if len(s.opt.Methods) > 0 && !slices.Contains(s.opt.Methods, x) {
			continue
		}
		if (x == latchkey.MethodPush && s.opt.Pusher == nil) || (x == latchkey.MethodWebAuthn && s.wa == nil) {
			continue
		}
		m = append(m, x)
	}
	return m
}

// MethodAllowed reports whether policy lets users enrol method.
func (s *Service) MethodAllowed(method string) bool {
	return slices.Contains(s.EnrollMethods(), method)
}

// EnrollFlow returns the sign-in of token when it waits for the user to set up a first
// factor (policy MFARequired).
func (s *Service) EnrollFlow(ctx context.Context, token string) (*latchkey.Session, *latchkey.User, error) {
	return s.flowIn(ctx, token, latchkey.StateEnroll)
}

// EnrollableFlow is EnrollFlow for a request that sets up the rollout's factor: once the user
// has a factor (set up elsewhere meanwhile), the flow has nothing left to set up and ends, with
// errNotFirst. The stores decide the same again when the factor is written (first factor).
func (s *Service) EnrollableFlow(ctx context.Context, c Client, token string) (*latchkey.Session, *latchkey.User, error) {
	sess, u, err := s.EnrollFlow(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	n, err := s.factorCount(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	if n > 0 {
		return nil, nil, s.notFirst(ctx, c, sess, u, latchkey.ActionMFAEnrolled)
	}
	return sess, u, nil
}

// CompleteEnrollment signs in a rollout flow once the user has a factor that this flow set
// up, which proves it (amr names how): a factor confirmed in this flow (amr given, by the
// caller that just confirmed it with the flow's token), or, with amr "" or swk, a Latch device
// activated with a code this flow made. A factor set up elsewhere (the user's own rollout in
// another browser, while someone who knows the password holds this flow) proves nothing here:
// that is EForbidden, and the flow signs in with the second step instead.
func (s *Service) CompleteEnrollment(ctx context.Context, c Client, token, amr string) (*Result, error) {
	sess, u, err := s.EnrollFlow(ctx, token)
	if err != nil {
		return nil, err
	}
	n, err := s.factorCount(ctx, u)
	if err != nil {
		return nil, err
	}
	errFirst := latchkey.Errorf(latchkey.EForbidden, "Set up a sign-in method first.")
	if n == 0 {
		return nil, errFirst
	}
	if amr == "" || amr == latchkey.AMRSoftwareKey {
		// Set up elsewhere: only a device activated with this flow's own code counts.
		ok, err := s.opt.Store.DeviceActivatedInFlow(ctx, u.ID, sess.SID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errFirst
		}
		amr = latchkey.AMRSoftwareKey
	}
	// A Latch device comes without recovery codes (the app and keys make them when they are
	// confirmed): a user who has none gets them now, before the rollout lets them go.
	codes, err := s.opt.Store.FindRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find recovery codes: %w", err)
	}
	var fresh []string
	if len(codes) == 0 {
		var hashes [][]byte
		if fresh, hashes, err = s.newRecoveryCodes(); err != nil {
			return nil, err
		}
		if err := s.opt.Store.ReplaceRecoveryCodes(ctx, u.ID, hashes, s.opt.Now()); err != nil {
			return nil, fmt.Errorf("store recovery codes: %w", err)
		}
	}
	res, err := s.complete(ctx, c, token, sess, u, completion{action: latchkey.ActionMFAEnrolled, detail: "rollout: " + amr}, amr)
	if err != nil {
		return nil, err
	}
	res.RecoveryCodes = fresh
	return res, nil
}

// HasSecondFactor reports whether u has a second factor that a reset of all MFA removes: a
// confirmed authenticator app (a Latch device's offline codes included) or a security key,
// as the stores count them (a pending enrolment, a device waiting for approval or a recovery
// code left behind is none). The admin console's page offers its Reset MFA form only then.
func (s *Service) HasSecondFactor(ctx context.Context, u *latchkey.User) (bool, error) {
	n, err := s.factorCount(ctx, u)
	return n > 0, err
}

// requireFactor refuses with EConflict a reset of all MFA by an administrator or the support
// desk of an account that has no second factor (HasSecondFactor): it would remove nothing,
// yet audit a reset and mail the user that every sign-in method was reset. The check is made
// before the reset's transaction, not in it (the store refuses a reset with no factor left,
// latchkey.ErrNoFactor, only for a user's own reset, with a proof): two resets of one
// account by two staff members at the same moment may both pass it, and the second then
// removes nothing but is still audited and mailed, as every such reset was before.
func (s *Service) requireFactor(ctx context.Context, u *latchkey.User) error {
	ok, err := s.HasSecondFactor(ctx, u)
	if err != nil {
		return err
	}
	if !ok {
		return latchkey.Errorf(latchkey.EConflict, "%s has no second factor, so there is nothing to reset: nothing was changed and no mail was sent.", u.Username)
	}
	return nil
}

// resetMFA removes every second factor of the user (Store.ResetMFA) and wakes the event
// streams of the Latch devices that went with them, on every node, so that a device open on
// someone's desk stops now rather than at its next ping (15 s): the store returns the devices
// its transaction deleted. proof, when not nil, is the factor that proved the user's own
// reset (ResetAllMFA), written in that transaction: an error, and nothing removed, when it
// cannot be.
func (s *Service) resetMFA(ctx context.Context, id latchkey.UserID, proof *latchkey.MFAResetProof, e *latchkey.AuditEvent) error {
	removed, err := s.opt.Store.ResetMFA(ctx, id, proof, e)
	if err != nil {
		return fmt.Errorf("reset mfa: %w", err)
	}
	if s.opt.Pusher != nil {
		for _, d := range removed {
			s.opt.Pusher.WakeDevice(d) // its open stream ends now, not at its next ping
		}
	}
	return nil
}
