package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
)

// readThrottle is a read job of these tests: the key of the throttle key, or sql.ErrNoRows.
func readThrottle(db *DB, key string) error {
	return db.batches.read(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		var got string
		return tx.QueryRowContext(ctx, `SELECT key FROM throttles WHERE key = ?`, key).Scan(&got)
	})
}

// TestBatchReadsRunFirst: reads queued after a write run in the same batch but before it, see
// only what was committed before the batch, and are answered without waiting for the batch's
// writes (here, one that has not finished).
func TestBatchReadsRunFirst(t *testing.T) {
	ctx := context.Background()
	db := openBatchDB(t)
	if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return insertThrottle(ctx, tx, "before") }); err != nil {
		t.Fatal(err)
	}
	done, err := db.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unblock := make(chan struct{})
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		werr = db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if err := insertThrottle(ctx, tx, "during"); err != nil {
				return err
			}
			<-unblock
			return nil
		})
	})
	waitQueued(t, db, 1)
	type result struct {
		key string
		err error
	}
	results := make(chan result, 2)
	for i, key := range []string{"during", "before"} {
		go func() { results <- result{key, readThrottle(db, key)} }()
		waitQueued(t, db, i+2)
	}
	before := db.batches.commits.Load()
	done()
	for range 2 {
		select {
		case r := <-results:
			if r.key == "during" && !errors.Is(r.err, sql.ErrNoRows) {
				t.Errorf("the read of the row the batch's write inserts: %v, want sql.ErrNoRows (the reads run first)", r.err)
			}
			if r.key == "before" && r.err != nil {
				t.Errorf("the read of a committed row: %v", r.err)
			}
		case <-time.After(10 * time.Second):
			close(unblock)
			t.Fatal("a read waited for the batch's write")
		}
	}
	close(unblock)
	wg.Wait()
	if werr != nil {
		t.Fatalf("the write: %v", werr)
	}
	if got := db.batches.commits.Load() - before; got != 1 {
		t.Errorf("the reads and the write took %d transactions, want 1 (a missing row does not give up the batch)", got)
	}
	if !throttleKeys(t, db, []string{"during"})["during"] {
		t.Error("the write was not committed")
	}
}

// TestBatchReadFails: a read that fails otherwise than with a missing row gets its error, and
// the batch's transaction is given up: its writes run again, each in a transaction of its
// own, and are all committed.
func TestBatchReadFails(t *testing.T) {
	db := openBatchDB(t)
	const n = 3
	keys, release := queueInserts(t, db, "readfails", n, func(int, *sql.Tx) error { return nil })
	rerr := make(chan error, 1)
	go func() {
		rerr <- db.batches.read(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			var x int
			return tx.QueryRowContext(ctx, `SELECT x FROM no_such_table`).Scan(&x)
		})
	}()
	waitQueued(t, db, n+1)
	before := db.batches.commits.Load()
	errs := release()
	if err := <-rerr; err == nil || errors.Is(err, sql.ErrNoRows) {
		t.Errorf("the failing read got %v, want its error", err)
	}
	if got := db.batches.commits.Load() - before; got != n+1 {
		t.Errorf("%d transactions, want %d (the batch given up, then each write on its own)", got, n+1)
	}
	rows := throttleKeys(t, db, keys)
	for i := range n {
		if errs[i] != nil || !rows[keys[i]] {
			t.Errorf("write %d: %v, written %v; want committed", i, errs[i], rows[keys[i]])
		}
	}
}

// TestReadWarmInTransactionFunction: a read that goes to the batch writer, called inside a
// transaction's function (where its batch could never come), reads on the pool instead.
func TestReadWarmInTransactionFunction(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "nested.db"), Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	// Closed only when the read came back: Close waits for the batch writer, which would
	// wait for ever with it.
	u := &latchkey.User{Username: "alice", Email: "alice@example.com", Role: latchkey.RoleUser, PasswordHash: "$argon2id$x"}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := db.FindTOTPCredentials(ctx, u.ID)
			return err
		})
	}()
	select {
	case err := <-errc:
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FindTOTPCredentials inside a transaction's function waits for ever")
	}
}

// TestFlowReadsOnWriter: on SQLite, while the batch writer is busy, the reads of the sign-in
// and push paths (a sign-in flow, the TOTP credentials, the throttle counters alone and
// several at once, a user's devices, a device with its user, a push challenge alone and with
// its flow, a device's pending challenges) are read in its next batch (where the writes go)
// and a signed-in session is not; when the writer is idle, they are read on the pool; many of
// them at once, among writes, all read what is there.
func TestFlowReadsOnWriter(t *testing.T) {
	ctx := context.Background()
	db, _, u := openCacheDB(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	flow := &latchkey.Session{ID: "f1", SID: "sid-f1", UserID: u.ID, State: latchkey.StateSecondFactor, AMR: []string{"pwd"},
		PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(5 * time.Minute), Verifier: "v"}
	if err := db.CreateSession(ctx, flow); err != nil {
		t.Fatal(err)
	}
	cred := &latchkey.TOTPCredential{UserID: u.ID, Name: "phone", Secret: []byte("12345678901234567890")}
	if err := db.CreateTOTPCredential(ctx, cred); err != nil {
		t.Fatal(err)
	}
	d := &latchkey.Device{UserID: u.ID, Name: "phone", Platform: "android", PublicKey: []byte("key"), State: latchkey.DeviceActive, KeyChangedAt: now}
	if err := db.CreateDevice(ctx, d, &latchkey.TOTPCredential{Name: "Latch", Secret: []byte("09876543210987654321")}); err != nil {
		t.Fatal(err)
	}
	ch := &latchkey.PushChallenge{ID: "p1", UserID: u.ID, DeviceID: d.ID, Kind: latchkey.PushLogin, SessionID: "f1", Number: "42",
		CreatedAt: now, ExpiresAt: now.Add(2 * time.Minute), State: latchkey.PushPending}
	if err := db.CreatePushChallenge(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordFailure(ctx, "user:alice", now); err != nil {
		t.Fatal(err)
	}
	// check turns a wrong answer into an error.
	check := func(ok bool, got any, err error) error {
		if err == nil && !ok {
			err = fmt.Errorf("got %+v", got)
		}
		return err
	}
	for _, c := range []struct {
		name string
		read func() error
		warm bool
	}{
		{"FindThrottle", func() error {
			th, err := db.FindThrottle(ctx, "user:alice")
			return check(th.Failures == 1, th, err)
		}, true},
		{"FindThrottles", func() error {
			ths, err := db.FindThrottles(ctx, "push:alice", "user:alice")
			return check(len(ths) == 2 && ths[0].Failures == 0 && ths[1].Failures == 1, ths, err)
		}, true},
		{"FindDevices", func() error {
			ds, err := db.FindDevices(ctx, u.ID)
			return check(len(ds) == 1 && ds[0].ID == d.ID && ds[0].Primary, ds, err)
		}, true},
		{"FindDeviceWithUser", func() error {
			got, du, err := db.FindDeviceWithUser(ctx, d.ID)
			return check(err == nil && got.ID == d.ID && du.Username == "alice", got, err)
		}, true},
		{"FindPushChallenge", func() error {
			got, err := db.FindPushChallenge(ctx, "p1")
			return check(err == nil && got.DeviceID == d.ID && got.Number == "42", got, err)
		}, true},
		{"FindPushChallengeWithSession", func() error {
			got, sess, cu, err := db.FindPushChallengeWithSession(ctx, "p1", "f1")
			return check(err == nil && got.ID == "p1" && sess.ID == "f1" && cu.Username == "alice", got, err)
		}, true},
		{"DevicePushChallenges", func() error {
			chs, err := db.DevicePushChallenges(ctx, d.ID, d.PublicKey, now)
			return check(len(chs) == 1 && chs[0].ID == "p1", chs, err)
		}, true},
		{"FindFlowWithUser", func() error { _, _, err := db.FindFlowWithUser(ctx, "f1"); return err }, true},
		{"FindFlowWithTOTP", func() error {
			sess, fu, got, err := db.FindFlowWithTOTP(ctx, "f1")
			if err == nil && (sess.ID != "f1" || fu.Username != "alice" || len(got) != 2 || !slices.ContainsFunc(got, func(c *latchkey.TOTPCredential) bool { return string(c.Secret) == "12345678901234567890" })) {
				err = fmt.Errorf("got %+v, %+v, %+v, want the flow, alice and her two credentials, with their secrets", sess, fu, got)
			}
			return err
		}, true},
		{"FindTOTPCredentials", func() error {
			got, err := db.FindTOTPCredentials(ctx, u.ID)
			if err == nil && (len(got) != 2 || !slices.ContainsFunc(got, func(c *latchkey.TOTPCredential) bool { return string(c.Secret) == "12345678901234567890" })) {
				err = fmt.Errorf("got %+v, want the two credentials, with their secrets", got)
			}
			return err
		}, true},
		{"FindSessionWithUser", func() error { _, _, err := db.FindSessionWithUser(ctx, "s1"); return err }, false},
	} {
		// Idle writer: the read is not a batch.
		before := db.batches.commits.Load()
		if err := c.read(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := db.batches.commits.Load() - before; got != 0 {
			t.Errorf("%s with the writer idle took %d of its transactions, want 0", c.name, got)
		}
		// Busy writer: a write waits for the turn, and the read joins its batch.
		done, err := db.lockWrites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return insertThrottle(ctx, tx, "busy:"+c.name) }); err != nil {
				t.Error(err)
			}
		})
		waitQueued(t, db, 1)
		rerr := make(chan error, 1)
		go func() { rerr <- c.read() }()
		if c.warm {
			waitQueued(t, db, 2)
		} else {
			select {
			case err := <-rerr:
				rerr <- err
			case <-time.After(10 * time.Second):
				t.Errorf("%s waited for the writer's turn", c.name)
			}
		}
		before = db.batches.commits.Load()
		done()
		wg.Wait()
		if err := <-rerr; err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := db.batches.commits.Load() - before; got != 1 {
			t.Errorf("%s with the writer busy: %d transactions, want 1 (the write's batch)", c.name, got)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 25 {
				if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
					return insertThrottle(ctx, tx, fmt.Sprintf("w%d:%d", i, j))
				}); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range 25 {
				s, got, err := db.FindFlowWithUser(ctx, "f1")
				if err == nil && (s.State != latchkey.StateSecondFactor || got.Username != "alice") {
					err = fmt.Errorf("read %+v of %+v", s, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWriterStats: the batch writer counts its batches, the transactions and the reads it
// ran, and the time it ran them (a batch that holds a transaction for 20 ms adds at least
// that).
func TestWriterStats(t *testing.T) {
	ctx := context.Background()
	db := openBatchDB(t)
	w0, ok := db.WriterStats()
	if !ok {
		t.Fatal("WriterStats on SQLite: not ok")
	}
	for i := range 3 {
		if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return insertThrottle(ctx, tx, fmt.Sprintf("stats%d", i)) }); err != nil {
			t.Fatal(err)
		}
	}
	// One batch of a write that takes 20 ms and a read that joined it.
	done, err := db.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			time.Sleep(20 * time.Millisecond)
			return insertThrottle(ctx, tx, "stats-slow")
		}); err != nil {
			t.Error(err)
		}
	})
	waitQueued(t, db, 1)
	wg.Go(func() {
		if err := readThrottle(db, "stats0"); err != nil {
			t.Error(err)
		}
	})
	waitQueued(t, db, 2)
	done()
	wg.Wait()
	w1, _ := db.WriterStats()
	if got := w1.Writes - w0.Writes; got != 4 {
		t.Errorf("writes: %d, want 4", got)
	}
	if got := w1.Reads - w0.Reads; got != 1 {
		t.Errorf("reads: %d, want 1", got)
	}
	if got := w1.Batches - w0.Batches; got != 4 {
		t.Errorf("batches: %d, want 4 (three alone, then the slow write with the read)", got)
	}
	if got := w1.Busy - w0.Busy; got < 20*time.Millisecond || got > 5*time.Second {
		t.Errorf("busy: %v, want at least the slow write's 20ms", got)
	}
}
