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

// gatedRotation is the real store whose rotations, once gate is set, say they started and
// wait for gate to close.
type gatedRotation struct {
	oidc.Store
	gate    chan struct{}
	started chan struct{}
}

func (s *gatedRotation) RotateOIDCSigningKey(ctx context.Context, k *latchkey.OIDCSigningKey, retiredUntil, staleBefore time.Time) (bool, error) {
	if s.gate != nil {
		s.started <- struct{}{}
		<-s.gate
	}
	return s.Store.RotateOIDCSigningKey(ctx, k, retiredUntil, staleBefore)
}

// While one token request replaces the stale signing key, the node's other token requests
// sign with the stale key instead of waiting for the new one; the ones after the rotation
// sign with the new key.
func TestStaleKeySignsWhileRotating(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	store := &gatedRotation{Store: f.db, started: make(chan struct{}, 1)}
	clock := func() time.Time { return f.now }
	p, err := oidc.New(oidc.Options{Store: store, Issuer: "http://id.test", Now: clock, Audit: audit.New(f.db, nil, clock)})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	k1, err := p.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(31 * 24 * time.Hour) // older than KeyRotation (30 days)
	first, second := f.code(t, authorized(t, f)), f.code(t, authorized(t, f))
	store.gate = make(chan struct{})
	done := make(chan string)
	go func() {
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, f.tokenRequest("app", first))
		done <- rec.Body.String()
	}()
	<-store.started

	other := make(chan string)
	go func() {
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, f.tokenRequest("app", second))
		other <- rec.Body.String()
	}()
	select {
	case body := <-other:
		if kid := idTokenKID(t, body); kid != k1.ID {
			t.Errorf("the token request during the rotation: ID token signed by %s, want the stale key %s", kid, k1.ID)
		}
	case <-time.After(10 * time.Second):
		close(store.gate)
		<-done
		t.Fatal("the token request during the rotation waited for it")
	}
	close(store.gate)
	k2 := idTokenKID(t, <-done)
	if k2 == k1.ID {
		t.Fatalf("the rotating request's ID token was signed by the stale key %s", k1.ID)
	}
	store.gate = nil
	if kid := idTokenKID(t, f.exchange(t, "app", authorized(t, f))); kid != k2 {
		t.Errorf("ID token after the rotation signed by %s, want the new key %s", kid, k2)
	}
	if keys, err := f.db.FindOIDCSigningKeys(ctx, f.now); err != nil || len(keys) != 2 || keys[0].ID != k2 || keys[0].RetiredAt != nil || keys[1].RetiredAt == nil {
		t.Errorf("keys after the rotation: %+v, %v; want %s active and %s retired", keys, err, k2, k1.ID)
	}
}
