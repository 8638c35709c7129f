package sqlstore

import (
	"os"

	"golang.org/x/sys/unix"
)

const canStartWriteback = true

// startWriteback starts writing f's dirty pages to the disk and returns without waiting for
// them (sync_file_range(2) with SYNC_FILE_RANGE_WRITE, from its start to its end).
func startWriteback(f *os.File) error {
	return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
