package login

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/totp"
)

// Recovery codes: 10 codes of 16 characters from a 32-symbol alphabet, 80 bits each, shown as
// four groups of four.
const (
	recoveryCount    = 10
	recoveryLen      = 16
	recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz123456789" // no i, l, o, 0: easy to read aloud
)

func parseCode(code string) (string, error) {
	c, err := totp.ParseCode(code)
	if err != nil {
		return "", latchkey.Errorf(latchkey.EInvalid, "Enter the 6-digit code from your authenticator app.")
	}
	return c, nil
}

// normalizeRecoveryCode lower-cases a recovery code and drops spaces and dashes.
func normalizeRecoveryCode(code string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == ' ' || r == '-' || r == '\t':
		case r < 128 && strings.ContainsRune(recoveryAlphabet, r):
			b.WriteRune(r)
		default:
			return "", latchkey.Errorf(latchkey.EInvalid, "A recovery code has 16 letters and digits, like abcd-efgh-jkmn-pqrs.")
		}
	}
	if b.Len() != recoveryLen {
		return "", latchkey.Errorf(latchkey.EInvalid, "A recovery code has 16 letters and digits, like abcd-efgh-jkmn-pqrs.")
	}
	return b.String(), nil
}

// newRecoveryCodes returns fresh codes for display and their keyed hashes for storage.
func (s *Service) newRecoveryCodes() (codes []string, hashes [][]byte, err error) {
	buf := make([]byte, recoveryLen)
	for range recoveryCount {
		if _, err := io.ReadFull(s.opt.Rand, buf); err != nil {
			return nil, nil, fmt.Errorf("read random: %w", err)
		}
		var raw strings.Builder
		for _, b := range buf {
			raw.WriteByte(recoveryAlphabet[b&31]) // 256 is a multiple of 32: no bias
		}
		r := raw.String()
		codes = append(codes, r[0:4]+"-"+r[4:8]+"-"+r[8:12]+"-"+r[12:16])
		hashes = append(hashes, s.keyedHash("recovery", r))
	}
	return codes, hashes, nil
}

func (s *Service) recoveryLeft(ctx context.Context, id latchkey.UserID) (int, error) {
	codes, err := s.opt.Store.FindRecoveryCodes(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("find recovery codes: %w", err)
	}
	n := 0
	for _, c := range codes {
		if c.UsedAt == nil {
			n++
		}
	}
	return n, nil
}

// Status is what the Security page shows about a user's factors.
type Status struct {
	TOTPEnabled       bool
	TOTPAddedAt       time.Time
	TOTPLastUsedAt    *time.Time
	RecoveryCodesLeft int
	// MFARequired is true when policy forbids removing the last factor.
	MFARequired bool
	// Factors counts the user's factors: authenticator apps, active Latch devices and
	// security keys.
	Factors int
	// Keys lists the user's security keys.
	Keys []KeyInfo
	// KeysAvailable is true when security keys can be added (the server knows its origin and
	// policy allows them).
	KeysAvailable bool
	// Passkeys is true when sign-in with a passkey is enabled.
	Passkeys bool
}

// Status returns the state of a user's factors.
func (s *Service) Status(ctx context.Context, u *latchkey.User) (*Status, error) {
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find totp credentials: %w", err)
	}
	st := &Status{MFARequired: s.opt.MFA == MFARequired}
	for _, c := range creds {
		if c.Confirmed() && c.DeviceID == 0 {
			st.TOTPEnabled, st.TOTPAddedAt, st.TOTPLastUsedAt = true, *c.ConfirmedAt, c.LastUsedAt
		}
		if c.Confirmed() {
			st.Factors++
		}
	}
	if s.wa != nil {
		if st.Keys, err = s.SecurityKeys(ctx, u); err != nil {
			return nil, err
		}
		st.Factors += len(st.Keys)
		st.KeysAvailable = s.MethodAllowed(latchkey.MethodWebAuthn)
		st.Passkeys = s.opt.WebAuthn.Passkeys
	}
	if st.RecoveryCodesLeft, err = s.recoveryLeft(ctx, u.ID); err != nil {
		return nil, err
	}
	return st, nil
}

// Enrollment is a pending TOTP setup: what the user scans or types into an authenticator app.
type Enrollment struct {
	Secret    string // base32, no padding
	Grouped   string // the secret in groups of four for reading
	URI       string // otpauth://totp/...
	QRDataURL string // data:image/png;base64,...
}

func (s *Service) enrollment(u *latchkey.User, secret []byte) (*Enrollment, error) {
	uri := totp.URI(s.opt.Issuer, u.Username, secret)
	png, err := totp.QRPNG(uri, 256)
	if err != nil {
		return nil, fmt.Errorf("render qr code: %w", err)
	}
	b32 := totp.Encode(secret)
	return &Enrollment{Secret: b32, Grouped: totp.GroupKey(b32), URI: uri, QRDataURL: totp.DataURL(png)}, nil
}

// BeginTOTP starts enrolling an authenticator app: it creates a pending credential with a new
// 160-bit secret, replacing any earlier pending one. It needs a recent password check.
func (s *Service) BeginTOTP(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User) (*Enrollment, error) {
	if err := s.Recent(ctx, sess, u); err != nil {
		return nil, err
	}
	if !s.MethodAllowed(latchkey.MethodTOTP) {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Your organisation does not allow authenticator apps with codes.")
	}
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find totp credentials: %w", err)
	}
	// A Latch device's offline codes are a credential too; only a standalone app counts here.
	if slices.ContainsFunc(creds, func(c *latchkey.TOTPCredential) bool { return c.Confirmed() && c.DeviceID == 0 }) {
		return nil, latchkey.Errorf(latchkey.EConflict, "Two-factor authentication with an authenticator app is already enabled.")
	}
	secret, err := totp.GenerateSecret()
	if err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	cred := &latchkey.TOTPCredential{UserID: u.ID, Name: "Authenticator app", Secret: secret}
	if err := s.opt.Store.CreateTOTPCredential(ctx, cred); err != nil {
		return nil, fmt.Errorf("create totp credential: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionTOTPEnrolStarted, latchkey.OutcomeSuccess, "")
	return s.enrollment(u, secret)
}

// PendingTOTP returns the user's unconfirmed enrolment, or ENotFound.
func (s *Service) PendingTOTP(ctx context.Context, u *latchkey.User) (*Enrollment, error) {
	cred, err := s.pending(ctx, u)
	if err != nil {
		return nil, err
	}
	return s.enrollment(u, cred.Secret)
}

func (s *Service) pending(ctx context.Context, u *latchkey.User) (*latchkey.TOTPCredential, error) {
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find totp credentials: %w", err)
	}
	for _, c := range slices.Backward(creds) {
		if !c.Confirmed() && c.DeviceID == 0 {
			return c, nil
		}
	}
	return nil, latchkey.Errorf(latchkey.ENotFound, "There is no authenticator app waiting to be confirmed. Start again.")
}

// ConfirmTOTP enables the pending authenticator app when code is right for its secret, and
// returns a new set of recovery codes to show once (the API's contract). A wrong code leaves
// the user unenrolled. In a rollout's sign-in (sess in StateEnroll) the app must be the
// user's first factor (errNotFirst): refused, it replaces no codes either.
func (s *Service) ConfirmTOTP(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, code string) ([]string, error) {
	if err := s.Recent(ctx, sess, u); err != nil {
		return nil, err
	}
	code, err := parseCode(code)
	if err != nil {
		return nil, err
	}
	cred, err := s.pending(ctx, u)
	if err != nil {
		return nil, err
	}
	step, ok := totp.Verify(cred.Secret, code, s.now(), 0)
	if !ok {
		s.audit(ctx, c, u, "", latchkey.ActionTOTPEnabled, latchkey.OutcomeFailure, "wrong confirmation code")
		return nil, latchkey.Errorf(latchkey.EInvalidCode, "That code didn't match. Enter the current 6-digit code shown in your authenticator app.")
	}
	codes, hashes, err := s.newRecoveryCodes()
	if err != nil {
		return nil, err
	}
	if err := s.opt.Store.ConfirmTOTPCredential(ctx, cred.ID, step, s.now(), hashes, sess.State == latchkey.StateEnroll); err != nil {
		if errors.Is(err, latchkey.ErrNotFirstFactor) {
			return nil, s.notFirst(ctx, c, sess, u, latchkey.ActionTOTPEnabled)
		}
		if code := latchkey.ErrorCode(err); code == latchkey.ENotFound || code == latchkey.EConflict {
			return nil, latchkey.Errorf(latchkey.EConflict, "This authenticator app was confirmed already.")
		}
		return nil, fmt.Errorf("confirm totp credential: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionTOTPEnabled, latchkey.OutcomeSuccess, "")
	s.notify(ctx, c, u, mail.TOTPEnabled, len(codes))
	return codes, nil
}

// errNotFirst refuses the factor a rollout's sign-in sets up once the account has one: the
// user (or someone else) set one up meanwhile, and a sign-in that passed only the password
// must now pass that factor, not add its own.
var errNotFirst = latchkey.Errorf(latchkey.EForbidden, "A sign-in method was set up for this account meanwhile. Sign in again and use it; you can add more on your Security page.")

// notFirst ends the rollout sign-in sess, whose factor came second (ErrNotFirstFactor), audits
// the refusal and returns errNotFirst.
func (s *Service) notFirst(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, action string) error {
	if err := s.opt.Store.DeleteSession(ctx, sess.ID); err != nil {
		s.log.ErrorContext(ctx, "end a rollout sign-in", "err", err)
	}
	s.audit(ctx, c, u, "", action, latchkey.OutcomeDenied, "rollout sign-in refused: the account has a second factor now")
	return errNotFirst
}

// firstRecoveryCodes makes recovery codes (plain, and hashed for the store) when u has none,
// as a security key comes with; nil, nil otherwise.
func (s *Service) firstRecoveryCodes(ctx context.Context, u *latchkey.User) ([]string, [][]byte, error) {
	m, err := s.methods(ctx, u)
	if err != nil || slices.Contains(m, latchkey.MethodRecovery) {
		return nil, nil, err
	}
	return s.newRecoveryCodes()
}

var errLastFactorOff = latchkey.Errorf(latchkey.EForbidden, "Your organisation requires two-factor authentication, so you can't turn off your only method. Add another method first.")

// DisableTOTP removes the user's authenticator app after checking the password, in a session
// that gave a second factor within the re-authentication window (RecentMFA). Under the
// policy MFARequired the last factor cannot be removed.
func (s *Service) DisableTOTP(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, pw string) error {
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("find totp credentials: %w", err)
	}
	// Latch devices' offline-code credentials are removed with their device, not here.
	i := slices.IndexFunc(creds, func(c *latchkey.TOTPCredential) bool { return c.Confirmed() && c.DeviceID == 0 })
	if i < 0 {
		return latchkey.Errorf(latchkey.ENotFound, "Two-factor authentication is not enabled.")
	}
	confirmed, err := s.factorCount(ctx, u)
	if err != nil {
		return err
	}
	if s.opt.MFA == MFARequired && confirmed == 1 {
		return errLastFactorOff
	}
	if err := s.RecentMFA(ctx, sess, u); err != nil {
		return err
	}
	if err := s.checkPassword(ctx, c, u, latchkey.ActionTOTPDisabled, pw); err != nil {
		return err
	}
	if err := s.opt.Store.DeleteTOTPCredential(ctx, u.ID, creds[i].ID, s.opt.MFA == MFARequired); errors.Is(err, latchkey.ErrLastFactor) {
		return errLastFactorOff
	} else if err != nil {
		return fmt.Errorf("delete totp credential: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionTOTPDisabled, latchkey.OutcomeSuccess, "")
	s.notify(ctx, c, u, mail.TOTPDisabled, 0)
	return nil
}

// RegenerateRecoveryCodes replaces the user's recovery codes after checking the password, in
// a session that gave a second factor within the re-authentication window (the user has
// one: recovery codes need it); the old set stops working at once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, pw string) ([]string, error) {
	m, err := s.methods(ctx, u)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(m, func(x string) bool { return x != latchkey.MethodRecovery }) {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Recovery codes need two-factor authentication. Enable it first.")
	}
	if !s.freshMFA(sess, s.now()) {
		return nil, errReauthMFA
	}
	if err := s.checkPassword(ctx, c, u, latchkey.ActionRecoveryGenerated, pw); err != nil {
		return nil, err
	}
	codes, hashes, err := s.newRecoveryCodes()
	if err != nil {
		return nil, err
	}
	if err := s.opt.Store.ReplaceRecoveryCodes(ctx, u.ID, hashes, s.now()); err != nil {
		return nil, fmt.Errorf("replace recovery codes: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionRecoveryGenerated, latchkey.OutcomeSuccess, "")
	return codes, nil
}

// ChangePassword sets a new password after checking the current one, in a session that gave
// a second factor within the re-authentication window if the user has one (RecentMFA), signs
// out every other session, rotates this one, and tells the user by email.
func (s *Service) ChangePassword(ctx context.Context, c Client, token string, current, next string) (*Result, error) {
	sess, u, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	if next == "" {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Enter a new password.")
	}
	m, err := s.methods(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(m) > 0 && !s.freshMFA(sess, s.now()) {
		return nil, errReauthMFA
	}
	if err := s.checkPassword(ctx, c, u, latchkey.ActionPasswordChanged, current); err != nil {
		return nil, err
	}
	if err := s.opt.Policy.Check(next, len(m) > 0, u.Username, u.Email); err != nil {
		return nil, err
	}
	h, err := s.opt.Hasher.Hash(ctx, next)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	if _, err := s.opt.Store.UpdateUser(ctx, u.ID, latchkey.UserUpdate{PasswordHash: &h}); err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	next2 := *sess
	next2.PasswordAt = s.now()
	res, err := s.issue(ctx, token, &next2)
	if err != nil {
		return nil, err
	}
	if err := s.endUserSessions(ctx, u.ID, next2.ID); err != nil {
		return nil, fmt.Errorf("delete other sessions: %w", err)
	}
	res.User = u
	s.audit(ctx, c, u, "", latchkey.ActionPasswordChanged, latchkey.OutcomeSuccess, "")
	s.notify(ctx, c, u, mail.PasswordChanged, 0)
	return res, nil
}

// NewUser describes an account to create.
type NewUser struct {
	Username string
	Email    string
	Role     latchkey.Role
	Password string
}

// CreateUser validates and creates an account. The password must satisfy the policy for an
// account without a second factor.
func (s *Service) CreateUser(ctx context.Context, c Client, nu NewUser) (*latchkey.User, error) {
	username := NormalizeUsername(nu.Username)
	email := strings.TrimSpace(nu.Email)
	var problems []string
	if !ValidUsername(username) {
		problems = append(problems, "The username must be 1 to 64 letters (of one alphabet), digits, dots, dashes, underscores or @.")
	}
	if at := strings.IndexByte(email, '@'); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n<>") {
		problems = append(problems, "Enter a valid email address.")
	}
	if nu.Role == "" {
		nu.Role = latchkey.RoleUser
	}
	if !nu.Role.Valid() {
		problems = append(problems, "The role must be admin, support or user.")
	}
	if len(problems) > 0 {
		return nil, latchkey.Errorf(latchkey.EInvalid, "%s", strings.Join(problems, " "))
	}
	if err := s.opt.Policy.Check(nu.Password, false, username, email); err != nil {
		return nil, err
	}
	h, err := s.opt.Hasher.Hash(ctx, nu.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := &latchkey.User{Username: username, UsernameKey: UsernameKey(username), Email: email, Role: nu.Role, PasswordHash: h}
	if err := s.opt.Store.CreateUser(ctx, u); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EConflict {
			return nil, err // taken, or too like a name that is
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionUserCreated, latchkey.OutcomeSuccess, "role "+string(u.Role))
	return u, nil
}

// adminExists reports whether any administrator exists.
func (s *Service) adminExists(ctx context.Context) (bool, error) {
	admin := latchkey.RoleAdmin
	list, n, err := s.opt.Store.FindUsers(ctx, latchkey.UserFilter{Role: &admin, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("find admins: %w", err)
	}
	return n > 0 || len(list) > 0, nil
}

// SetupToken returns a new one-time token for creating the first admin, or "" when an admin
// exists already, and then forgets any earlier token: a link printed at a first start must
// not outlive the first admin, however that admin was made (latchkey user create, another
// node's link). Each call replaces the previous token.
func (s *Service) SetupToken(ctx context.Context) (string, error) {
	exists, err := s.adminExists(ctx)
	if err != nil {
		return "", err
	}
	if exists {
		if err := s.opt.Store.SetSetting(ctx, latchkey.SettingSetupToken, ""); err != nil {
			return "", fmt.Errorf("forget setup token: %w", err)
		}
		return "", nil
	}
	tok, err := s.newToken()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(tok))
	if err := s.opt.Store.SetSetting(ctx, latchkey.SettingSetupToken, hex.EncodeToString(sum[:])); err != nil {
		return "", fmt.Errorf("store setup token: %w", err)
	}
	return tok, nil
}

// ValidSetupToken reports whether token is the current setup token, without using it. No
// token is valid once an administrator exists.
func (s *Service) ValidSetupToken(ctx context.Context, token string) bool {
	want, err := s.opt.Store.FindSetting(ctx, latchkey.SettingSetupToken)
	if err != nil || token == "" || want == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(want)) != 1 {
		return false
	}
	exists, err := s.adminExists(ctx)
	return err == nil && !exists
}

// CompleteSetup creates the first admin with the one-time setup token and signs them in.
func (s *Service) CompleteSetup(ctx context.Context, c Client, token string, nu NewUser) (*Result, error) {
	invalid := latchkey.Errorf(latchkey.ENotFound, "This setup link is not valid any more. Restart the server to get a new one.")
	if !s.ValidSetupToken(ctx, token) {
		return nil, invalid
	}
	nu.Role = latchkey.RoleAdmin
	// Validate before consuming, so a weak password does not burn the link.
	if _, err := s.dryRunUser(nu); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	ok, err := s.opt.Store.ConsumeSetting(ctx, latchkey.SettingSetupToken, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, fmt.Errorf("consume setup token: %w", err)
	}
	if !ok {
		return nil, invalid
	}
	// Consumed either way; an administrator made meanwhile (latchkey user create) ends the link.
	if exists, err := s.adminExists(ctx); err != nil {
		return nil, err
	} else if exists {
		return nil, invalid
	}
	u, err := s.CreateUser(ctx, c, nu)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, c, u, "", latchkey.ActionSetupCompleted, latchkey.OutcomeSuccess, "")
	now := s.now()
	sess := &latchkey.Session{UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{latchkey.AMRPassword}, PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.opt.MaxAge), IP: c.IP, UserAgent: c.UserAgent}
	res, err := s.issue(ctx, "", sess)
	if err != nil {
		return nil, err
	}
	res.User = u
	return res, nil
}

// dryRunUser applies CreateUser's checks without writing.
func (s *Service) dryRunUser(nu NewUser) (string, error) {
	username := NormalizeUsername(nu.Username)
	if !ValidUsername(username) {
		return "", latchkey.Errorf(latchkey.EInvalid, "The username must be 1 to 64 letters (of one alphabet), digits, dots, dashes, underscores or @.")
	}
	return username, s.opt.Policy.Check(nu.Password, false, username, nu.Email)
}
