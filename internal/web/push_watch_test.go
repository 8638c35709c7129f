package web_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// challengeReads counts the sign-in service's reads of a push challenge with its flow.
type challengeReads struct {
	*sqlstore.DB
	n atomic.Int32
}

func (c *challengeReads) FindPushChallengeWithSession(ctx context.Context, id, sessionID string) (*latchkey.PushChallenge, *latchkey.Session, *latchkey.User, error) {
	c.n.Add(1)
	return c.DB.FindPushChallengeWithSession(ctx, id, sessionID)
}

// newWatchFixture is a fixture whose sign-in service counts its challenge reads.
func newWatchFixture(t *testing.T) (*fixture, *challengeReads) {
	reads := &challengeReads{}
	f := newFixtureStore(t, "", io.Discard, func(db *sqlstore.DB) login.Store {
		reads.DB = db
		return reads
	})
	return f, reads
}

// successes counts the audit trail's successful push sign-ins.
func successes(t *testing.T, f *fixture) int {
	t.Helper()
	var n int
	if err := f.db.SQL().QueryRow(`SELECT count(*) FROM audit_events WHERE action = $1 AND outcome = 'success'`, string(latchkey.ActionLoginPush)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPushWatchCompletesOnAnswer: a browser's watch that found its challenge pending and is
// woken by the device's approval completes the sign-in without reading the challenge again,
// once: the new token works, the flow's does not, and one success is audited.
func TestPushWatchCompletesOnAnswer(t *testing.T) {
	f, reads := newWatchFixture(t)
	_, d := f.activated(t)
	ctx := t.Context()
	b, id, number := f.pushLogin(t)
	token := b.sessionCookie().Value
	c := login.Client{IP: "127.0.0.1", UserAgent: "test"}

	w := f.svc.WatchPush(c, token, id)
	if st, res, err := w.Status(ctx, false); err != nil || st != latchkey.PushPending || res != nil {
		t.Fatalf("before the answer: %q %v %v", st, res, err)
	}
	if r := d.answer(id, "approve", number); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.raw)
	}
	before := reads.n.Load()
	st, res, err := w.Status(ctx, true)
	if err != nil || st != latchkey.PushApproved || res == nil || res.Token == "" || res.State != latchkey.StateAuthenticated {
		t.Fatalf("woken by the approval: %q %+v %v", st, res, err)
	}
	if n := reads.n.Load() - before; n != 0 {
		t.Errorf("woken by the approval, the watch read the challenge %d times, want 0", n)
	}
	if n := successes(t, f); n != 1 {
		t.Errorf("%d successful push sign-ins audited, want 1", n)
	}
	// The signed-in session reads "approved" and completes nothing more; the flow's token
	// is gone.
	if st, res, err := f.svc.PushStatus(ctx, c, res.Token, id); err != nil || st != latchkey.PushApproved || res != nil {
		t.Errorf("the new session's status: %q %v %v", st, res, err)
	}
	if _, _, err := f.svc.PushStatus(ctx, c, token, id); latchkey.ErrorCode(err) != latchkey.ENotFound {
		t.Errorf("the flow's old token after the sign-in: %v, want not found", err)
	}
	if st, res, err := w.Status(ctx, true); err == nil || res != nil {
		t.Errorf("the watch woken again: %q %v %v, want an error and no sign-in", st, res, err)
	}
	if n := successes(t, f); n != 1 {
		t.Errorf("%d successful push sign-ins audited, want 1", n)
	}
}

// TestPushWatchRefusedCompletion: woken by a denial, by news that is no answer, or after the
// flow changed, the watch's completion is refused, writes nothing, and the challenge is read
// as before.
func TestPushWatchRefusedCompletion(t *testing.T) {
	f, reads := newWatchFixture(t)
	_, d := f.activated(t)
	ctx := t.Context()
	c := login.Client{IP: "127.0.0.1", UserAgent: "test"}

	// Denied: the watch reads "denied"; no session, no success.
	b, id, _ := f.pushLogin(t)
	w := f.svc.WatchPush(c, b.sessionCookie().Value, id)
	if st, _, err := w.Status(ctx, false); err != nil || st != latchkey.PushPending {
		t.Fatalf("before the answer: %q %v", st, err)
	}
	if r := d.answer(id, "deny", ""); r.code != 200 {
		t.Fatalf("deny: %d %s", r.code, r.raw)
	}
	before := reads.n.Load()
	if st, res, err := w.Status(ctx, true); err != nil || st != latchkey.PushDenied || res != nil {
		t.Fatalf("woken by the denial: %q %v %v", st, res, err)
	}
	if n := reads.n.Load() - before; n != 1 {
		t.Errorf("after a refused completion the watch read the challenge %d times, want 1", n)
	}
	if r := b.do("GET", "/api/v1/session", "", ""); r.code == 200 && r.body["mfa"] == true {
		t.Fatalf("signed in after a denial: %s", r.raw)
	}

	// Woken while still pending (news that is no answer): pending, and the approval that
	// follows completes the sign-in once.
	b, id, number := f.pushLogin(t)
	w = f.svc.WatchPush(c, b.sessionCookie().Value, id)
	if st, _, err := w.Status(ctx, false); err != nil || st != latchkey.PushPending {
		t.Fatalf("before the answer: %q %v", st, err)
	}
	if st, res, err := w.Status(ctx, true); err != nil || st != latchkey.PushPending || res != nil {
		t.Fatalf("woken with no answer: %q %v %v", st, res, err)
	}
	if r := d.answer(id, "approve", number); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.raw)
	}
	if st, res, err := w.Status(ctx, true); err != nil || st != latchkey.PushApproved || res == nil {
		t.Fatalf("woken by the approval: %q %v %v", st, res, err)
	}
	if n := successes(t, f); n != 1 {
		t.Errorf("%d successful push sign-ins audited, want 1", n)
	}

	// The flow completed another way (the app's offline code) while the watch waited: the
	// approval that follows does not sign the flow's old token in again.
	b, id, number = f.pushLogin(t)
	token := b.sessionCookie().Value
	w = f.svc.WatchPush(c, token, id)
	if st, _, err := w.Status(ctx, false); err != nil || st != latchkey.PushPending {
		t.Fatalf("before the answer: %q %v", st, err)
	}
	if r := b.post("/api/v1/login/totp", map[string]string{"code": totp.Code(d.seed, totp.Step(f.clock.Now()))}); r.code != 200 {
		t.Fatalf("offline code: %d %s", r.code, r.raw)
	}
	if r := d.answer(id, "approve", number); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.raw)
	}
	if st, res, err := w.Status(ctx, true); err == nil || res != nil {
		t.Fatalf("the old flow's watch woken by the approval: %q %+v %v, want refused", st, res, err)
	}
	if n := successes(t, f); n != 1 {
		t.Errorf("%d successful push sign-ins audited, want 1 (the offline code is audited as TOTP)", n)
	}
}
