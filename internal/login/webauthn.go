package login

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/mail"
)

// WebAuthnOptions configures security keys. The relying party ID is the host of the public URL
// and the one allowed origin is the public URL itself (SPEC.md), unless set here.
type WebAuthnOptions struct {
	RPID    string   // default: the host of PublicURL
	Origins []string // default: PublicURL's scheme://host[:port]
	// Attestation is the conveyance asked for at registration: none (default), indirect,
	// direct or enterprise.
	Attestation string
	// Passkeys enables sign-in with a discoverable credential and no username.
	Passkeys bool
}

// ceremonyTTL bounds a WebAuthn ceremony on the server; the browser is given a little less.
const ceremonyTTL = 5 * time.Minute

var (
	errKeyFailed   = &latchkey.Error{Code: latchkey.EInvalidCode, Message: "The security key could not be verified. Try again, or use another method."}
	errCeremony    = &latchkey.Error{Code: latchkey.EFlowExpired, Message: "The security key request expired or was used already. Try again."}
	errKeyCloned   = &latchkey.Error{Code: latchkey.EInvalidCode, Message: "This security key answered with a signature counter that went backwards, which a copied key would do. It was not accepted; use another method and check the key on your Security page."}
	errNoPasskeys  = &latchkey.Error{Code: latchkey.ENotFound, Message: "Sign-in with a passkey is not enabled on this server."}
	errKeyNotYours = &latchkey.Error{Code: latchkey.EInvalidCode, Message: "This security key is not registered to your account. Use one of your keys, or another method."}
)

// newWebAuthn builds the library's relying party from the options.
func newWebAuthn(o WebAuthnOptions, publicURL, issuer string) (*webauthn.WebAuthn, error) {
	if o.RPID == "" || len(o.Origins) == 0 {
		u, err := url.Parse(publicURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("webauthn: the public URL %q has no host", publicURL)
		}
		if o.RPID == "" {
			o.RPID = u.Hostname()
		}
		if len(o.Origins) == 0 {
			o.Origins = []string{u.Scheme + "://" + u.Host}
		}
	}
	return webauthn.New(&webauthn.Config{
		RPID:                  o.RPID,
		RPDisplayName:         issuer,
		RPOrigins:             o.Origins,
		AttestationPreference: protocol.ConveyancePreference(cmpOrStr(o.Attestation, string(protocol.PreferNoAttestation))),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL - time.Minute, TimeoutUVD: ceremonyTTL - time.Minute},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL - time.Minute, TimeoutUVD: ceremonyTTL - time.Minute},
		},
	})
}

func cmpOrStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ValidAttestation reports whether s is an attestation conveyance the server accepts.
func ValidAttestation(s string) bool {
	return s == "" || slices.Contains([]string{"none", "indirect", "direct", "enterprise"}, s)
}

// userHandle is the WebAuthn user handle of a user: the user ID, 8 bytes big-endian. It is
// stable, reveals nothing else, and a passkey's handle is checked against the user that owns
// the credential ID, so a handle alone identifies no one.
func userHandle(id latchkey.UserID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// waUser adapts a user and their keys to the library.
type waUser struct {
	u     *latchkey.User
	creds []webauthn.Credential
	rows  []*latchkey.WebAuthnCredential
}

func (w *waUser) WebAuthnID() []byte                         { return userHandle(w.u.ID) }
func (w *waUser) WebAuthnName() string                       { return w.u.Username }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.Username }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func (w *waUser) row(credentialID []byte) *latchkey.WebAuthnCredential {
	for _, r := range w.rows {
		if bytes.Equal(r.CredentialID, credentialID) {
			return r
		}
	}
	return nil
}

func (s *Service) waUser(ctx context.Context, u *latchkey.User) (*waUser, error) {
	rows, err := s.opt.Store.FindWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find security keys: %w", err)
	}
	w := &waUser{u: u, rows: rows}
	for _, r := range rows {
		var c webauthn.Credential
		if err := json.Unmarshal(r.Data, &c); err != nil {
			return nil, fmt.Errorf("security key %d: %w", r.ID, err)
		}
		// The counter lives in its own column, which only rises.
		c.Authenticator.SignCount = r.SignCount
		w.creds = append(w.creds, c)
	}
	return w, nil
}

func (s *Service) webauthnReady() error {
	if s.wa == nil {
		return latchkey.Errorf(latchkey.ENotFound, "Security keys are not available on this server.")
	}
	return nil
}

// KeyOptions is what the browser passes to navigator.credentials: {"publicKey": {...}}.
type KeyOptions struct {
	CeremonyID string
	Options    any
}

// BeginWebAuthnRegistration starts adding a security key. It needs a recent password check
// (a sign-in flow in the rollout state has just had one). Keys the user has are excluded, so
// the same key is not registered twice.
func (s *Service) BeginWebAuthnRegistration(ctx context.Context, sess *latchkey.Session, u *latchkey.User) (*KeyOptions, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	if err := s.Recent(ctx, sess, u); err != nil {
		return nil, err
	}
	w, err := s.waUser(ctx, u)
	if err != nil {
		return nil, err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range w.creds {
		exclude = append(exclude, c.Descriptor())
	}
	resident := protocol.ResidentKeyRequirementDiscouraged
	if s.opt.WebAuthn.Passkeys {
		resident = protocol.ResidentKeyRequirementPreferred
	}
	creation, data, err := s.wa.BeginRegistration(w, webauthn.WithExclusions(exclude), webauthn.WithResidentKeyRequirement(resident),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		return nil, fmt.Errorf("begin webauthn registration: %w", err)
	}
	id, err := s.startCeremony(ctx, latchkey.CeremonyRegister, u.ID, sess.ID, data)
	if err != nil {
		return nil, err
	}
	return &KeyOptions{CeremonyID: id, Options: creation}, nil
}

// ValidKeyName checks a security key's name: 1–64 printable characters.
func ValidKeyName(name string) (string, error) {
	name, ok := latchkey.CleanName(name, 64)
	if !ok {
		return "", latchkey.Errorf(latchkey.EInvalid, "Give it a name of 1 to 64 printable characters, like \"Blue YubiKey\" or \"Work phone\".")
	}
	return name, nil
}

// FinishWebAuthnRegistration checks the authenticator's answer and registers the key under
// name. The first factor of a user comes with recovery codes, returned to be shown once.
func (s *Service) FinishWebAuthnRegistration(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, ceremonyID, name string, response []byte) ([]string, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	name, err := ValidKeyName(name)
	if err != nil {
		return nil, err
	}
	if err := s.Recent(ctx, sess, u); err != nil {
		return nil, err
	}
	data, err := s.takeCeremony(ctx, ceremonyID, latchkey.CeremonyRegister, u.ID, sess.ID)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		s.audit(ctx, c, u, "", latchkey.ActionWebAuthnAdded, latchkey.OutcomeFailure, "unreadable registration")
		return nil, latchkey.Errorf(latchkey.EInvalid, "The security key's answer could not be read. Try again.")
	}
	w, err := s.waUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := s.wa.CreateCredential(w, *data, parsed)
	if err != nil {
		s.audit(ctx, c, u, "", latchkey.ActionWebAuthnAdded, latchkey.OutcomeFailure, waDetail(err))
		return nil, latchkey.Errorf(latchkey.EInvalid, "The security key could not be registered. Try again.")
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	row := &latchkey.WebAuthnCredential{UserID: u.ID, Name: name, CredentialID: cred.ID, Data: raw, SignCount: cred.Authenticator.SignCount,
		Discoverable: cred.Extensions.RK != nil && *cred.Extensions.RK}
	codes, hashes, err := s.firstRecoveryCodes(ctx, u)
	if err != nil {
		return nil, err
	}
	if err := s.opt.Store.CreateWebAuthnCredential(ctx, row, hashes, sess.State == latchkey.StateEnroll); err != nil {
		if errors.Is(err, latchkey.ErrNotFirstFactor) {
			return nil, s.notFirst(ctx, c, sess, u, latchkey.ActionWebAuthnAdded)
		}
		if latchkey.ErrorCode(err) == latchkey.EConflict {
			s.audit(ctx, c, u, "", latchkey.ActionWebAuthnAdded, latchkey.OutcomeFailure, "credential registered already")
			return nil, err
		}
		return nil, fmt.Errorf("create security key: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionWebAuthnAdded, latchkey.OutcomeSuccess, "key "+fmt.Sprint(row.ID))
	s.notifyName(ctx, c, u, mail.KeyAdded, name)
	return codes, nil
}

// waDetail is a library error for the audit trail: its details, never the raw answer.
func waDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return strings.TrimSpace(pe.Type + ": " + pe.Details)
	}
	return "verification failed"
}

// BeginWebAuthnLogin starts the security-key step of a sign-in.
func (s *Service) BeginWebAuthnLogin(ctx context.Context, token string) (*KeyOptions, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	sess, u, err := s.flow(ctx, token)
	if err != nil {
		return nil, err
	}
	return s.beginAssertion(ctx, latchkey.CeremonyLogin, sess, u)
}

func (s *Service) beginAssertion(ctx context.Context, kind string, sess *latchkey.Session, u *latchkey.User) (*KeyOptions, error) {
	w, err := s.waUser(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(w.creds) == 0 {
		return nil, latchkey.Errorf(latchkey.ENotFound, "You have no security key. Use another method.")
	}
	assertion, data, err := s.wa.BeginLogin(w)
	if err != nil {
		return nil, fmt.Errorf("begin webauthn login: %w", err)
	}
	id, err := s.startCeremony(ctx, kind, u.ID, sess.ID, data)
	if err != nil {
		return nil, err
	}
	return &KeyOptions{CeremonyID: id, Options: assertion}, nil
}

// FinishWebAuthnLogin completes a sign-in with a security key.
func (s *Service) FinishWebAuthnLogin(ctx context.Context, c Client, token, ceremonyID string, response []byte) (*Result, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	sess, u, err := s.flow(ctx, token)
	if err != nil {
		return nil, err
	}
	key, err := s.admit(ctx, c, u, latchkey.ActionLoginWebAuthn, errKeyFailed)
	if err != nil {
		return nil, err
	}
	if err := s.verifyAssertion(ctx, c, u, key, latchkey.CeremonyLogin, sess.ID, ceremonyID, response, latchkey.ActionLoginWebAuthn); err != nil {
		return nil, err
	}
	res, err := s.complete(ctx, c, token, sess, u, completion{action: latchkey.ActionLoginWebAuthn}, latchkey.AMRHardware)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// verifyAssertion checks a security key's answer to a ceremony of u: the library checks the
// challenge, origin, rpIdHash, user presence and the signature; here, that the key is u's and
// that its counter did not go back. A failure counts against the account.
func (s *Service) verifyAssertion(ctx context.Context, c Client, u *latchkey.User, key attempt, kind, sessionID, ceremonyID string, response []byte, action string) error {
	data, err := s.takeCeremony(ctx, ceremonyID, kind, u.ID, sessionID)
	if err != nil {
		s.refund(ctx, key) // an expired or foreign ceremony is no guess at a credential
		return err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, "unreadable assertion")
		return errKeyFailed
	}
	return s.checkAssertion(ctx, c, u, key, data, parsed, action)
}

func (s *Service) checkAssertion(ctx context.Context, c Client, u *latchkey.User, key attempt, data *webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData, action string) error {
	w, err := s.waUser(ctx, u)
	if err != nil {
		return err
	}
	row := w.row(parsed.RawID)
	if row == nil {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, "credential of another account or unknown")
		return errKeyNotYours
	}
	cred, err := s.wa.ValidateLogin(w, *data, parsed)
	if err != nil {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", action, latchkey.OutcomeFailure, waDetail(err))
		return errKeyFailed
	}
	cloned := func(detail string) error {
		if err := s.opt.Store.UseWebAuthnCredential(ctx, row.ID, row.SignCount, true, s.now()); err != nil {
			s.log.ErrorContext(ctx, "flag security key", "err", err)
		}
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionWebAuthnCounter, latchkey.OutcomeDenied, detail)
		return errKeyCloned
	}
	if cred.Authenticator.CloneWarning {
		return cloned(fmt.Sprintf("key %d: counter %d after %d", row.ID, parsed.Response.AuthenticatorData.Counter, row.SignCount))
	}
	// The store checks the counter again as it raises it: of two assertions with the same
	// counter at once (both checked against the counter read before either was recorded),
	// the second is refused as the counter check would have refused it after the first.
	err = s.opt.Store.UseWebAuthnCredential(ctx, row.ID, cred.Authenticator.SignCount, false, s.now())
	if latchkey.ErrorCode(err) == latchkey.EConflict {
		return cloned(fmt.Sprintf("key %d: counter %d recorded meanwhile", row.ID, parsed.Response.AuthenticatorData.Counter))
	} else if err != nil {
		return fmt.Errorf("record security key use: %w", err)
	}
	s.refund(ctx, key)
	return nil
}

// BeginPasskeyLogin starts a sign-in with a discoverable credential: no username, no password.
func (s *Service) BeginPasskeyLogin(ctx context.Context) (*KeyOptions, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	if !s.opt.WebAuthn.Passkeys {
		return nil, errNoPasskeys
	}
	assertion, data, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey login: %w", err)
	}
	id, err := s.startCeremony(ctx, latchkey.CeremonyPasskey, 0, "", data)
	if err != nil {
		return nil, err
	}
	return &KeyOptions{CeremonyID: id, Options: assertion}, nil
}

// FinishPasskeyLogin signs a user in with a passkey. The key must be verified by the user
// (PIN or biometrics): possession and verification make it multi-factor on its own.
func (s *Service) FinishPasskeyLogin(ctx context.Context, c Client, oldToken, ceremonyID string, response []byte) (*Result, error) {
	if err := s.webauthnReady(); err != nil {
		return nil, err
	}
	if !s.opt.WebAuthn.Passkeys {
		return nil, errNoPasskeys
	}
	if err := s.ip.Check(c.IP, s.now()); err != nil {
		return nil, err
	}
	// The answer is parsed before the ceremony is taken, which records it as answered: an
	// answer that is not even well formed writes nothing.
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		s.ip.Fail(c.IP, s.now())
		return nil, errKeyFailed
	}
	data, err := s.takeCeremony(ctx, ceremonyID, latchkey.CeremonyPasskey, 0, "")
	if err != nil {
		return nil, err
	}
	row, err := s.opt.Store.FindWebAuthnCredential(ctx, parsed.RawID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		s.ip.Fail(c.IP, s.now())
		s.audit(ctx, c, nil, "", latchkey.ActionLoginPasskey, latchkey.OutcomeFailure, "unknown credential")
		return nil, errKeyFailed
	} else if err != nil {
		return nil, fmt.Errorf("find security key: %w", err)
	}
	u, err := s.opt.Store.FindUserByID(ctx, row.UserID)
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	key, err := s.admit(ctx, c, u, latchkey.ActionLoginPasskey, errKeyFailed)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionLoginPasskey, latchkey.OutcomeFailure, "account disabled")
		return nil, errKeyFailed
	}
	// The handle the key returns must be its owner's (the library checks it against the user
	// it is given, which is the owner of the credential ID).
	if !bytes.Equal(parsed.Response.UserHandle, userHandle(u.ID)) {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionLoginPasskey, latchkey.OutcomeFailure, "user handle does not match the credential's owner")
		return nil, errKeyFailed
	}
	// Now that the user is known, the discoverable ceremony is checked as one of theirs.
	data.UserID = userHandle(u.ID)
	if err := s.checkAssertion(ctx, c, u, key, data, parsed, latchkey.ActionLoginPasskey); err != nil {
		return nil, err
	}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		s.fail(ctx, c, key)
		s.audit(ctx, c, u, "", latchkey.ActionLoginPasskey, latchkey.OutcomeFailure, "user not verified")
		return nil, errKeyFailed
	}
	now := s.now()
	sess := &latchkey.Session{UserID: u.ID, State: latchkey.StateAuthenticated, AMR: []string{latchkey.AMRHardware, "user", latchkey.AMRMFA},
		PasswordAt: now, MFAAt: &now, CreatedAt: now, LastSeenAt: now, ExpiresAt: s.mfaEnd(u, now), IP: c.IP, UserAgent: c.UserAgent}
	res, err := s.issue(ctx, oldToken, sess)
	if err != nil {
		return nil, err
	}
	res.User = u
	s.succeed(ctx, c, u)
	s.audit(ctx, c, u, "", latchkey.ActionLoginPasskey, latchkey.OutcomeSuccess, "")
	return res, nil
}

// KeyInfo is a security key as the Security page shows it.
type KeyInfo struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Passkey      bool       `json:"passkey"`
	CloneWarning bool       `json:"clone_warning"`
	AddedAt      time.Time  `json:"added_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
}

// SecurityKeys lists the user's keys.
func (s *Service) SecurityKeys(ctx context.Context, u *latchkey.User) ([]KeyInfo, error) {
	rows, err := s.opt.Store.FindWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find security keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, KeyInfo{ID: r.ID, Name: r.Name, Passkey: r.Discoverable, CloneWarning: r.CloneWarning, AddedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt})
	}
	return out, nil
}

// RenameSecurityKey renames one of the user's keys.
func (s *Service) RenameSecurityKey(ctx context.Context, c Client, u *latchkey.User, id int64, name string) error {
	name, err := ValidKeyName(name)
	if err != nil {
		return err
	}
	if err := s.opt.Store.RenameWebAuthnCredential(ctx, u.ID, id, name); err != nil {
		return err
	}
	s.audit(ctx, c, u, "", latchkey.ActionWebAuthnRenamed, latchkey.OutcomeSuccess, fmt.Sprintf("key %d", id))
	return nil
}

// RemoveSecurityKey removes one of the user's keys. It needs a recent password check, and
// under MFARequired the last factor cannot go. With the last factor go the recovery codes.
func (s *Service) RemoveSecurityKey(ctx context.Context, c Client, sess *latchkey.Session, u *latchkey.User, id int64) error {
	if err := s.Recent(ctx, sess, u); err != nil {
		return err
	}
	keys, err := s.opt.Store.FindWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("find security keys: %w", err)
	}
	i := slices.IndexFunc(keys, func(k *latchkey.WebAuthnCredential) bool { return k.ID == id })
	if i < 0 {
		return latchkey.Errorf(latchkey.ENotFound, "There is no such security key.")
	}
	n, err := s.factorCount(ctx, u)
	if err != nil {
		return err
	}
	if n == 1 && s.opt.MFA == MFARequired {
		return errLastFactor
	}
	if err := s.opt.Store.DeleteWebAuthnCredential(ctx, u.ID, id, s.opt.MFA == MFARequired); errors.Is(err, latchkey.ErrLastFactor) {
		return errLastFactor
	} else if err != nil {
		return err
	}
	s.audit(ctx, c, u, "", latchkey.ActionWebAuthnRemoved, latchkey.OutcomeSuccess, fmt.Sprintf("key %d", id))
	s.notifyName(ctx, c, u, mail.KeyRemoved, keys[i].Name)
	return nil
}

var errLastFactor = &latchkey.Error{Code: latchkey.EForbidden, Message: "Your organisation requires two-factor authentication, so you can't remove your only method. Add another method first."}

// factorCount counts a user's factors: authenticator apps (a Latch device's offline codes
// count with their device) and security keys.
func (s *Service) factorCount(ctx context.Context, u *latchkey.User) (int, error) {
	creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
	if err != nil {
		return 0, fmt.Errorf("find totp credentials: %w", err)
	}
	keys, err := s.opt.Store.FindWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return 0, fmt.Errorf("find security keys: %w", err)
	}
	n := len(keys)
	for _, c := range creds {
		if c.Confirmed() {
			n++
		}
	}
	return n, nil
}

func (s *Service) notifyName(ctx context.Context, c Client, u *latchkey.User, tmpl func(string, mail.Data) (mail.Message, error), name string) {
	s.sendNotice(ctx, c, u, tmpl, mail.Data{DeviceName: name})
}

// PasskeysEnabled reports whether sign-in with a passkey is offered.
func (s *Service) PasskeysEnabled() bool { return s.wa != nil && s.opt.WebAuthn.Passkeys }
