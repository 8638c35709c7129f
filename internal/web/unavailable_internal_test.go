package web

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
