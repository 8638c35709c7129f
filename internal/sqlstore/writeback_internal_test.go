package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// recordWriteback replaces db's log writeback with one that records the files it is asked
// to write back, and returns the record.
func recordWriteback(t *testing.T, db *DB) *writebackRecord {
	t.Helper()
	if db.wal == nil {
		t.Fatalf("SQLite store without a log writeback on %s", runtime.GOOS)
	}
	path := db.wal.path
	db.wal.close()
	r := &writebackRecord{}
	db.wal = &writeback{path: path, poked: make(chan struct{}, 1), stop: make(chan struct{}), start: r.start, rest: make(chan chan bool)}
	db.wal.done.Go(db.wal.run)
	return r
}

type writebackRecord struct {
	mu    sync.Mutex
	files []string
	at    []time.Time
}

func (r *writebackRecord) start(f *os.File) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = append(r.files, f.Name())
	r.at = append(r.at, time.Now())
	return nil
}

func (r *writebackRecord) calls() ([]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.files...), append([]time.Time(nil), r.at...)
}

// waitCalls waits until r has at least n calls.
func (r *writebackRecord) waitCalls(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		files, _ := r.calls()
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writebacks started, want %d", len(files), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCallAfter waits until r has a call made after t.
func (r *writebackRecord) waitCallAfter(tb *testing.T, t time.Time) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, at := r.calls()
		if len(at) > 0 && at[len(at)-1].After(t) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no writeback started after %v (%d in all)", t.Format("15:04:05.000000"), len(at))
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRest waits until w's goroutine waits for a poke with none pending. When no write is
// made meanwhile, it then starts no writeback until the next one (a write's poke comes in
// its turn to write, before the write returns when it ran alone).
func waitRest(t *testing.T, w *writeback) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	answer := make(chan bool)
	for asked := 0; ; asked++ {
		select {
		case w.rest <- answer:
			if <-answer {
				return
			}
		case <-deadline:
			t.Fatalf("the writeback did not come to rest in 5s (asked %d times, a poke pending each time): it goes on starting writebacks without writes", asked)
		}
	}
}

// TestWritebackAfterWrites: after the store's writes, the writeback of the write-ahead log
// (and of nothing else) is started, at most every writebackEvery however many writes come,
// and an idle store starts none.
func TestWritebackAfterWrites(t *testing.T) {
	db := openBatchDB(t)
	ctx := context.Background()
	db.ckpt.close() // its passes' turns would start writebacks of their own
	rec := recordWriteback(t, db)

	time.Sleep(3 * writebackEvery)
	if files, _ := rec.calls(); len(files) != 0 {
		t.Fatalf("an idle store started %d writebacks: %v", len(files), files)
	}

	write := func(key string) {
		t.Helper()
		if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return insertThrottle(ctx, tx, key) }); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	files := rec.waitCalls(t, 1)
	if want := db.wal.path; files[0] != want || filepath.Base(want) != "batch.db-wal" {
		t.Errorf("the writeback started for %q, want the write-ahead log %q", files[0], want)
	}

	// Writes as fast as they come for a while: one writeback per writebackEvery at most.
	begin := time.Now()
	n := 0
	for time.Since(begin) < 20*writebackEvery {
		write(fmt.Sprint("many:", n))
		n++
	}
	elapsed := time.Since(begin)
	// The writes ran one at a time on this goroutine, so each one's poke came before it
	// returned: once the writeback waits for a poke with none pending, it has started all
	// it will for them (the one for a poke pending at the last write included).
	waitRest(t, db.wal)
	files, at := rec.calls()
	if max := int(elapsed/writebackEvery) + 3; len(files) > max {
		t.Errorf("%d writes in %v started %d writebacks, want at most %d (one per %v)", n, elapsed, len(files), max, writebackEvery)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < writebackEvery-time.Millisecond {
			t.Errorf("writebacks %d and %d started %v apart, want at least %v", i-1, i, gap, writebackEvery)
		}
	}
	if len(files) < 3 {
		t.Errorf("%d writes in %v started %d writebacks, want more than 2: the writes go on poking", n, elapsed, len(files))
	}

	// Idle again: nothing more while nothing is written (the wait shows a writeback that
	// starts by itself; a store that works starts none however long it is).
	settled := len(files)
	time.Sleep(5 * writebackEvery)
	if files, _ := rec.calls(); len(files) != settled {
		t.Errorf("an idle store went on starting writebacks: %d after %d", len(files), settled)
	}

	// A write while the writeback waits out writebackEvery is not forgotten: its writeback
	// starts when the wait ends, and the log's last pages do not wait for the checkpoint.
	// (TestWritebackReachesTheDisk allows the few pages in flight at the last writeback, so
	// a lost poke shows here.)
	write("waiting, first")
	rec.waitCalls(t, settled+1)
	second := time.Now()
	write("waiting, second") // within writebackEvery of the first one's writeback, on a machine not overloaded
	rec.waitCallAfter(t, second)
}

// TestWritebackFollowsNewLog: when the log is deleted and created again (SQLite deletes it
// with its last connection), the writeback opens the new one.
func TestWritebackFollowsNewLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x-wal")
	if err := os.WriteFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	w := &writeback{path: path, poked: make(chan struct{}, 1), stop: make(chan struct{}), start: func(f *os.File) error {
		b := make([]byte, 16)
		n, _ := f.ReadAt(b, 0)
		mu.Lock()
		seen = append(seen, string(b[:n]))
		mu.Unlock()
		return nil
	}}
	w.done.Go(w.run)
	defer w.close()
	wait := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			s := append([]string(nil), seen...)
			mu.Unlock()
			if len(s) >= n {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writebacks, want %d", len(s), n)
			}
			w.poke()
			time.Sleep(writebackEvery / 2)
		}
	}
	wait(1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.poke() // no log: nothing to write back, and no failure
	time.Sleep(2 * writebackEvery)
	if err := os.WriteFile(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := len(wait(1))
	s := wait(n + 1)
	if last := s[len(s)-1]; last != "second" {
		t.Errorf("the writeback after the log was created again read %q, want the new log's %q (all: %q)", last, "second", s)
	}
}

// cannotObserve ends a test that has nothing to observe on this machine: a skip, but a
// failure under CI=true, whose Linux machine must show the kernel's side (a CI whose temp
// folder were RAM-backed would lose this guard without a word otherwise).
func cannotObserve(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("under CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// TestWritebackReachesTheDisk is the kernel's side, on Linux: after writes, the log's pages
// stop being dirty in the page cache within moments, where a file written beside it and left
// alone stays dirty (the kernel writes dirty pages back after 30 s by default). cachestat(2)
// reads a file's dirty pages (Linux 6.5); without it, or on a file system that keeps none,
// the test has nothing to observe and says so, a failure under CI=true. Should the control
// be clean too (something synced the whole file system meanwhile), the attempt shows nothing
// and runs again.
//
// All but a few of the log's pages: SYNC_FILE_RANGE_WRITE starts no page whose write is in
// flight, and the page a writeback ends in is written again by the next commit (a frame is
// 4,120 bytes: frames straddle the pages). When the last writeback comes while such a page is
// still being written (a busy disk, a loaded machine), the page stays dirty until the next
// writeback, the checkpoint's sync or the kernel's own flush, which is all the store promises
// (the checkpoint's sync waits for the rest only). So the log may keep up to maxLeft dirty
// pages of the 1,000 and more that the writes dirty (all of them stay dirty without the
// writeback), and then the store's next writeback (poked as the next write would) must take
// them: what was left was only what was in flight. The deadlines are generous for a loaded
// machine; a passing run waits for neither.
func TestWritebackReachesTheDisk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sync_file_range is Linux's")
	}
	// maxLeft bounds the pages in flight at the last writeback: one per writeback started
	// while the disk still wrote the page the one before ended in (every writebackEvery).
	const maxLeft, deadline = 16, 10 * time.Second
	db := openBatchDB(t)
	ctx := context.Background()
	db.ckpt.close() // its passes would sync the log themselves
	dir := filepath.Dir(db.wal.path)

	for attempt := range 3 {
		control := filepath.Join(dir, fmt.Sprint("control", attempt))
		if err := os.WriteFile(control, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		cf, err := os.Open(control)
		if err != nil {
			t.Fatal(err)
		}
		defer cf.Close()
		if d, err := dirtyPages(cf); errors.Is(err, errNoCachestat) {
			cannotObserve(t, "no cachestat(2) here: %v", err)
		} else if err != nil {
			t.Fatal(err)
		} else if d == 0 && attempt == 0 {
			cannotObserve(t, "the file system of %s keeps no dirty pages (a RAM-backed one?): nothing to observe", dir)
		}

		// 200 rows of 2 KiB: over a thousand pages of the log, far fewer than SQLite's
		// automatic checkpoint (walAutoCheckpoint; the store's own are closed), so that no
		// sync of SQLite's own writes them back.
		for i := range 200 {
			if err := db.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO throttles (key, failures, last_failure_at) VALUES (?, 1, 0)`, fmt.Sprintf("%d:%04d:%02000d", attempt, i, i))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		wf, err := os.Open(db.wal.path)
		if err != nil {
			t.Fatal(err)
		}
		defer wf.Close()
		fi, err := wf.Stat()
		if err != nil {
			t.Fatal(err)
		}
		pages := (fi.Size() + 4095) / 4096
		if pages < 8*maxLeft {
			t.Fatalf("the writes left a log of %d pages, want hundreds: too few to tell a writeback from none", pages)
		}
		if d := waitDirty(t, wf, maxLeft, deadline, nil); d > maxLeft {
			t.Fatalf("the write-ahead log still has %d of its %d pages dirty %v after the writes, want at most %d: its writeback was not started after the last writes",
				d, pages, deadline, maxLeft)
		}
		if d, err := dirtyPages(cf); err != nil {
			t.Fatal(err)
		} else if d == 0 {
			t.Logf("attempt %d: the control file left alone is clean too (the file system was synced meanwhile?): inconclusive", attempt+1)
			continue
		}
		// The log was written back and the file left alone was not. What the last writeback
		// left goes with the next one.
		if d := waitDirty(t, wf, 0, deadline, db.wal.poke); d > 0 {
			t.Fatalf("%d pages of the write-ahead log stay dirty %v after the writes however often its writeback is started", d, deadline)
		}
		return
	}
	t.Fatal("three attempts inconclusive: the control file left alone was written back each time as fast as the log (vm.dirty_expire_centisecs?)")
}

// waitDirty waits until f has at most limit dirty pages, or for timeout, and returns the last
// count; it calls each (when not nil) before every look.
func waitDirty(t *testing.T, f *os.File, limit uint64, timeout time.Duration, each func()) uint64 {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		if each != nil {
			each()
		}
		d, err := dirtyPages(f)
		if err != nil {
			t.Fatal(err)
		}
		if d <= limit || time.Now().After(end) {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
}
