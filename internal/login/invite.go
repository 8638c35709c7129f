package login

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
)

// InvitationTTL is how long an activation link works.
const InvitationTTL = 72 * time.Hour

var errBadInvitation = &latchkey.Error{Code: latchkey.ENotFound, Message: "This activation link is not valid any more: it was used already or it expired. Ask your administrator for a new one."}

// checkNewAccount normalises and validates the identity of an account to create.
func checkNewAccount(username, email string, role latchkey.Role) (string, string, error) {
	username = NormalizeUsername(username)
	email = strings.TrimSpace(email)
	var problems []string
	if !ValidUsername(username) {
		problems = append(problems, "The username must be 1 to 64 letters (of one alphabet), digits, dots, dashes, underscores or @.")
	}
	if at := strings.IndexByte(email, '@'); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n<>") || len(email) > 254 {
		problems = append(problems, "Enter a valid email address.")
	}
	if !role.Valid() {
		problems = append(problems, "The role must be admin, support or user.")
	}
	if len(problems) > 0 {
		return "", "", latchkey.Errorf(latchkey.EInvalid, "%s", strings.Join(problems, " "))
	}
	return username, email, nil
}

// InviteUser creates an account without a usable password and mails its owner a one-time
// activation link (valid InvitationTTL) to a page where they choose a password. When the mail
// cannot be sent (the Mailer refuses it), the account stays, the invitation records the
// failure (latchkey.Invitation's MailFailedAt) and InviteUser returns the account with an
// EInternal error. Admins may
// create any role, but an admin or a support agent only when actorMFA (the actor's session
// passed a second factor, as for a role change: the link may go to any address, so a phished
// password alone must not mint an administrator); support agents only users (an agent must
// not mint admins or agents). The link's token carries 256 random bits; only a keyed hash of
// it is stored, and it appears in no log line. It returns EForbidden for any other actor or
// a refused role, EInvalid for bad input and EConflict when the username is taken.
func (s *Service) InviteUser(ctx context.Context, c Client, actor *latchkey.User, actorMFA bool, username, email string, role latchkey.Role) (*latchkey.User, error) {
	if role == "" {
		role = latchkey.RoleUser
	}
	if actor == nil || actor.Disabled || (actor.Role != latchkey.RoleAdmin && actor.Role != latchkey.RoleSupport) {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Only administrators and support agents can create users.")
	}
	if actor.Role == latchkey.RoleSupport && role != latchkey.RoleUser {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Support agents can create users only; ask an administrator for other roles.")
	}
	username, email, err := checkNewAccount(username, email, role)
	if err != nil {
		return nil, err
	}
	if role != latchkey.RoleUser {
		// No account exists yet: the refusal is recorded on the administrator.
		if err := s.adminMFA(ctx, c, actor, actor, actorMFA, "creating "+username+" as "+string(role)); err != nil {
			return nil, err
		}
	}
	// A password nobody knows: the account exists, but the password step fails for it like for
	// any wrong password (same work, same answer) until the owner activates it.
	unknown, err := s.newToken()
	if err != nil {
		return nil, err
	}
	h, err := s.opt.Hasher.Hash(ctx, unknown)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := &latchkey.User{Username: username, UsernameKey: UsernameKey(username), Email: email, Role: role, PasswordHash: h}
	if err := s.opt.Store.CreateUser(ctx, u); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EConflict {
			return nil, err // taken, or too like a name that is
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserInvited, latchkey.OutcomeSuccess, "role "+string(role))
	if err := s.sendInvitation(ctx, actor, u); err != nil {
		return u, err
	}
	return u, nil
}

// ResendInvitation mails a new activation link to a user who has not activated the account
// yet; the previous link stops working, and with it the record that its mail failed. Admins
// only.
func (s *Service) ResendInvitation(ctx context.Context, c Client, actor *latchkey.User, id latchkey.UserID) error {
	if err := requireAdmin(actor); err != nil {
		return err
	}
	u, err := s.opt.Store.FindUserByID(ctx, id)
	if err != nil {
		return err
	}
	if invited, err := s.invited(ctx, id); err != nil {
		return err
	} else if !invited {
		return latchkey.Errorf(latchkey.EConflict, "%s has activated the account already; there is nothing to send.", u.Username)
	}
	if u.Disabled {
		return latchkey.Errorf(latchkey.EConflict, "%s is disabled. Enable the account first.", u.Username)
	}
	if err := s.sendInvitation(ctx, actor, u); err != nil {
		return err
	}
	s.auditBy(ctx, c, actor, u, "", latchkey.ActionUserInvited, latchkey.OutcomeSuccess, "new activation link")
	return nil
}

// invited reports whether the account id awaits activation: an invitation row, expired or
// not, means that it was never activated, since using the link deletes it (and nothing else
// does).
func (s *Service) invited(ctx context.Context, id latchkey.UserID) (bool, error) {
	pending, err := s.opt.Store.PendingInvitations(ctx, []latchkey.UserID{id}, time.Unix(0, 0))
	if err != nil {
		return false, fmt.Errorf("find invitation: %w", err)
	}
	_, ok := pending[id]
	return ok, nil
}

// RequireActivated returns nil when the owner of u has activated the account (or it was
// created with a password), and EConflict while it awaits activation (an invitation, expired
// or not). Such an account has never been signed in with and has no sign-in method, so a
// reset of its MFA or the removal of one of its factors has nothing to act on: the admin
// console's AdminResetMFA and the support desk's AgentResetMFA and AgentRemoveFactor refuse
// it with this error before anything is written (no audit entry: nothing is denied; no mail
// about a change that did not happen). The support desk asks it first, before the ticket's
// own rules.
func (s *Service) RequireActivated(ctx context.Context, u *latchkey.User) error {
	invited, err := s.invited(ctx, u.ID)
	if err != nil {
		return err
	}
	if invited {
		return latchkey.Errorf(latchkey.EConflict, "%s has not activated the account yet, so it has no sign-in methods to reset or remove. If the activation link did not arrive or expired, an administrator can send a new one from the account's page.", u.Username)
	}
	return nil
}

func (s *Service) sendInvitation(ctx context.Context, actor *latchkey.User, u *latchkey.User) error {
	tok, err := s.newToken()
	if err != nil {
		return err
	}
	now := s.now()
	inv := &latchkey.Invitation{Hash: s.invitationHash(tok), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
	if err := s.opt.Store.CreateInvitation(ctx, inv); err != nil {
		return fmt.Errorf("store invitation: %w", err)
	}
	link := strings.TrimSuffix(s.opt.PublicURL, "/") + "/activate?token=" + tok
	// The mail does not name the administrator or agent: their usernames are sign-in names
	// of privileged accounts, and the address may be a ticket's, not yet proven.
	m, err := mail.UserInvited(u.Email, mail.InviteData{Username: u.Username, URL: link, ExpiresAt: inv.ExpiresAt, ProductName: s.opt.Issuer})
	if err == nil {
		err = s.opt.Mailer.Send(ctx, m)
	}
	if err != nil {
		// The account exists; the admin can send a new link from the user's page. The
		// invitation remembers that its mail failed, so that the admin console and the
		// support desk say the user has no link, not when it expires, until a new one is sent.
		s.log.ErrorContext(ctx, "send activation mail", "user_id", u.ID, "err", err)
		if merr := s.opt.Store.MarkInvitationMailFailed(ctx, inv.Hash, s.now()); merr != nil {
			s.log.ErrorContext(ctx, "record the failed activation mail", "user_id", u.ID, "err", merr)
		}
		return latchkey.Errorf(latchkey.EInternal, "The account was created, but the activation mail could not be sent. Send a new link from the user's page.")
	}
	return nil
}

func (s *Service) invitationHash(token string) string {
	return hex.EncodeToString(s.keyedHash("invitation", token))
}

// Invitation returns the user whose unexpired, unused activation link token is, without
// using it; the errBadInvitation ENotFound otherwise.
func (s *Service) Invitation(ctx context.Context, token string) (*latchkey.User, error) {
	if token == "" || len(token) > 128 {
		return nil, errBadInvitation
	}
	inv, err := s.opt.Store.FindInvitation(ctx, s.invitationHash(token), s.now())
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, errBadInvitation
	} else if err != nil {
		return nil, err
	}
	u, err := s.opt.Store.FindUserByID(ctx, inv.UserID)
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u.Disabled {
		return nil, errBadInvitation
	}
	return u, nil
}

// Activate sets the password of an invited account with its one-time link and signs the user
// in: into the rollout (StateEnroll) when policy requires MFA, else fully. The password
// policy for an account without a second factor applies; a refused password leaves the link
// usable. Of two concurrent uses one wins.
func (s *Service) Activate(ctx context.Context, c Client, oldToken, token, pw string) (*Result, error) {
	u, err := s.Invitation(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := s.opt.Policy.Check(pw, false, u.Username, u.Email); err != nil {
		return nil, err
	}
	h, err := s.opt.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	id, err := s.opt.Store.ConsumeInvitation(ctx, s.invitationHash(token), s.now())
	if latchkey.ErrorCode(err) == latchkey.ENotFound || (err == nil && id != u.ID) {
		return nil, errBadInvitation
	} else if err != nil {
		return nil, err
	}
	if u, err = s.opt.Store.UpdateUser(ctx, u.ID, latchkey.UserUpdate{PasswordHash: &h}); err != nil {
		return nil, fmt.Errorf("set password: %w", err)
	}
	s.succeed(ctx, c, u)
	now := s.now()
	sess := &latchkey.Session{UserID: u.ID, AMR: []string{latchkey.AMRPassword}, PasswordAt: now, CreatedAt: now, LastSeenAt: now, IP: c.IP, UserAgent: c.UserAgent}
	var methods []string
	if s.opt.MFA == MFARequired {
		sess.State, sess.ExpiresAt = latchkey.StateEnroll, now.Add(s.opt.FlowTTL)
		methods = s.EnrollMethods()
	} else {
		sess.State, sess.ExpiresAt = latchkey.StateAuthenticated, now.Add(s.opt.MaxAge)
	}
	res, err := s.issue(ctx, oldToken, sess)
	if err != nil {
		return nil, err
	}
	res.User, res.Methods = u, methods
	s.audit(ctx, c, u, "", latchkey.ActionUserActivated, latchkey.OutcomeSuccess, "next: "+string(sess.State))
	return res, nil
}
