//go:build !unix

package main

// descriptorLimit is unknown where there is no getrlimit: the listener is not limited.
func descriptorLimit() uint64 { return 0 }
