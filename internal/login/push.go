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
	if token == "" || len(id) > 64 {
		return "", nil, errNoChallenge
	}
	r := s.ref(token)
	if !r.ok {
		return "", nil, errNoChallenge
	}
	// The challenge, and the session with its user, in one prepared read: when the challenge
	// is approved, the session is the flow the sign-in completes (checkFlow), without
	// reading it again.
	ch, sess, u, err := s.opt.Store.FindPushChallengeWithSession(ctx, id, r.id)
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
	if state != latchkey.PushApproved {
		return state, nil, nil
	}
	if err := s.checkFlow(sess, u, latchkey.StateSecondFactor); err != nil {
		return "", nil, err
	}
	// The challenge is completed (once) in the sign-in's own transaction.
	res, err := s.complete(ctx, c, token, sess, u, completion{push: id, action: latchkey.ActionLoginPush, detail: "approved on device"}, latchkey.AMRSoftwareKey)
	if latchkey.ErrorCode(err) == latchkey.EConflict {
		return "", nil, errFlowExpired
	} else if err != nil {
		return "", nil, err
	}
	return latchkey.PushApproved, res, nil
}
