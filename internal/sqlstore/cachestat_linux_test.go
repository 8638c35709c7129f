package sqlstore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var errNoCachestat = errors.New("cachestat(2) unsupported")

// dirtyPages is the count of f's pages that are dirty in the page cache (cachestat(2)).
func dirtyPages(f *os.File) (uint64, error) {
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0)
	if errors.Is(err, unix.ENOSYS) {
		return 0, fmt.Errorf("%w: %v", errNoCachestat, err)
	}
	return st.Dirty, err
}
