package sqlstore

import (
	"os"
	"sync"
	"time"
)

// Writeback of the write-ahead log, ahead of the checkpoints' syncs (SQLite only).
//
// With synchronous=NORMAL a commit writes its pages to the write-ahead log and syncs nothing:
// they wait in the kernel's page cache, dirty, for up to dirty_expire_centisecs (30 s by
// default). A checkpoint syncs the log, copies its pages into the database file and syncs
// that. Its first sync then wrote the whole log's worth of dirty pages (~4 MiB) while it
// waited, 2–4 ms on the development machine, and until the store ran its own checkpoints
// (checkpoint.go) the connection that waited was the batch writer's, with every request
// queued behind it; the checkpointer's last step, in the writers' turn, still syncs the log
// (docs/performance-history.md, "The twenty-fourth session").
//
// So after the process's writes the store asks the kernel to start writing the log's dirty
// pages back now (sync_file_range with SYNC_FILE_RANGE_WRITE on Linux: it starts the writes
// and does not wait for them), at most every writebackEvery. When the checkpoint's sync comes,
// most of the log is on the disk already and the sync waits for the rest only. (The rest
// includes the odd page written again while its write was in flight, which that call does not
// start again: the page a writeback ends in is shared with the next commit's frame. It goes
// with the next writeback, or with that sync.) Durability is
// unchanged: nothing is reported written that was not before, SQLite's syncs run as before,
// and a crash loses no more and no less. PostgreSQL does the same for its own log and data
// files (wal_writer_flush_after, checkpoint_flush_after).
//
// The log is opened read-only on a descriptor of the store's own and kept open until Close:
// closing a descriptor of a file drops every POSIX lock the process holds on it, and SQLite
// takes none on the log (its locks are on the database file and the shared-memory index),
// but the descriptor is still never closed while SQLite's connections may use the file,
// except when the log was replaced (another inode) and the old one is gone.

// writebackEvery is the least time between two writebacks started.
const writebackEvery = 10 * time.Millisecond

// writeback starts the writeback of a file's dirty pages after writes (poke), in a goroutine
// of its own.
type writeback struct {
	path  string
	poked chan struct{}
	stop  chan struct{}
	once  sync.Once // Close may run twice
	done  sync.WaitGroup
	// start starts the writeback of f's dirty pages (startWriteback; replaced in tests).
	start func(f *os.File) error
	// rest, nil but in the tests, is asked while run waits for a poke whether none is
	// pending: then, until the next write, run starts no writeback (waitRest).
	rest chan chan bool
}

// newWriteback starts the writeback goroutine of path; nil where the system has no way to
// start a writeback without waiting for it.
func newWriteback(path string) *writeback {
	if !canStartWriteback {
		return nil
	}
	w := &writeback{path: path, poked: make(chan struct{}, 1), stop: make(chan struct{}), start: startWriteback}
	w.done.Go(w.run)
	return w
}

// poke tells w that the file was written. It never blocks.
func (w *writeback) poke() {
	if w == nil {
		return
	}
	select {
	case w.poked <- struct{}{}:
	default:
	}
}

// close stops w and closes its descriptor. Calls after the first do nothing.
func (w *writeback) close() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.stop) })
	w.done.Wait()
}

// run starts a writeback after each poke, at most every writebackEvery, until close. An idle
// store wakes it never.
func (w *writeback) run() {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.poked:
		case answer := <-w.rest:
			answer <- len(w.poked) == 0 // only run takes pokes: none can go meanwhile
			continue
		}
		f = w.file(f)
		if f != nil {
			w.start(f) // a failure costs the speed-up only: the checkpoint's sync still writes
		}
		t.Reset(writebackEvery)
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// file returns the descriptor of w's file: f, or the file opened again when it is not f's
// (SQLite deletes the log when its last connection closes and creates it again); nil when
// there is none.
func (w *writeback) file(f *os.File) *os.File {
	fi, err := os.Stat(w.path)
	if err != nil {
		return f
	}
	if f != nil {
		if cur, err := f.Stat(); err == nil && os.SameFile(fi, cur) {
			return f
		}
	}
	g, err := os.Open(w.path)
	if err != nil {
		return f
	}
	if f != nil {
		f.Close()
	}
	return g
}
