package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// insertRows writes n rows of about 2 KiB to throttles, each in a transaction of its own.
func insertRows(t *testing.T, db *DB, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			return insertThrottle(ctx, tx, fmt.Sprintf("%s:%d:%s", prefix, i, strings.Repeat("x", 2000)))
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// fileSize is the size of path in bytes (0 when there is none).
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitFor polls cond every few milliseconds for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckpointerIdle: an idle store runs no checkpoint passes, not even after its own
// last pass (whose turn to write must not count as a write to checkpoint).
func TestCheckpointerIdle(t *testing.T) {
	db := openBatchDB(t)
	insertRows(t, db, "idle", 1)
	waitFor(t, "a pass after a write", func() bool { return db.ckpt.passes.Load() >= 1 })
	time.Sleep(3 * checkpointEvery)
	settled := db.ckpt.passes.Load()
	time.Sleep(5 * checkpointEvery)
	if got := db.ckpt.passes.Load(); got != settled {
		t.Errorf("an idle store ran %d checkpoint passes more", got-settled)
	}
}

// TestCheckpointerCopiesTheLog: after writes far below the automatic checkpoint's threshold
// (walAutoCheckpoint pages), the store's own pass copies them into the database file, and the
// writes after it reuse the log from its start instead of growing it.
func TestCheckpointerCopiesTheLog(t *testing.T) {
	db := openBatchDB(t)
	path := db.wal.path[:len(db.wal.path)-len("-wal")]
	before := fileSize(t, path)
	const rows = 200 // ~300 pages of the log, against 10,000 for the automatic checkpoint
	insertRows(t, db, "first", rows)
	waitFor(t, "the rows copied into the database file", func() bool { return fileSize(t, path) >= before+rows*2000 })
	logAfterFirst := fileSize(t, db.wal.path)

	waitFor(t, "a pass after the writes", func() bool { return db.ckpt.passes.Load() >= 1 })
	time.Sleep(2 * checkpointEvery)
	insertRows(t, db, "second", rows)
	if got := fileSize(t, db.wal.path); got > logAfterFirst+logAfterFirst/2 {
		t.Errorf("the log grew from %d to %d bytes with the same writes again: it was not started over", logAfterFirst, got)
	}
}

// TestCheckpointerUnderLoad: under writes that never pause, the log stays bounded (without
// the passes it holds every write up to walAutoCheckpoint pages, 40 MiB, before SQLite's own
// checkpoint starts it over), every write is there, and the database is intact. Each
// transaction appends ~8 pages to the log (its row, the index entry, the pages above them);
// the writers are paced, so that what comes in between two passes stays under the bound on
// a faster machine too.
func TestCheckpointerUnderLoad(t *testing.T) {
	db := openBatchDB(t)
	ctx := context.Background()
	const writers, total = 8, 3000 // ~90 MiB appended to the log, over 2 s at least
	const bound = 16 << 20
	var n, maxLog atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if size := fileSize(t, db.wal.path); size > maxLog.Load() {
				maxLog.Store(size)
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for {
				i := n.Add(1)
				if i > total {
					return
				}
				if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
					return insertThrottle(ctx, tx, fmt.Sprintf("load:%d:%d:%s", w, i, strings.Repeat("x", 2000)))
				}); err != nil {
					errs <- err
					return
				}
				time.Sleep(5 * time.Millisecond) // ≤ 1,600 transactions/s: ~6 MiB a pass
			}
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("the log's largest size: %.1f MiB, %d passes", float64(maxLog.Load())/(1<<20), db.ckpt.passes.Load())
	if got := maxLog.Load(); got > bound {
		t.Errorf("the log reached %d MiB under load, want at most %d MiB", got>>20, bound>>20)
	}
	if db.ckpt.passes.Load() == 0 {
		t.Error("no checkpoint pass ran under load")
	}
	var rows int
	if err := db.db.QueryRow(`SELECT count(*) FROM throttles WHERE key LIKE 'load:%'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != total {
		t.Errorf("%d rows written, want %d", rows, total)
	}
	var check string
	if err := db.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
}
