package login

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/latchkey/latchkey"
)

// SessionsEnded is told that an account rule (password change, Reset all MFA, a user
// disabled, reset or signed out by an admin or an agent) ended every session of userID but
// the one it keeps, if any, and which of them were signed in, so that the account ends for
// the applications too: the OIDC provider revokes every token of the user (offline ones of
// sessions ended earlier included) but those given in the kept session, and sends
// back-channel logouts for the ended sessions and to the clients whose tokens it revoked. kept is the public ID (sid) of the session the
// rule kept (the password changer's own), "" when it kept none: that session stays signed in,
// and its applications with it. It is called even when no session was signed in. It must not
// block.
type SessionsEnded func(ctx context.Context, userID latchkey.UserID, kept string, ended []*latchkey.Session)

// endedHook holds the SessionsEnded of a Service; nil until set.
type endedHook struct{ fn atomic.Pointer[SessionsEnded] }

// OnSessionsEnded sets the function told about sessions that account rules end. The web
// server sets it when it has an OIDC provider; call it before serving.
func (s *Service) OnSessionsEnded(fn SessionsEnded) { s.ended.fn.Store(&fn) }

// endUserSessions deletes every session of the user except keep (a session ID, "" for none)
// and tells the SessionsEnded hook, with the signed-in ones among them and the sid of the
// one it kept.
func (s *Service) endUserSessions(ctx context.Context, userID latchkey.UserID, keep string) error {
	var (
		ended []*latchkey.Session
		kept  string
	)
	if fn := s.ended.fn.Load(); fn != nil {
		list, err := s.opt.Store.FindUserSessions(ctx, userID, s.now())
		if err != nil {
			return fmt.Errorf("find sessions: %w", err)
		}
		for _, sess := range list {
			if keep != "" && sess.ID == keep {
				kept = sess.SID
			} else {
				ended = append(ended, sess)
			}
		}
	}
	if err := s.opt.Store.DeleteUserSessions(ctx, userID, keep); err != nil {
		return err
	}
	if fn := s.ended.fn.Load(); fn != nil {
		(*fn)(ctx, userID, kept, ended)
	}
	return nil
}
