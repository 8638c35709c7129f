package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/oidc"
)

// rotationCounter is the real store, counting the rotations it is asked for; each takes 20 ms
// longer, so that the requests started together all find the key missing.
type rotationCounter struct {
	oidc.Store
	calls atomic.Int32
}

func (s *rotationCounter) RotateOIDCSigningKey(ctx context.Context, k *latchkey.OIDCSigningKey, retiredUntil, staleBefore time.Time) (bool, error) {
	s.calls.Add(1)
	time.Sleep(20 * time.Millisecond)
	return s.Store.RotateOIDCSigningKey(ctx, k, retiredUntil, staleBefore)
}

// idTokenKID returns the kid in the header of the ID token of a token response.
func idTokenKID(t *testing.T, body string) string {
	t.Helper()
	var resp struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || strings.Count(resp.IDToken, ".") != 2 {
		t.Fatalf("token response %s: %v", body, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(resp.IDToken[:strings.Index(resp.IDToken, ".")])
	var header struct {
		KID string `json:"kid"`
	}
	if err != nil || json.Unmarshal(raw, &header) != nil || header.KID == "" {
		t.Fatalf("ID token header %q: %v", raw, err)
	}
	return header.KID
}

// The first token requests of two nodes, all at once and with no signing key yet, create one
// key, which signs every ID token; each node asks its store for one rotation at most. Once
// the key is rotated, the next ID token is signed with the new key.
func TestFirstUseCreatesOneKey(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	clock := func() time.Time { return f.now }
	var stores [2]*rotationCounter
	var nodes [2]*oidc.Provider
	for i := range nodes {
		stores[i] = &rotationCounter{Store: f.db}
		p, err := oidc.New(oidc.Options{Store: stores[i], Issuer: "http://id.test", Now: clock, Audit: audit.New(f.db, nil, clock)})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = p
	}
	const n = 24
	codes := make([]string, n)
	for i := range codes {
		codes[i] = f.code(t, authorized(t, f))
	}
	bodies := make([]string, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			nodes[i%2].Handler().ServeHTTP(rec, f.tokenRequest("app", codes[i]))
			statuses[i], bodies[i] = rec.Code, rec.Body.String()
		})
	}
	wg.Wait()
	kids := map[string]int{}
	for i := range codes {
		if statuses[i] != http.StatusOK {
			t.Fatalf("token request %d: %d %s", i, statuses[i], bodies[i])
		}
		kids[idTokenKID(t, bodies[i])]++
	}
	keys, err := f.db.FindOIDCSigningKeys(ctx, f.now)
	if err != nil || len(keys) != 1 || len(kids) != 1 || kids[keys[0].ID] != n {
		t.Fatalf("keys %+v (%v); ID tokens signed by %v", keys, err, kids)
	}
	for i, s := range stores {
		if c := s.calls.Load(); c > 1 {
			t.Errorf("node %d asked for %d rotations", i, c)
		}
	}

	// A rotation on one node: the other's next ID token is signed with the new key.
	k2, err := nodes[0].RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.p = nodes[1]
	if kid := idTokenKID(t, f.exchange(t, "app", authorized(t, f))); kid != k2.ID {
		t.Errorf("ID token after the rotation signed by %s, want %s", kid, k2.ID)
	}
}

// authorized starts a request of client "app" and authorizes it for f.user.
func authorized(t *testing.T, f *fixture) string {
	t.Helper()
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(context.Background(), id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: f.now}, f.user); err != nil {
		t.Fatal(err)
	}
	return id
}
