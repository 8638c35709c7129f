package login

import (
	"context"
	"fmt"

	"github.com/latchkey/latchkey"
)

// Pusher sends a sign-in push challenge for the flow sessionID to the user's primary Latch
// device (or to deviceID when not 0). internal/push implements it; it refuses while pushes
// are paused or capped.
type Pusher interface {
	SendLogin(ctx context.Context, u *latchkey.User, sessionID string, deviceID int64, ip, userAgent, app string) (*latchkey.PushChallenge, error)
	// WakeDevice wakes the open event streams of a device on every node: they read the
	// database again, and end when the device is gone.
	WakeDevice(id int64)
}

var errNoChallenge = &latchkey.Error{Code: latchkey.ENotFound, Message: "There is no such sign-in request for this browser."}

// BeginPush sends a push to approve the second step of the sign-in of token and returns the
// challenge; its Number is what the browser shows.
func (s *Service) BeginPush(ctx context.Context, c Client, token string, deviceID int64, app string) (*latchkey.PushChallenge, error) {
	if s.opt.Pusher == nil {
		return nil, latchkey.Errorf(latchkey.EInvalid, "Push approval is not available. Use another method.")
	}
	sess, u, err := s.flow(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := s.checkAccount(ctx, c, u, latchkey.ActionLoginPush, errBadCode); err != nil {
		return nil, err
	}
	if app == "" {
		app = s.opt.Issuer
	}
	return s.opt.Pusher.SendLogin(ctx, u, sess.ID, deviceID, c.IP, c.UserAgent, app)
}

// PushStatus reports the state of the push challenge id for the browser whose session token
// is token. The first time it finds the challenge approved, it completes the sign-in: the
// result then carries the new session token, and the old one stops working. Only the sign-in
// flow that created the challenge can see or complete it; once completed, the signed-in
// session of the same user still reads "approved".
func (s *Service) PushStatus(ctx context.Context, c Client, token, id string) (latchkey.PushState, *Result, error) {
	return s.WatchPush(c, token, id).Status(ctx, false)
}

// PushWatch is a browser's long poll of one push challenge (the web layer's wait for the
// device's answer): Status each time it wakes. It keeps the sign-in flow as its last read
// found it while the challenge was pending, so that when the device's answer wakes it, the
// sign-in completes at once instead of reading the challenge again first: the completion's
// transaction admits only an approved challenge not completed yet, with the flow's row
// unchanged since that read (same verifier, user and session ID; ENotFound otherwise), and
// when it does not, Status reads as PushStatus does. Under load this saves a read of the
// batch writer's per push round trip (performance.md). Not for use by two goroutines at once.
type PushWatch struct {
	s         *Service
	c         Client
	token, id string
	// sess and u are the flow and its user as the last read found them, the challenge
	// pending; nil otherwise.
	sess *latchkey.Session
	u    *latchkey.User
}

// WatchPush returns the watch of challenge id by the browser whose session token is token.
func (s *Service) WatchPush(c Client, token, id string) *PushWatch {
	return &PushWatch{s: s, c: c, token: token, id: id}
}

// Status is PushStatus. answered says the watch was woken by news of the challenge (the
// device answered it, push.Hub): when the last Status found it pending, the sign-in is
// completed first, and the challenge read only when that is refused (not approved: denied, or
// news of something else; completed already; the flow changed).
func (w *PushWatch) Status(ctx context.Context, answered bool) (latchkey.PushState, *Result, error) {
	s := w.s
	if sess, u := w.sess, w.u; answered && sess != nil {
		w.sess, w.u = nil, nil
		if s.checkFlow(sess, u, latchkey.StateSecondFactor) == nil {
			if res, err := s.completePush(ctx, w.c, w.token, sess, u, w.id); err == nil {
				return latchkey.PushApproved, res, nil
			}
		}
	}
	if w.token == "" || len(w.id) > 64 {
		return "", nil, errNoChallenge
	}
	r := s.ref(w.token)
	if !r.ok {
		return "", nil, errNoChallenge
	}
	// The challenge, and the session with its user, in one prepared read: when the challenge
	// is approved, the session is the flow the sign-in completes (checkFlow), without
	// reading it again.
	ch, sess, u, err := s.opt.Store.FindPushChallengeWithSession(ctx, w.id, r.id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound || (err == nil && (ch.Kind != latchkey.PushLogin || !r.owns(sess))) {
		return "", nil, errNoChallenge
	} else if err != nil {
		return "", nil, fmt.Errorf("find challenge: %w", err)
	}
	now := s.now()
	if sess.ID != ch.SessionID || ch.CompletedAt != nil {
		// The browser completed this challenge earlier and now holds the rotated session
		// (under the same ID since migration 0013, and under a new one before).
		if ch.CompletedAt != nil && sess.UserID == ch.UserID && sess.State == latchkey.StateAuthenticated && now.Before(sess.ExpiresAt) {
			return latchkey.PushApproved, nil, nil
		}
		return "", nil, errNoChallenge
	}
	state := ch.StateAt(now)
	if state == latchkey.PushPending {
		w.sess, w.u = sess, u
	}
	if state != latchkey.PushApproved {
		return state, nil, nil
	}
	if err := s.checkFlow(sess, u, latchkey.StateSecondFactor); err != nil {
		return "", nil, err
	}
	res, err := s.completePush(ctx, w.c, w.token, sess, u, w.id)
	if latchkey.ErrorCode(err) == latchkey.EConflict {
		return "", nil, errFlowExpired
	} else if err != nil {
		return "", nil, err
	}
	return latchkey.PushApproved, res, nil
}

// completePush completes the sign-in flow sess with the approved challenge id, in the
// sign-in's own transaction: only an approved challenge not completed yet completes it, once.
func (s *Service) completePush(ctx context.Context, c Client, token string, sess *latchkey.Session, u *latchkey.User, id string) (*Result, error) {
	return s.complete(ctx, c, token, sess, u, completion{push: id, action: latchkey.ActionLoginPush, detail: "approved on device"}, latchkey.AMRSoftwareKey)
}
