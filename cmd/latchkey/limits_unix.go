//go:build unix

package main

import "syscall"

// descriptorLimit returns the process's limit of open files (its soft limit, which the Go
// runtime raises to the hard limit at start), or 0 if it cannot be read or is unlimited.
func descriptorLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	n := uint64(l.Cur) // int64 on some systems
	if n == 0 || n >= 1<<62 {
		return 0
	}
	return n
}
