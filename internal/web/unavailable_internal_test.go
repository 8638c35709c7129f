package web

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/latchkey/latchkey"
)

// pgError stands for pgx's PgError: only its SQLState method matters here.
type pgError struct{ code string }

func (e *pgError) Error() string    { return "ERROR (SQLSTATE " + e.code + ")" }
func (e *pgError) SQLState() string { return e.code }

func TestUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want string // the code clients see
	}{
		{"connection refused", fmt.Errorf("find user: %w", refused), latchkey.EUnavailable},
		{"bad connection", fmt.Errorf("find session: %w", driver.ErrBadConn), latchkey.EUnavailable},
		{"connection lost mid-query", fmt.Errorf("q: %w", io.ErrUnexpectedEOF), latchkey.EUnavailable},
		{"pool wait timed out", fmt.Errorf("q: %w", context.DeadlineExceeded), latchkey.EUnavailable},
		{"admin shutdown", fmt.Errorf("q: %w", &pgError{"57P01"}), latchkey.EUnavailable},
		{"starting up", fmt.Errorf("q: %w", &pgError{"57P03"}), latchkey.EUnavailable},
		{"connection failure", fmt.Errorf("q: %w", &pgError{"08006"}), latchkey.EUnavailable},
		{"too many connections", fmt.Errorf("q: %w", &pgError{"53300"}), latchkey.EUnavailable},
		{"unique violation", fmt.Errorf("q: %w", &pgError{"23505"}), latchkey.EInternal},
		{"syntax error", fmt.Errorf("q: %w", &pgError{"42601"}), latchkey.EInternal},
		{"other internal", errors.New("boom"), latchkey.EInternal},
		{"domain error", latchkey.Errorf(latchkey.ENotFound, "No such thing."), latchkey.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := unavailable(tc.err)
			if got := latchkey.ErrorCode(err); got != tc.want {
				t.Errorf("ErrorCode(unavailable(%v)) = %q, want %q", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("unavailable(%v) lost the cause", tc.err)
			}
			w := httptest.NewRecorder()
			writeJSONError(w, tc.err)
			if tc.want == latchkey.EUnavailable {
				if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" {
					t.Errorf("writeJSONError: %d, Retry-After %q; want 503, 5", w.Code, w.Header().Get("Retry-After"))
				}
			} else if w.Code == http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "" {
				t.Errorf("writeJSONError: %d, Retry-After %q for an error that is not an outage", w.Code, w.Header().Get("Retry-After"))
			}
		})
	}
}

// TestClientGone: an API request whose client went away (its context cancelled, the handler
// failing with that cancellation) is logged as nothing worse than its access line's 499; a
// cancellation while the client is still there, or another error, is the server's error.
func TestClientGone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cancelled bool
		err       error
		wantCode  int
		wantError bool // an "api error" line at error level
	}{
		{"client went away", true, fmt.Errorf("verify password: %w", context.Canceled), statusClientClosed, false},
		{"cancelled inside, client still there", false, fmt.Errorf("verify password: %w", context.Canceled), http.StatusInternalServerError, true},
		{"client went away, other error", true, errors.New("boom"), http.StatusInternalServerError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			r := httptest.NewRequestWithContext(ctx, "POST", "/api/v1/login", nil)
			w := httptest.NewRecorder()
			s.api(func(http.ResponseWriter, *http.Request) (any, error) { return nil, tc.err }).ServeHTTP(w, r)
			if w.Code != tc.wantCode {
				t.Errorf("status %d, want %d", w.Code, tc.wantCode)
			}
			if got := strings.Contains(logs.String(), "level=ERROR"); got != tc.wantError {
				t.Errorf("error line logged: %v, want %v:\n%s", got, tc.wantError, logs.String())
			}
		})
	}
}
