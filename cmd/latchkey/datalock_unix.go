//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockData makes sure one serve at a time uses the SQLite database in dir: a second server
// on the same file would keep its own caches (sessions, the TOTP replay guard's recent codes,
// throttles) and miss the first one's revocations. The lock (flock on dir/latchkey.lock) goes
// with the process, however it ends; the admin commands do not take it. Several nodes share
// PostgreSQL, never a SQLite file.
func lockData(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "latchkey.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another latchkey serve is using the data folder %s: stop it first, or give this one its own --data (several nodes share PostgreSQL, not a SQLite file)", dir)
		}
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	return func() { f.Close() }, nil
}
