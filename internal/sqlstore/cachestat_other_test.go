//go:build !linux

package sqlstore

import (
	"errors"
	"os"
)

var errNoCachestat = errors.New("cachestat(2) is Linux's")

func dirtyPages(*os.File) (uint64, error) { return 0, errNoCachestat }
