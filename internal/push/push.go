// Package push owns the Latch devices of users and push approval with number matching:
// activation and transfer codes, device request authentication (ECDSA P-256 signatures over
// each request, with a replay guard on nonces), push challenges and their answers, fraud
// reports with the pause that follows, and the wake-ups that deliver challenges at once.
//
// The sign-in flow itself stays in internal/login, which asks this package to send a sign-in
// challenge through its Pusher interface and reads the challenge's state from the store.
// docs/device-protocol.md describes the protocol; internal/deviceproto is its wire format.
package push

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/ratelimit"
	"github.com/latchkey/latchkey/internal/totp"
)

// Store is the storage the push service needs.
type Store interface {
	latchkey.UserStore
	latchkey.DeviceStore
	latchkey.TOTPStore
	latchkey.ThrottleStore
}

// Options configures a Service. Zero values take the defaults shown.
type Options struct {
	Store  Store
	Mailer mail.Sender
	Audit  *audit.Recorder
	Hub    *Hub
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand.Reader
	// Key keys the hashes of activation and transfer codes (at least 32 bytes).
	Key []byte
	// PublicURL is the server's address, put into activation URIs and emails.
	PublicURL string
	// Issuer names the service in authenticator apps ("Latchkey").
	Issuer string
	// NumberLength is the number of digits of number matching, 2–6 (default 2).
	NumberLength int
	// ChallengeTTL is how long a push may be answered (default 2 minutes).
	ChallengeTTL time.Duration
	// ActivationTTL bounds an activation code (default 5 minutes).
	ActivationTTL time.Duration
	// TransferTTL bounds a transfer code (default 10 minutes, the most allowed).
	TransferTTL time.Duration
	// FreshMFA is how recent a second-factor sign-in must be for a second device to be
	// activated without approval from an existing one (default 5 minutes).
	FreshMFA time.Duration
	// FraudPause is how long pushes to an account stop after "this wasn't me" (default 1 hour).
	FraudPause time.Duration
	// MaxPushes caps the pushes since the account's last successful sign-in (default 5).
	MaxPushes int
	// IPLimit bounds wrong activation and transfer codes per IP address: that many, then
	// one more per IPRefill (defaults 10 and 30 seconds).
	IPLimit  int
	IPRefill time.Duration
}

// Service is the devices-and-push service. It is safe for concurrent use.
type Service struct {
	opt Options
	log *slog.Logger
	ip  *ratelimit.Limiter
	// badSig bounds requests whose signature fails for an existing device, per IP address
	// (as ip: IPLimit, then one per IPRefill): each costs a read, a verification and an
	// audit entry, and anyone can send them for any device ID.
	badSig *ratelimit.Limiter
}

// New returns a Service. It panics on a missing dependency, which is a wiring bug.
func New(opt Options) *Service {
	if opt.Store == nil || opt.Mailer == nil || opt.Audit == nil || opt.Hub == nil {
		panic("push: Store, Mailer, Audit and Hub are required")
	}
	if len(opt.Key) < 32 {
		panic("push: Key must have at least 32 bytes")
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
	if opt.Issuer == "" {
		opt.Issuer = "Latchkey"
	}
	if opt.NumberLength == 0 {
		opt.NumberLength = 2
	}
	if opt.NumberLength < 2 || opt.NumberLength > 6 {
		panic("push: NumberLength must be 2 to 6")
	}
	opt.ChallengeTTL = or(opt.ChallengeTTL, 2*time.Minute)
	opt.ActivationTTL = or(opt.ActivationTTL, 5*time.Minute)
	opt.TransferTTL = min(or(opt.TransferTTL, 10*time.Minute), 10*time.Minute)
	opt.FreshMFA = or(opt.FreshMFA, 5*time.Minute)
	opt.FraudPause = or(opt.FraudPause, time.Hour)
	opt.IPRefill = or(opt.IPRefill, 30*time.Second)
	if opt.MaxPushes <= 0 {
		opt.MaxPushes = 5
	}
	if opt.IPLimit <= 0 {
		opt.IPLimit = 10
	}
	return &Service{opt: opt, log: opt.Logger, ip: ratelimit.New(opt.IPLimit, opt.IPRefill), badSig: ratelimit.New(opt.IPLimit, opt.IPRefill)}
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Client describes where a request comes from, for throttling, audit and notifications.
type Client struct {
	IP        string
	UserAgent string
}

// Hub returns the service's hub, for handlers that wait for news.
func (s *Service) Hub() *Hub { return s.opt.Hub }

// NumberLength is the configured number of digits of number matching.
func (s *Service) NumberLength() int { return s.opt.NumberLength }

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

func (s *Service) codeHash(kind, code string) string {
	m := hmac.New(sha256.New, s.opt.Key)
	m.Write([]byte("device-" + kind))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Service) audit(ctx context.Context, c Client, u *latchkey.User, action, outcome, detail string) {
	e := latchkey.AuditEvent{Action: action, Outcome: outcome, IP: c.IP, UserAgent: c.UserAgent, Detail: detail}
	if u != nil {
		e.UserID, e.Username = u.ID, u.Username
	}
	_ = s.opt.Audit.Record(ctx, e)
}

func (s *Service) notify(ctx context.Context, c Client, u *latchkey.User, tmpl func(string, mail.Data) (mail.Message, error), device string) {
	m, err := tmpl(u.Email, mail.Data{Username: u.Username, Time: s.now(), IP: c.IP, UserAgent: c.UserAgent, PublicURL: s.opt.PublicURL, DeviceName: device})
	if err == nil {
		err = s.opt.Mailer.Send(ctx, m)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "send notification", "user_id", u.ID, "err", err)
	}
}

// ---- Activation -------------------------------------------------------------------------

// Activation is a one-time code shown to the user.
type Activation struct {
	Code      string
	URI       string
	ExpiresAt time.Time
	// NeedsApproval: redeeming it creates a device that an existing device must approve.
	NeedsApproval bool
}

// CreateActivation creates an activation code for the signed-in user of sess. When the user
// already has an active device and sess carries no second factor from the last FreshMFA,
// the new device will need approval from an existing one (journey 8). The caller checks
// the recent password first, and passes in noMFA why the session's re-authentication is not
// full (login.RecentMFA; nil when it is): then only a code whose device an existing one must
// approve is made, the approval being the second factor, and without an active device noMFA
// is the answer.
func (s *Service) CreateActivation(ctx context.Context, c Client, u *latchkey.User, sess *latchkey.Session, noMFA error) (*Activation, error) {
	devs, err := s.opt.Store.FindDevices(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	now := s.now()
	hasActive := false
	for _, d := range devs {
		hasActive = hasActive || d.State == latchkey.DeviceActive
	}
	fresh := sess.MFAAt != nil && now.Sub(*sess.MFAAt) <= s.opt.FreshMFA
	if noMFA != nil {
		if !hasActive {
			return nil, noMFA
		}
		fresh = false
	}
	code, err := deviceproto.NewCode(s.opt.Rand)
	if err != nil {
		return nil, err
	}
	norm, _ := deviceproto.NormalizeCode(code)
	a := &latchkey.DeviceActivation{
		ID: s.codeHash(latchkey.ActivationNew, norm), UserID: u.ID, Kind: latchkey.ActivationNew,
		NeedsApproval: hasActive && !fresh, CreatedAt: now, ExpiresAt: now.Add(s.opt.ActivationTTL),
	}
	if sess.State == latchkey.StateEnroll {
		a.FlowSID = sess.SID // a rollout's code: it sets up the first factor or nothing
	}
	if err := s.opt.Store.CreateDeviceActivation(ctx, a); err != nil {
		return nil, fmt.Errorf("create activation: %w", err)
	}
	detail := "single device"
	if hasActive {
		detail = "additional device, fresh MFA"
		if a.NeedsApproval {
			detail = "additional device, approval by an existing device required"
		}
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceActivation, latchkey.OutcomeSuccess, detail)
	return &Activation{Code: code, URI: deviceproto.FormatURI(deviceproto.KindActivate, s.opt.PublicURL, code), ExpiresAt: a.ExpiresAt, NeedsApproval: a.NeedsApproval}, nil
}

var errBadActivation = &latchkey.Error{Code: latchkey.EInvalidCode, Message: "That code is not valid or has expired. Create a new one in Settings › Security."}

// checkName validates a device name: 1–64 printable characters.
func checkName(name string) (string, error) {
	name, ok := latchkey.CleanName(name, 64)
	if !ok {
		return "", latchkey.Errorf(latchkey.EInvalid, "The name must be 1 to 64 printable characters.")
	}
	return name, nil
}

func checkPlatform(p string) (string, error) {
	p = strings.TrimSpace(p)
	if utf8.RuneCountInString(p) > 32 || strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", latchkey.Errorf(latchkey.EInvalid, "The platform must be at most 32 printable characters.")
	}
	return p, nil
}

// Redeem binds a new key with an activation code (kind latchkey.ActivationNew) or a transfer
// code (latchkey.ActivationTransfer). sig is the request's parsed signature, which must be
// made by the key in req (proof of possession). The result is the device's information; when
// its State is StatePendingApproval, Number is what the user types on the existing device.
func (s *Service) Redeem(ctx context.Context, c Client, kind string, sig *deviceproto.Signed, req deviceproto.ActivateRequest) (*deviceproto.ActivateResponse, error) {
	// A wrong code spends a token of the address; the token is taken before the code is
	// looked at and given back otherwise, so that attempts sent at once cannot all pass a
	// check made before any of them failed.
	if err := s.ip.Take(c.IP, s.now()); err != nil {
		return nil, err
	}
	wrongCode := false
	defer func() {
		if !wrongCode {
			s.ip.Refund(c.IP, s.now())
		}
	}()
	key, der, err := deviceproto.ParsePublicKey(req.PublicKey)
	if err != nil {
		return nil, latchkey.Errorf(latchkey.EInvalid, "%s", err.Error())
	}
	if sig.DeviceID != 0 || !sig.Verify(key) {
		return nil, latchkey.Errorf(latchkey.EDeviceSignature, "The request must be signed with the key it registers.")
	}
	name, err := checkName(req.Name)
	if err != nil {
		return nil, err
	}
	platform, err := checkPlatform(req.Platform)
	if err != nil {
		return nil, err
	}
	code, ok := deviceproto.NormalizeCode(req.Code)
	if !ok {
		wrongCode = true
		return nil, errBadActivation
	}
	now := s.now()
	a, err := s.opt.Store.UseDeviceActivation(ctx, s.codeHash(kind, code), now)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		wrongCode = true
		s.audit(ctx, c, nil, latchkey.ActionDeviceRefused, latchkey.OutcomeFailure, "unknown, used or expired "+kind+" code")
		return nil, errBadActivation
	} else if err != nil {
		return nil, fmt.Errorf("use activation: %w", err)
	}
	u, err := s.opt.Store.FindUserByID(ctx, a.UserID)
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u.Disabled {
		return nil, errBadActivation
	}
	if kind == latchkey.ActivationTransfer {
		return s.transfer(ctx, c, u, a, der, name, platform)
	}
	// The code's decision stands, unless a device was added after the code was made: codes
	// made while the user had no device (or with a fresh second factor) do not let a second
	// device in past the first one without its approval. The store decides that again in the
	// device's transaction (Device.Code): a device that came in meanwhile, through another
	// code redeemed at the same moment, sends this one to the approval after all; and the
	// code of a rollout's sign-in admits the account's first factor or nothing.
	var d *latchkey.Device
	var secret []byte
	for tries := 0; ; tries++ {
		devs, err := s.opt.Store.FindDevices(ctx, u.ID)
		if err != nil {
			return nil, fmt.Errorf("find devices: %w", err)
		}
		var primary *latchkey.Device
		needsApproval := a.NeedsApproval
		for _, d := range devs {
			if d.State == latchkey.DeviceActive && (primary == nil || d.Primary) {
				primary = d
			}
			if d.State == latchkey.DeviceActive && d.CreatedAt.After(a.CreatedAt) {
				needsApproval = true
			}
		}
		d = &latchkey.Device{UserID: u.ID, Name: name, Platform: platform, PublicKey: der, KeyChangedAt: now, Code: a}
		if needsApproval && primary != nil {
			return s.awaitApproval(ctx, c, u, d, primary)
		}
		d.State = latchkey.DeviceActive
		if secret, err = totp.GenerateSecret(); err != nil {
			return nil, err
		}
		cred := &latchkey.TOTPCredential{UserID: u.ID, Name: name, Secret: secret}
		err = s.createDevice(ctx, d, cred)
		if errors.Is(err, latchkey.ErrDeviceNeedsApproval) && tries == 0 {
			continue
		} else if errors.Is(err, latchkey.ErrNotFirstFactor) {
			s.audit(ctx, c, u, latchkey.ActionDeviceRefused, latchkey.OutcomeDenied, "code of a rollout sign-in, and the account has a second factor now")
			return nil, errNotFirstDevice
		} else if err != nil {
			return nil, err
		}
		break
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceAdded, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q (%s)", d.ID, name, platform))
	s.notify(ctx, c, u, mail.DeviceAdded, name)
	return &deviceproto.ActivateResponse{DeviceInfo: s.info(u, d, secret)}, nil
}

// errNotFirstDevice refuses a device activated with a rollout sign-in's code once the account
// has a factor (Device.Code).
var errNotFirstDevice = latchkey.Errorf(latchkey.EForbidden, "This code was made to set up a first sign-in method, and the account has one now. Sign in with it and add this device from your Security page.")

// addLater and signInOther say what to do instead of a refused push.
const (
	addLater    = "Add the device later, or right after signing in with a second factor."
	signInOther = "Use another method to sign in."
)

// awaitApproval creates d pending and sends primary the challenge that approves it. The
// approval request is a push like a sign-in's: refused while pushes to the user are paused
// after a fraud report or past their cap (so that pending devices cannot pile up either),
// and counted.
func (s *Service) awaitApproval(ctx context.Context, c Client, u *latchkey.User, d, primary *latchkey.Device) (*deviceproto.ActivateResponse, error) {
	if err := s.pushAllowed(ctx, c, u, addLater); err != nil {
		return nil, err
	}
	d.State = latchkey.DevicePending
	if err := s.createDevice(ctx, d, nil); err != nil {
		return nil, err
	}
	ch, err := s.newChallenge(ctx, u, primary, latchkey.PushAddDevice, "", c, "Latchkey")
	if err != nil {
		return nil, err
	}
	ch.SubjectDeviceID = d.ID
	if err := s.opt.Store.SendPushChallenge(ctx, ch, latchkey.ThrottleKeyPush(u.Username), s.opt.MaxPushes, nil); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EThrottled {
			// Pushes sent at once took the count past the cap after pushAllowed read it:
			// the device it would have approved goes (DeleteAbandonedDevices is the backstop).
			if derr := s.opt.Store.DeleteDevice(ctx, u.ID, d.ID, false); derr != nil {
				s.opt.Logger.Error("remove the refused pending device", "device", d.ID, "err", derr)
			}
			return nil, s.capReached(ctx, c, u, addLater)
		}
		return nil, fmt.Errorf("create challenge: %w", err)
	}
	s.opt.Hub.NotifyDevice(primary.ID)
	s.audit(ctx, c, u, latchkey.ActionDevicePending, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q awaits approval by device %d", d.ID, d.Name, primary.ID))
	return &deviceproto.ActivateResponse{DeviceInfo: s.info(u, d, nil), Number: ch.Number}, nil
}

func (s *Service) createDevice(ctx context.Context, d *latchkey.Device, cred *latchkey.TOTPCredential) error {
	err := s.opt.Store.CreateDevice(ctx, d, cred)
	if latchkey.ErrorCode(err) == latchkey.EConflict {
		return latchkey.Errorf(latchkey.EConflict, "This key is registered already. Generate a new key on the device.")
	} else if err != nil {
		return fmt.Errorf("create device: %w", err)
	}
	return nil
}

func (s *Service) transfer(ctx context.Context, c Client, u *latchkey.User, a *latchkey.DeviceActivation, der []byte, name, platform string) (*deviceproto.ActivateResponse, error) {
	secret, err := totp.GenerateSecret()
	if err != nil {
		return nil, err
	}
	old, err := s.opt.Store.FindDevice(ctx, a.DeviceID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, errBadActivation
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	err = s.opt.Store.ReplaceDeviceKey(ctx, a.DeviceID, der, name, platform, secret, s.now())
	switch latchkey.ErrorCode(err) {
	case "":
	case latchkey.ENotFound:
		return nil, errBadActivation
	case latchkey.EConflict:
		return nil, latchkey.Errorf(latchkey.EConflict, "This key is registered already. Generate a new key on the device.")
	default:
		return nil, fmt.Errorf("replace device key: %w", err)
	}
	d, err := s.opt.Store.FindDevice(ctx, a.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceSwitched, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q moved to a new key as %q (%s)", d.ID, old.Name, name, platform))
	s.notify(ctx, c, u, mail.DeviceSwitched, name)
	s.opt.Hub.NotifyDevice(d.ID) // ends the old key's open stream at its next check
	return &deviceproto.ActivateResponse{DeviceInfo: s.info(u, d, secret)}, nil
}

// info describes a device to itself; secret, when not nil, is its offline seed.
func (s *Service) info(u *latchkey.User, d *latchkey.Device, secret []byte) deviceproto.DeviceInfo {
	state := deviceproto.StateActive
	if d.State == latchkey.DevicePending {
		state = deviceproto.StatePendingApproval
	}
	in := deviceproto.DeviceInfo{DeviceID: d.ID, State: state, Name: d.Name, Primary: d.Primary, Username: u.Username, Issuer: s.opt.Issuer, Server: s.opt.PublicURL, NumberLength: s.opt.NumberLength}
	if secret != nil {
		in.TOTP = &deviceproto.TOTPSeed{Secret: totp.Encode(secret), URI: totp.URI(s.opt.Issuer, u.Username, secret)}
	}
	return in
}

// ---- Device authentication ----------------------------------------------------------------

var errSignature = &latchkey.Error{Code: latchkey.EDeviceSignature, Message: "The device could not be authenticated. It may have been removed or moved to another device; activate it again."}

// Authenticate checks a signed device request (r, whose body was read as body): the
// signature by the device's current key, the timestamp, that the device's user is not
// disabled, and that the nonce is fresh (it is recorded). It returns the device and its user.
// Pending devices are returned too; callers decide what they may do.
func (s *Service) Authenticate(ctx context.Context, c Client, r *http.Request, body []byte) (*latchkey.Device, *latchkey.User, error) {
	d, u, n, err := s.AuthenticateDeferred(ctx, c, r, body)
	if err != nil {
		return nil, nil, err
	}
	if err := s.useNonce(ctx, c, d, n); err != nil {
		return nil, nil, err
	}
	return d, u, nil
}

// useNonce records the request nonce n of device d, refusing one used before (nonceRefused).
func (s *Service) useNonce(ctx context.Context, c Client, d *latchkey.Device, n *latchkey.RequestNonce) error {
	if err := s.opt.Store.UseDeviceNonce(ctx, n.DeviceID, n.Nonce, n.ExpiresAt, n.Now); err != nil {
		return s.nonceRefused(ctx, c, d, err)
	}
	return nil
}

// SignatureError is the answer to a device request whose signature deviceproto.Parse
// refused: EDeviceSignature, in words without the Go package's prefix.
func SignatureError(err error) error {
	return latchkey.Errorf(latchkey.EDeviceSignature, "%s", strings.TrimPrefix(err.Error(), "deviceproto: "))
}

// AuthenticateDeferred is Authenticate without recording the request's nonce, which it
// returns instead: the caller records it in the one transaction the request writes (Answer
// does), so that the request takes effect at most once and a push round trip makes one write
// fewer. A request that fails before its write does not use its nonce up, and changes
// nothing when replayed.
func (s *Service) AuthenticateDeferred(ctx context.Context, c Client, r *http.Request, body []byte) (*latchkey.Device, *latchkey.User, *latchkey.RequestNonce, error) {
	now := s.now()
	sig, err := deviceproto.Parse(r, body, now)
	if err != nil {
		return nil, nil, nil, SignatureError(err)
	}
	if sig.DeviceID == 0 {
		return nil, nil, nil, latchkey.Errorf(latchkey.EDeviceSignature, "The %s header is required.", deviceproto.HeaderDevice)
	}
	// Too many bad signatures from this address: refused before any read.
	if err := s.badSig.Check(c.IP, now); err != nil {
		return nil, nil, nil, err
	}
	// The device and its user in one read; the user is looked at only once the request is
	// proven.
	d, u, err := s.opt.Store.FindDeviceWithUser(ctx, sig.DeviceID)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, nil, nil, errSignature
	} else if err != nil {
		return nil, nil, nil, fmt.Errorf("find device: %w", err)
	}
	key, err := deviceproto.ParsePublicKeyDER(d.PublicKey)
	if err != nil || !sig.Verify(key) {
		// The failure's token is taken here, in one step with the check: of forged requests
		// sent at once, those past the limit are refused unaudited. (Taken before the work, a
		// token would be held by every request in flight, and a device's or a NAT's
		// concurrent good requests would be throttled.)
		if err := s.badSig.Take(c.IP, now); err != nil {
			return nil, nil, nil, err
		}
		s.audit(ctx, c, &latchkey.User{ID: d.UserID}, latchkey.ActionDeviceRefused, latchkey.OutcomeFailure, fmt.Sprintf("bad signature for device %d", d.ID))
		return nil, nil, nil, errSignature
	}
	if u.Disabled {
		return nil, nil, nil, errSignature
	}
	// A nonce is remembered for twice the allowed skew: any request old enough to be
	// forgotten is refused by its timestamp.
	return d, u, &latchkey.RequestNonce{DeviceID: d.ID, Nonce: sig.Nonce, ExpiresAt: now.Add(2 * deviceproto.MaxSkew), Now: now}, nil
}

// nonceRefused is the answer to a failure to record a request's nonce: for a nonce used
// before, the refusal audited; otherwise err.
func (s *Service) nonceRefused(ctx context.Context, c Client, d *latchkey.Device, err error) error {
	if errors.Is(err, latchkey.ErrNonceUsed) {
		s.audit(ctx, c, &latchkey.User{ID: d.UserID}, latchkey.ActionDeviceRefused, latchkey.OutcomeFailure, fmt.Sprintf("replayed request for device %d", d.ID))
		return latchkey.Errorf(latchkey.EDeviceSignature, "This request was sent before (replayed nonce).")
	}
	return fmt.Errorf("use nonce: %w", err)
}

// errPending is returned for anything a pending device may not do yet.
var errPending = &latchkey.Error{Code: latchkey.EForbidden, Message: "This device is waiting for approval from your other device."}

// Active returns errPending for a device that is not active.
func Active(d *latchkey.Device) error {
	if d.State != latchkey.DeviceActive {
		return errPending
	}
	return nil
}

// Info describes the calling device, with its offline seed when it is active.
func (s *Service) Info(ctx context.Context, u *latchkey.User, d *latchkey.Device) (*deviceproto.DeviceInfo, error) {
	var secret []byte
	if d.State == latchkey.DeviceActive {
		creds, err := s.opt.Store.FindTOTPCredentials(ctx, u.ID)
		if err != nil {
			return nil, fmt.Errorf("find totp credentials: %w", err)
		}
		for _, c := range creds {
			if c.ID == d.TOTPCredentialID {
				secret = c.Secret
			}
		}
	}
	in := s.info(u, d, secret)
	return &in, nil
}

// Devices lists the devices of the calling device's account.
func (s *Service) Devices(ctx context.Context, u *latchkey.User, self *latchkey.Device) (*deviceproto.DevicesResponse, error) {
	devs, err := s.opt.Store.FindDevices(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	out := &deviceproto.DevicesResponse{Devices: []deviceproto.DeviceSummary{}}
	for _, d := range devs {
		state := deviceproto.StateActive
		if d.State == latchkey.DevicePending {
			state = deviceproto.StatePendingApproval
		}
		out.Devices = append(out.Devices, deviceproto.DeviceSummary{ID: d.ID, Name: d.Name, Platform: d.Platform, State: state, Primary: d.Primary, This: self != nil && d.ID == self.ID, CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt})
	}
	return out, nil
}

// ---- Challenges ----------------------------------------------------------------------------

// newNumber returns a uniformly random number of n digits without a leading zero.
func (s *Service) newNumber(n int) (string, error) {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	span := new(big.Int).Sub(new(big.Int).Mul(lo, big.NewInt(10)), lo)
	v, err := rand.Int(s.opt.Rand, span)
	if err != nil {
		return "", err
	}
	return v.Add(v, lo).String(), nil
}

func (s *Service) newChallenge(ctx context.Context, u *latchkey.User, d *latchkey.Device, kind, sessionID string, c Client, app string) (*latchkey.PushChallenge, error) {
	idb := make([]byte, 16)
	if _, err := io.ReadFull(s.opt.Rand, idb); err != nil {
		return nil, err
	}
	num, err := s.newNumber(s.opt.NumberLength)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return &latchkey.PushChallenge{
		ID: hex.EncodeToString(idb), UserID: u.ID, DeviceID: d.ID, Kind: kind, SessionID: sessionID,
		Number: num, Application: app, Browser: Browser(c.UserAgent), IP: c.IP,
		CreatedAt: now, ExpiresAt: now.Add(s.opt.ChallengeTTL), State: latchkey.PushPending,
	}, nil
}

// SendLogin sends a sign-in challenge for the flow sessionID to the user's primary device, or
// to deviceID when it is not 0. It refuses while pushes to the account are paused after a
// fraud report, and after MaxPushes pushes since the last successful sign-in.
func (s *Service) SendLogin(ctx context.Context, u *latchkey.User, sessionID string, deviceID int64, ip, userAgent, app string) (*latchkey.PushChallenge, error) {
	c := Client{IP: ip, UserAgent: userAgent}
	now := s.now()
	if err := s.pushAllowed(ctx, c, u, signInOther); err != nil {
		return nil, err
	}
	devs, err := s.opt.Store.FindDevices(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	var target *latchkey.Device
	for _, d := range devs {
		if d.State != latchkey.DeviceActive {
			continue
		}
		if (deviceID == 0 && d.Primary) || d.ID == deviceID || (deviceID == 0 && target == nil) {
			target = d
		}
	}
	if target == nil {
		return nil, latchkey.Errorf(latchkey.EInvalid, "You have no authenticator device that can approve this sign-in. Use another method.")
	}
	ch, err := s.newChallenge(ctx, u, target, latchkey.PushLogin, sessionID, c, app)
	if err != nil {
		return nil, err
	}
	// The push's count, the challenge and its audit entry are one write.
	sent := &latchkey.AuditEvent{Time: now, UserID: u.ID, Username: u.Username, Action: latchkey.ActionPushSent,
		Outcome: latchkey.OutcomeSuccess, IP: c.IP, UserAgent: c.UserAgent, Detail: fmt.Sprintf("to device %d", target.ID)}
	if err := s.opt.Store.SendPushChallenge(ctx, ch, latchkey.ThrottleKeyPush(u.Username), s.opt.MaxPushes, sent); err != nil {
		if latchkey.ErrorCode(err) == latchkey.EThrottled {
			return nil, s.capReached(ctx, c, u, signInOther)
		}
		return nil, fmt.Errorf("create challenge: %w", err)
	}
	s.opt.Hub.NotifyDevice(target.ID)
	return ch, nil
}

// pushAllowed refuses (EThrottled, audited) a push to the user's devices while pushes are
// paused after a fraud report, and after MaxPushes pushes since the last successful sign-in.
// Sign-in requests and new devices' approval requests both count: either can be sent by
// someone who has the password, to a user who did not ask. instead says what to do.
func (s *Service) pushAllowed(ctx context.Context, c Client, u *latchkey.User, instead string) error {
	now := s.now()
	// The fraud pause and the count of pushes since the last sign-in, in one read.
	ths, err := s.opt.Store.FindThrottles(ctx, latchkey.ThrottleKeyPushPause(u.Username), latchkey.ThrottleKeyPush(u.Username))
	if err != nil {
		return fmt.Errorf("find throttles: %w", err)
	}
	pause, count := ths[0], ths[1]
	if until := pause.LastFailureAt.Add(s.opt.FraudPause); pause.Failures > 0 && now.Before(until) {
		s.audit(ctx, c, u, latchkey.ActionPushRefused, latchkey.OutcomeDenied, "paused after a fraud report")
		return &latchkey.Error{Code: latchkey.EThrottled, RetryAfter: until.Sub(now),
			Message: "Requests to your devices are paused because one was recently reported as not made by you. " + instead + " Or contact your support desk."}
	}
	if count.Failures >= s.opt.MaxPushes {
		return s.capReached(ctx, c, u, instead)
	}
	return nil
}

// capReached audits and returns the refusal of a push past MaxPushes since the last
// successful sign-in: found by pushAllowed's read, or by the count in the push's own
// transaction when pushes were sent at once (SendPushChallenge's limit).
func (s *Service) capReached(ctx context.Context, c Client, u *latchkey.User, instead string) error {
	s.audit(ctx, c, u, latchkey.ActionPushRefused, latchkey.OutcomeDenied, fmt.Sprintf("%d pushes since the last sign-in", s.opt.MaxPushes))
	return &latchkey.Error{Code: latchkey.EThrottled, RetryAfter: s.opt.ChallengeTTL,
		Message: "Too many requests were sent to your device since your last sign-in. " + instead}
}

// Pending returns the challenges waiting for the device's answer, as the device sees them.
// Only while d is active and holds the key it was read with: otherwise (removed, or moved to
// another key meanwhile) errSignature, as for its next request.
func (s *Service) Pending(ctx context.Context, u *latchkey.User, d *latchkey.Device) ([]deviceproto.Challenge, error) {
	chs, err := s.opt.Store.DevicePushChallenges(ctx, d.ID, d.PublicKey, s.now())
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, errSignature
	} else if err != nil {
		return nil, fmt.Errorf("pending challenges: %w", err)
	}
	out := make([]deviceproto.Challenge, 0, len(chs))
	for _, ch := range chs {
		wc := deviceproto.Challenge{ID: ch.ID, Kind: ch.Kind, Username: u.Username, Application: ch.Application, Browser: ch.Browser, IP: ch.IP, Time: ch.CreatedAt, ExpiresAt: ch.ExpiresAt, NumberLength: len(ch.Number)}
		if ch.Kind == latchkey.PushAddDevice {
			if sub, err := s.opt.Store.FindDevice(ctx, ch.SubjectDeviceID); err == nil {
				wc.DeviceName = sub.Name
			}
		}
		out = append(out, wc)
	}
	return out, nil
}

// Answer records the device's answer to a challenge. A wrong number denies the challenge and
// counts as a failed sign-in; "fraud" denies, pauses pushes, and alerts the user and admins.
// nonce, when not nil, is the request's nonce from AuthenticateDeferred: it is recorded with
// the answer, or with the refusal's audit entry of an answer for another device, and a nonce
// used before refuses the request as Authenticate does.
func (s *Service) Answer(ctx context.Context, c Client, u *latchkey.User, d *latchkey.Device, id string, req deviceproto.AnswerRequest, nonce *latchkey.RequestNonce) (*deviceproto.AnswerResponse, error) {
	switch req.Decision {
	case deviceproto.DecisionApprove:
		if req.Number == "" {
			return nil, latchkey.Errorf(latchkey.EInvalid, "Type the number shown in your browser to approve.")
		}
	case deviceproto.DecisionDeny, deviceproto.DecisionFraud:
	default:
		return nil, latchkey.Errorf(latchkey.EInvalid, "decision must be %q, %q or %q.", deviceproto.DecisionApprove, deviceproto.DecisionDeny, deviceproto.DecisionFraud)
	}
	ch, err := s.opt.Store.FindPushChallenge(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, latchkey.Errorf(latchkey.ENotFound, "There is no such sign-in request.")
	} else if err != nil {
		return nil, fmt.Errorf("find challenge: %w", err)
	}
	if ch.DeviceID != d.ID || ch.UserID != u.ID {
		if nonce != nil {
			if err := s.useNonce(ctx, c, d, nonce); err != nil {
				return nil, err
			}
		}
		s.audit(ctx, c, u, latchkey.ActionDeviceRefused, latchkey.OutcomeDenied, fmt.Sprintf("device %d answered a challenge for device %d", d.ID, ch.DeviceID))
		return nil, latchkey.Errorf(latchkey.EForbidden, "This sign-in request was sent to another device.")
	}
	now := s.now()
	state, reason := latchkey.PushDenied, latchkey.DenyUser
	switch {
	case req.Decision == deviceproto.DecisionFraud:
		reason = latchkey.DenyFraud
	case req.Decision == deviceproto.DecisionApprove && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(req.Number)), []byte(ch.Number)) == 1:
		state, reason = latchkey.PushApproved, ""
	case req.Decision == deviceproto.DecisionApprove:
		reason = latchkey.DenyWrongNumber
	}
	what := "sign-in"
	if ch.Kind == latchkey.PushAddDevice {
		what = "new device"
	}
	// The request's nonce, the answer, the device's last use, the failure it counts and its
	// audit entry are one write.
	ans := &latchkey.PushAnswer{ID: id, State: state, Reason: reason, At: now, DeviceID: d.ID, Nonce: nonce}
	action, outcome, detail := latchkey.ActionPushDenied, latchkey.OutcomeDenied, fmt.Sprintf("%s denied on device %d", what, d.ID)
	switch reason {
	case "":
		action, outcome, detail = latchkey.ActionPushApproved, latchkey.OutcomeSuccess, fmt.Sprintf("%s approved on device %d", what, d.ID)
	case latchkey.DenyWrongNumber:
		ans.CountKey = latchkey.ThrottleKeyUser(u.Username)
		outcome, detail = latchkey.OutcomeFailure, fmt.Sprintf("%s: wrong number on device %d", what, d.ID)
	case latchkey.DenyFraud:
		ans.CountKey = latchkey.ThrottleKeyPushPause(u.Username)
		ans.DenyOthersOf = u.ID // the reported attempt's other pushes must not be approvable
		action, detail = latchkey.ActionPushFraud, fmt.Sprintf("%s from %s reported as fraud on device %d; pushes paused for %v", what, ch.IP, d.ID, s.opt.FraudPause)
	}
	ans.Audit = &latchkey.AuditEvent{Time: now, UserID: u.ID, Username: u.Username, Action: action,
		Outcome: outcome, IP: c.IP, UserAgent: c.UserAgent, Detail: detail}
	err = s.opt.Store.AnswerPushChallenge(ctx, ans)
	if errors.Is(err, latchkey.ErrNonceUsed) {
		return nil, s.nonceRefused(ctx, c, d, err)
	}
	switch latchkey.ErrorCode(err) {
	case "":
	case latchkey.EConflict:
		return nil, latchkey.Errorf(latchkey.EConflict, "This sign-in request was answered already.")
	case latchkey.EFlowExpired:
		return nil, latchkey.Errorf(latchkey.EExpired, "This sign-in request has expired.")
	case latchkey.ENotFound:
		return nil, latchkey.Errorf(latchkey.ENotFound, "There is no such sign-in request.")
	default:
		return nil, fmt.Errorf("answer challenge: %w", err)
	}
	s.opt.Hub.NotifyChallenge(id)
	for _, other := range ans.DeniedOthers {
		s.opt.Hub.NotifyChallenge(other)
	}
	from := Client{IP: ch.IP, UserAgent: ch.Browser}
	switch {
	case reason == "" && ch.Kind == latchkey.PushAddDevice:
		if err := s.approveDevice(ctx, from, u, ch.SubjectDeviceID); err != nil {
			return nil, err
		}
	case ch.Kind == latchkey.PushAddDevice:
		// Denied (or the wrong number): the new device is refused for good. It is removed,
		// and its app, which waits for the answer, learns it at once (401) instead of
		// waiting out its timeout beside a device listed as pending for ever.
		s.refuseDevice(ctx, from, u, ch.SubjectDeviceID, d.ID)
	}
	if reason == latchkey.DenyFraud {
		s.notify(ctx, from, u, mail.PushFraud, d.Name)
		s.alertAdmins(ctx, from, u, d)
	}
	return &deviceproto.AnswerResponse{State: string(state), Reason: reason}, nil
}

// refuseDevice removes the pending device id, which device by refused. The answer is
// recorded already: a failure here is logged, and the device stays pending, unable to do
// anything, until the user removes it.
func (s *Service) refuseDevice(ctx context.Context, c Client, u *latchkey.User, id, by int64) {
	sub, err := s.opt.Store.FindDevice(ctx, id)
	if err != nil || sub.State != latchkey.DevicePending {
		return
	}
	if err := s.opt.Store.DeleteDevice(ctx, u.ID, id, false); err != nil {
		if latchkey.ErrorCode(err) != latchkey.ENotFound {
			s.log.ErrorContext(ctx, "remove refused device", "device_id", id, "err", err)
		}
		return
	}
	s.opt.Hub.NotifyDevice(id)
	s.audit(ctx, c, u, latchkey.ActionDeviceRemoved, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q refused by device %d", id, sub.Name, by))
}

func (s *Service) approveDevice(ctx context.Context, c Client, u *latchkey.User, id int64) error {
	sub, err := s.opt.Store.FindDevice(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return latchkey.Errorf(latchkey.ENotFound, "The new device was removed in the meantime.")
	} else if err != nil {
		return fmt.Errorf("find device: %w", err)
	}
	secret, err := totp.GenerateSecret()
	if err != nil {
		return err
	}
	cred := &latchkey.TOTPCredential{UserID: u.ID, Name: sub.Name, Secret: secret}
	if err := s.opt.Store.ActivateDevice(ctx, id, cred, s.now()); err != nil {
		return fmt.Errorf("activate device: %w", err)
	}
	// The user answered on their device with the right number, as for a sign-in: the count
	// of pushes since the last success starts again.
	if err := s.opt.Store.ResetThrottle(ctx, latchkey.ThrottleKeyPush(u.Username)); err != nil {
		s.log.ErrorContext(ctx, "reset push count", "err", err)
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceAdded, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q (%s), approved by an existing device", sub.ID, sub.Name, sub.Platform))
	s.notify(ctx, c, u, mail.DeviceAdded, sub.Name)
	s.opt.Hub.NotifyDevice(id)
	return nil
}

func (s *Service) alertAdmins(ctx context.Context, c Client, u *latchkey.User, d *latchkey.Device) {
	role := latchkey.RoleAdmin
	admins, _, err := s.opt.Store.FindUsers(ctx, latchkey.UserFilter{Role: &role, Limit: 50})
	if err != nil {
		s.log.ErrorContext(ctx, "find admins", "err", err)
		return
	}
	for _, a := range admins {
		if a.Disabled || a.ID == u.ID {
			continue
		}
		m, err := mail.PushFraudAdmin(a.Email, mail.Data{Username: a.Username, Account: u.Username, DeviceName: d.Name, Time: s.now(), IP: c.IP, UserAgent: c.UserAgent, PublicURL: s.opt.PublicURL})
		if err == nil {
			err = s.opt.Mailer.Send(ctx, m)
		}
		if err != nil {
			s.log.ErrorContext(ctx, "send admin alert", "admin_id", a.ID, "err", err)
		}
	}
}

// CreateTransfer gives the calling device a one-time transfer code (switch device).
func (s *Service) CreateTransfer(ctx context.Context, c Client, u *latchkey.User, d *latchkey.Device) (*deviceproto.TransferResponse, error) {
	if err := Active(d); err != nil {
		return nil, err
	}
	code, err := deviceproto.NewCode(s.opt.Rand)
	if err != nil {
		return nil, err
	}
	norm, _ := deviceproto.NormalizeCode(code)
	now := s.now()
	a := &latchkey.DeviceActivation{ID: s.codeHash(latchkey.ActivationTransfer, norm), UserID: u.ID, Kind: latchkey.ActivationTransfer, DeviceID: d.ID, CreatedAt: now, ExpiresAt: now.Add(s.opt.TransferTTL)}
	if err := s.opt.Store.CreateDeviceActivation(ctx, a); err != nil {
		return nil, fmt.Errorf("create transfer: %w", err)
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceTransfer, latchkey.OutcomeSuccess, fmt.Sprintf("device %d", d.ID))
	return &deviceproto.TransferResponse{Code: code, URI: deviceproto.FormatURI(deviceproto.KindTransfer, s.opt.PublicURL, code), ExpiresAt: a.ExpiresAt}, nil
}

// ---- The user's devices -----------------------------------------------------------------

// UserDevices lists a user's devices for the Security page.
func (s *Service) UserDevices(ctx context.Context, u *latchkey.User) ([]*latchkey.Device, error) {
	devs, err := s.opt.Store.FindDevices(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	return devs, nil
}

// Rename renames a device of the user.
func (s *Service) Rename(ctx context.Context, c Client, u *latchkey.User, id int64, name string) error {
	name, err := checkName(name)
	if err != nil {
		return err
	}
	if err := s.opt.Store.UpdateDevice(ctx, u.ID, id, latchkey.DeviceUpdate{Name: &name}); err != nil {
		return deviceErr(err)
	}
	s.audit(ctx, c, u, latchkey.ActionDeviceRenamed, latchkey.OutcomeSuccess, fmt.Sprintf("device %d to %q", id, name))
	return nil
}

// MakePrimary makes an active device of the user the primary one.
func (s *Service) MakePrimary(ctx context.Context, c Client, u *latchkey.User, id int64) error {
	d, err := s.opt.Store.FindDevice(ctx, id)
	if err != nil || d.UserID != u.ID {
		return deviceErr(latchkey.Errorf(latchkey.ENotFound, "not found"))
	}
	if d.State != latchkey.DeviceActive {
		return latchkey.Errorf(latchkey.EInvalid, "A device waiting for approval cannot be primary.")
	}
	if err := s.opt.Store.UpdateDevice(ctx, u.ID, id, latchkey.DeviceUpdate{Primary: true}); err != nil {
		return deviceErr(err)
	}
	s.audit(ctx, c, u, latchkey.ActionDevicePrimary, latchkey.OutcomeSuccess, fmt.Sprintf("device %d", id))
	return nil
}

// WakeDevice wakes the device's open event streams here and on the other nodes (the relays):
// each reads the device again and ends when it is no longer active. For callers that delete
// devices without Remove (an MFA reset, the support desk removing one).
func (s *Service) WakeDevice(id int64) { s.opt.Hub.NotifyDevice(id) }

// Remove deletes a device of the user: its key, its offline seed and its pending challenges.
// The caller checks recent re-authentication first. With keepOne (mfa: required) the user's
// last factor stays: ErrLastFactor, decided with the removal.
func (s *Service) Remove(ctx context.Context, c Client, u *latchkey.User, id int64, keepOne bool) error {
	d, err := s.opt.Store.FindDevice(ctx, id)
	if err != nil || d.UserID != u.ID {
		return deviceErr(latchkey.Errorf(latchkey.ENotFound, "not found"))
	}
	if err := s.opt.Store.DeleteDevice(ctx, u.ID, id, keepOne); err != nil {
		return deviceErr(err)
	}
	s.opt.Hub.NotifyDevice(id)
	s.audit(ctx, c, u, latchkey.ActionDeviceRemoved, latchkey.OutcomeSuccess, fmt.Sprintf("device %d %q", id, d.Name))
	s.notify(ctx, c, u, mail.DeviceRemoved, d.Name)
	return nil
}

func deviceErr(err error) error {
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return latchkey.Errorf(latchkey.ENotFound, "There is no such device on your account.")
	}
	return fmt.Errorf("device: %w", err)
}

// Browser describes a User-Agent for people: "Chrome on Linux". It is shown in the app so the
// user can tell their own sign-in from someone else's.
func Browser(ua string) string {
	if ua == "" {
		return "Unknown browser"
	}
	browser := "Unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Chrome (headless)"},
		{"Chromium/", "Chromium"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"curl/", "curl"}, {"Go-http-client/", "Go HTTP client"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ token, name string }{
		{"Windows", "Windows"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"}, {"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			os = o.name
			break
		}
	}
	if os == "" {
		return browser
	}
	return browser + " on " + os
}
