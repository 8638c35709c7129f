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
// sessions ended earlier included) and sends back-channel logouts for the ended sessions. It
// is called even when no session was signed in. It must not block.
type SessionsEnded func(ctx context.Context, userID latchkey.UserID, ended []*latchkey.Session)

// endedHook holds the SessionsEnded of a Service; nil until set.
type endedHook struct{ fn atomic.Pointer[SessionsEnded] }

// OnSessionsEnded sets the function told about sessions that account rules end. The web
// server sets it when it has an OIDC provider; call it before serving.
func (s *Service) OnSessionsEnded(fn SessionsEnded) { s.ended.fn.Store(&fn) }

// endUserSessions deletes every session of the user except exceptID ("" for none) and tells
// the SessionsEnded hook, with the signed-in ones among them.
func (s *Service) endUserSessions(ctx context.Context, userID latchkey.UserID, exceptID string) error {
	var ended []*latchkey.Session
	if fn := s.ended.fn.Load(); fn != nil {
		list, err := s.opt.Store.FindUserSessions(ctx, userID, s.now())
		if err != nil {
			return fmt.Errorf("find sessions: %w", err)
		}
		for _, sess := range list {
			if sess.ID != exceptID {
				ended = append(ended, sess)
			}
		}
	}
	if err := s.opt.Store.DeleteUserSessions(ctx, userID, exceptID); err != nil {
		return err
	}
	if fn := s.ended.fn.Load(); fn != nil {
		(*fn)(ctx, userID, ended)
	}
	return nil
}
