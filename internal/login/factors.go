package login

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// Factor kinds, as they appear in a Factor's Kind and reference.
const (
	KindTOTP   = "totp"     // an authenticator app (a standalone TOTP credential)
	KindDevice = "device"   // a Latch device (push and offline codes)
	KindKey    = "webauthn" // a security key or passkey
)

// Factor is one row of the Security page: any second factor, with what the user needs to
// tell it from the others.
type Factor struct {
	// Ref identifies the factor across kinds: "totp:3", "device:7", "webauthn:12".
	Ref  string `json:"id"`
	Kind string `json:"kind"`
	ID   int64  `json:"-"`
	Name string `json:"name"`
	// Type is the kind in words ("Authenticator app", "Latch app · linux", "Security key").
	Type       string     `json:"type"`
	AddedAt    time.Time  `json:"added_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// Primary marks the factor offered first at sign-in (for Latch, the device pushes go to).
	Primary bool `json:"primary"`
	// Pending is a Latch device waiting for approval from another device.
	Pending bool `json:"pending,omitempty"`
	// Passkey and CloneWarning describe security keys.
	Passkey      bool `json:"passkey,omitempty"`
	CloneWarning bool `json:"clone_warning,omitempty"`
}

// ParseFactorRef splits "kind:id".
func ParseFactorRef(ref string) (kind string, id int64, err error) {
	kind, n, ok := strings.Cut(ref, ":")
	if ok {
		id, err = strconv.ParseInt(n, 10, 64)
	}
	if !ok || err != nil || id <= 0 || (kind != KindTOTP && kind != KindDevice && kind != KindKey) {
		return "", 0, latchkey.Errorf(latchkey.EInvalid, "The factor must look like totp:ID, device:ID or webauthn:ID.")
	}
	return kind, id, nil
}

// Factors lists every second factor of the user in one list: the primary first, then
// authenticator apps, Latch devices and security keys, oldest first within each kind.
func (s *Service) Factors(ctx context.Context, u *latchkey.User) ([]Factor, error) {
	l, err := s.readFactors(ctx, u)
	if err != nil {
		return nil, err
	}
	return l.factors(u), nil
}

// factorLists are the rows a user's second factors are made of, each read once: the
// Security page's list (factors) and the methods of a sign-in (Service.methods) are both
// made from them.
type factorLists struct {
	creds []*latchkey.TOTPCredential
	devs  []*latchkey.Device             // nil without push
	keys  []*latchkey.WebAuthnCredential // nil without security keys
}

// readFactors reads the user's TOTP credentials, Latch devices (with push) and security keys
// (when they are on).
func (s *Service) readFactors(ctx context.Context, u *latchkey.User) (factorLists, error) {
	var l factorLists
	var err error
	if l.creds, err = s.opt.Store.FindTOTPCredentials(ctx, u.ID); err != nil {
		return l, fmt.Errorf("find totp credentials: %w", err)
	}
	if s.opt.Pusher != nil {
		if l.devs, err = s.opt.Store.FindDevices(ctx, u.ID); err != nil {
			return l, fmt.Errorf("find devices: %w", err)
		}
	}
	if s.wa != nil {
		if l.keys, err = s.opt.Store.FindWebAuthnCredentials(ctx, u.ID); err != nil {
			return l, fmt.Errorf("find security keys: %w", err)
		}
	}
	return l, nil
}

// factors is Factors of the lists l read.
func (l factorLists) factors(u *latchkey.User) []Factor {
	var out []Factor
	for _, c := range l.creds {
		if c.Confirmed() && c.DeviceID == 0 {
			out = append(out, Factor{Ref: ref(KindTOTP, c.ID), Kind: KindTOTP, ID: c.ID, Name: c.Name, Type: "Authenticator app", AddedAt: *c.ConfirmedAt, LastUsedAt: c.LastUsedAt})
		}
	}
	primaryDevice := int64(0)
	for _, d := range l.devs {
		if d.Primary && d.State == latchkey.DeviceActive {
			primaryDevice = d.ID
		}
		if d.State != latchkey.DeviceActive && d.State != latchkey.DevicePending {
			continue
		}
		typ := "Latch app"
		if d.Platform != "" {
			typ += " · " + d.Platform
		}
		out = append(out, Factor{Ref: ref(KindDevice, d.ID), Kind: KindDevice, ID: d.ID, Name: d.Name, Type: typ, AddedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt, Pending: d.State == latchkey.DevicePending})
	}
	for _, k := range l.keys {
		typ := "Security key"
		if k.Discoverable {
			typ = "Passkey"
		}
		out = append(out, Factor{Ref: ref(KindKey, k.ID), Kind: KindKey, ID: k.ID, Name: k.Name, Type: typ, AddedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, Passkey: k.Discoverable, CloneWarning: k.CloneWarning})
	}
	if i := primaryIndex(out, u.PrimaryFactor, primaryDevice); i >= 0 {
		out[i].Primary = true
		p := out[i]
		out = append([]Factor{p}, slices.Delete(out, i, i+1)...)
	}
	return out
}

func ref(kind string, id int64) string { return kind + ":" + strconv.FormatInt(id, 10) }

// primaryIndex finds the primary factor in list: the one the user chose when it still
// exists, else the first of the default order (the primary Latch device, the authenticator
// app, the oldest key).
func primaryIndex(list []Factor, chosen string, primaryDevice int64) int {
	find := func(pred func(Factor) bool) int { return slices.IndexFunc(list, pred) }
	device := func(f Factor) bool { return f.Kind == KindDevice && f.ID == primaryDevice }
	switch {
	case chosen == latchkey.FactorPush && primaryDevice != 0:
		return find(device)
	case chosen == latchkey.FactorTOTP:
		if i := find(func(f Factor) bool { return f.Kind == KindTOTP }); i >= 0 {
			return i
		}
	case strings.HasPrefix(chosen, latchkey.FactorKeyPrefix):
		if i := find(func(f Factor) bool {
			return f.Kind == KindKey && latchkey.FactorKeyPrefix+strconv.FormatInt(f.ID, 10) == chosen
		}); i >= 0 {
			return i
		}
	}
	if primaryDevice != 0 {
		return find(device)
	}
	return find(func(f Factor) bool { return !f.Pending })
}

// primaryMethod is the sign-in method of the user's primary factor among fs (Factors), ""
// when there is none.
func primaryMethod(fs []Factor) string {
	if len(fs) == 0 || !fs[0].Primary {
		return ""
	}
	switch fs[0].Kind {
	case KindDevice:
		return latchkey.MethodPush
	case KindKey:
		return latchkey.MethodWebAuthn
	}
	return latchkey.MethodTOTP
}

// SetPrimaryFactor makes the factor ref ("totp:3", "device:7", "webauthn:12") the one offered
// first at sign-in. A Latch device is made primary through the push service (it decides where
// pushes go); this records the choice of push over the other kinds. The caller has checked the
// device belongs to the user and made it primary already.
func (s *Service) SetPrimaryFactor(ctx context.Context, c Client, u *latchkey.User, factorRef string) error {
	kind, id, err := ParseFactorRef(factorRef)
	if err != nil {
		return err
	}
	fs, err := s.Factors(ctx, u)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(fs, func(f Factor) bool { return f.Kind == kind && f.ID == id })
	if i < 0 {
		return latchkey.Errorf(latchkey.ENotFound, "You have no such sign-in method.")
	}
	if fs[i].Pending {
		return latchkey.Errorf(latchkey.EConflict, "This device is still waiting for approval.")
	}
	value := latchkey.FactorTOTP
	switch kind {
	case KindDevice:
		value = latchkey.FactorPush
	case KindKey:
		value = latchkey.FactorKeyPrefix + strconv.FormatInt(id, 10)
	}
	if _, err := s.opt.Store.UpdateUser(ctx, u.ID, latchkey.UserUpdate{PrimaryFactor: &value}); err != nil {
		return err
	}
	u.PrimaryFactor = value
	s.audit(ctx, c, u, "", latchkey.ActionMFAPrimary, latchkey.OutcomeSuccess, factorRef)
	return nil
}

// RenameTOTP renames the user's authenticator app.
func (s *Service) RenameTOTP(ctx context.Context, c Client, u *latchkey.User, id int64, name string) error {
	name, err := ValidKeyName(name)
	if err != nil {
		return err
	}
	if err := s.opt.Store.RenameTOTPCredential(ctx, u.ID, id, name); err != nil {
		return err
	}
	s.audit(ctx, c, u, "", latchkey.ActionTOTPRenamed, latchkey.OutcomeSuccess, fmt.Sprintf("app %d", id))
	return nil
}
