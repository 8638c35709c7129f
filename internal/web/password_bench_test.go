package web_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/totp"
)

// BenchmarkPasswordStep measures the password step (POST /api/v1/login) of a user with an
// authenticator app through the HTTP handler and SQLite, one request at a time: the throttle
// reservation, the user's read, the factors offered next, the refund, the new flow and the
// audit entry. The fixture's hasher uses 1 MiB argon2id parameters, so this is the step's
// own work around the hash, which BenchmarkKey in internal/password/argon2id measures with
// the production parameters.
func BenchmarkPasswordStep(b *testing.B) {
	f := newFixture(b, "")
	ctx := context.Background()
	u := mustUserB(b, f)
	cr := &latchkey.TOTPCredential{UserID: u.ID, Name: "phone", Secret: bytes.Repeat([]byte{1, 2, 3, 4}, 5)}
	if err := f.db.CreateTOTPCredential(ctx, cr); err != nil {
		b.Fatal(err)
	}
	if err := f.db.ConfirmTOTPCredential(ctx, cr.ID, totp.Step(f.clock.Now())-2, f.clock.Now(), nil, false); err != nil {
		b.Fatal(err)
	}
	body := `{"username":"alice","password":"` + pw + `"}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		f.srv.Config.Handler.ServeHTTP(w, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"second_factor"`) {
			b.Fatalf("login: %d %s", w.Code, w.Body)
		}
	}
}
