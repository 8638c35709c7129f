package login

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
)

// Workday is a local time of day ("19:00") at which a second-factor proof ends. The zero
// Workday means no workday rule: a proof stands for the maximum age.
type Workday struct {
	set          bool
	hour, minute int
}

// ParseWorkday parses "HH:MM" (24-hour). "" gives the zero Workday (no workday rule).
func ParseWorkday(s string) (Workday, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Workday{}, nil
	}
	hs, ms, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if !ok || err1 != nil || err2 != nil || len(ms) != 2 || h < 0 || h > 23 || m < 0 || m > 59 {
		return Workday{}, fmt.Errorf("workday end %q: want a local time like 19:00", s)
	}
	return Workday{set: true, hour: h, minute: m}, nil
}

// IsZero reports whether w is the zero Workday (no workday rule).
func (w Workday) IsZero() bool { return !w.set }

// String returns "HH:MM", or "" for the zero Workday.
func (w Workday) String() string {
	if !w.set {
		return ""
	}
	return fmt.Sprintf("%02d:%02d", w.hour, w.minute)
}

// ValidTimeZone reports whether name is an IANA time zone name the server knows ("UTC",
// "Europe/Madrid"). "" and "Local" are refused: a user's zone is always explicit.
func ValidTimeZone(name string) bool {
	if name == "" || name == "Local" || strings.ContainsAny(name, " \t\r\n") || len(name) > 64 {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// Location returns the time zone of u: the user's own, else the server's default.
func (s *Service) Location(u *latchkey.User) *time.Location {
	if u != nil && u.TimeZone != "" {
		if loc, err := time.LoadLocation(u.TimeZone); err == nil {
			return loc
		}
	}
	return s.opt.TimeZone
}

// mfaEnd returns when a second-factor proof given at t by u ends: the next workday end after
// t in the user's time zone, and never later than MaxAge after t. Computed with time.Date in
// the location, so a day with a daylight-saving change ends at the right wall-clock time.
func (s *Service) mfaEnd(u *latchkey.User, t time.Time) time.Time {
	end := t.Add(s.opt.MaxAge)
	if w := s.opt.WorkdayEnd; w.set {
		lt := t.In(s.Location(u))
		day := time.Date(lt.Year(), lt.Month(), lt.Day(), w.hour, w.minute, 0, 0, lt.Location())
		if !day.After(t) {
			day = time.Date(lt.Year(), lt.Month(), lt.Day()+1, w.hour, w.minute, 0, 0, lt.Location())
		}
		if day.Before(end) {
			end = day
		}
	}
	return end.UTC()
}

// hasMFA reports whether a session holds a second-factor proof.
func hasMFA(sess *latchkey.Session) bool {
	return sess.MFAAt != nil && slices.Contains(sess.AMR, latchkey.AMRMFA)
}

// remembered returns the session of oldToken when it holds a second-factor proof of user u
// that still stands at now: it went idle (or the user signs in again while signed in), but
// its workday is not over. The password alone then signs the user in again.
func (s *Service) remembered(ctx context.Context, oldToken string, u *latchkey.User, now time.Time) *latchkey.Session {
	if oldToken == "" {
		return nil
	}
	old, err := s.findSessionOnly(ctx, oldToken)
	if err != nil {
		return nil
	}
	if old.State != latchkey.StateAuthenticated || old.UserID != u.ID || !hasMFA(old) || !now.Before(old.ExpiresAt) {
		return nil
	}
	return old
}

// newSID returns a public session ID: 128 random bits, hex.
func (s *Service) newSID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.opt.Rand, b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// SessionInfo describes a signed-in session of the user for the Security page and the API.
type SessionInfo struct {
	*latchkey.Session
	// Current is true for the session making the request.
	Current bool
	// Idle is true when the session saw no request for the inactivity timeout: it no longer
	// counts as signed in, but its second-factor proof still stands until ExpiresAt.
	Idle bool
}

// Expiry describes when the session sess ends, for "Signed in until …".
type Expiry struct {
	// Until is the absolute end of the session.
	Until time.Time
	// Workday is true when Until is the user's workday end (not the maximum age).
	Workday bool
	// IdleTimeout is the inactivity timeout.
	IdleTimeout time.Duration
	// Location is the user's time zone.
	Location *time.Location
}

// Expiry returns when sess of u ends and why.
func (s *Service) Expiry(sess *latchkey.Session, u *latchkey.User) Expiry {
	e := Expiry{Until: sess.ExpiresAt, IdleTimeout: s.opt.IdleTimeout, Location: s.Location(u)}
	if hasMFA(sess) && s.opt.WorkdayEnd.set {
		e.Workday = sess.ExpiresAt.Before(sess.MFAAt.Add(s.opt.MaxAge))
	}
	return e
}

// Sessions lists the signed-in sessions of u, the one of current first marked Current.
func (s *Service) Sessions(ctx context.Context, u *latchkey.User, current *latchkey.Session) ([]SessionInfo, error) {
	now := s.now()
	list, err := s.opt.Store.FindUserSessions(ctx, u.ID, now)
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	out := make([]SessionInfo, 0, len(list))
	for _, sess := range list {
		idle := now.Sub(sess.LastSeenAt) >= s.opt.IdleTimeout
		if idle && !hasMFA(sess) {
			continue // gone as soon as it is next seen: nothing of it is remembered
		}
		out = append(out, SessionInfo{Session: sess, Current: current != nil && sess.ID == current.ID, Idle: idle})
	}
	slices.SortStableFunc(out, func(a, b SessionInfo) int {
		switch {
		case a.Current == b.Current:
			return 0
		case a.Current:
			return -1
		}
		return 1
	})
	return out, nil
}

// RevokeSession ends the session of u whose public ID is sid. ENotFound when u has no such
// session. It returns the ended session, so that the caller can end what depends on it (the
// OIDC provider's tokens and back-channel logout).
func (s *Service) RevokeSession(ctx context.Context, c Client, u *latchkey.User, sid string) (*latchkey.Session, error) {
	sess, err := s.opt.Store.FindSessionBySID(ctx, sid)
	if latchkey.ErrorCode(err) == latchkey.ENotFound || (err == nil && sess.UserID != u.ID) {
		return nil, latchkey.Errorf(latchkey.ENotFound, "This session has ended already.")
	} else if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	if err := s.opt.Store.DeleteSession(ctx, sess.ID); err != nil {
		return nil, fmt.Errorf("delete session: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionSessionRevoked, latchkey.OutcomeSuccess, "session "+sid)
	return sess, nil
}

// RevokeAllSessions ends every session of u, the caller's own included, and returns the
// signed-in ones it ended. The caller ends the account for the applications too
// (oidc.Provider.EndAllSessions): it does not go through the SessionsEnded hook.
func (s *Service) RevokeAllSessions(ctx context.Context, c Client, u *latchkey.User) ([]*latchkey.Session, error) {
	list, err := s.opt.Store.FindUserSessions(ctx, u.ID, s.now())
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	if err := s.opt.Store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
		return nil, fmt.Errorf("delete sessions: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionSessionsRevokedAll, latchkey.OutcomeSuccess, fmt.Sprintf("%d sessions", len(list)))
	return list, nil
}

// SetTimeZone sets the time zone of u (an IANA name). Sessions already signed in keep the end
// they were given; the next second-factor proof ends at the workday end in the new zone.
func (s *Service) SetTimeZone(ctx context.Context, c Client, u *latchkey.User, name string) (*latchkey.User, error) {
	name = strings.TrimSpace(name)
	if !ValidTimeZone(name) {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Choose a time zone from the list.")
	}
	nu, err := s.opt.Store.UpdateUser(ctx, u.ID, latchkey.UserUpdate{TimeZone: &name})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	s.audit(ctx, c, u, "", latchkey.ActionTimeZoneChanged, latchkey.OutcomeSuccess, name)
	return nu, nil
}
