package login

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/latchkey/latchkey"
)

// SessionsEnded is told about signed-in sessions that an account rule ended (password
// change, Reset all MFA, a user disabled or reset by an admin or an agent), so that they end
// for the applications too: the OIDC provider revokes their tokens and sends back-channel
// logouts. It must not block.
type SessionsEnded func(ctx context.Context, ended []*latchkey.Session)

// endedHook holds the SessionsEnded of a Service; nil until set.
type endedHook struct{ fn atomic.Pointer[SessionsEnded] }

// OnSessionsEnded sets the function told about sessions that account rules end. The web
// server sets it when it has an OIDC provider; call it before serving.
func (s *Service) OnSessionsEnded(fn SessionsEnded) { s.ended.fn.Store(&fn) }

// endUserSessions deletes every session of the user except exceptID ("" for none) and tells
// the SessionsEnded hook about the signed-in ones among them.
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
	if fn := s.ended.fn.Load(); fn != nil && len(ended) > 0 {
		(*fn)(ctx, ended)
	}
	return nil
}
