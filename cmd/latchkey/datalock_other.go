//go:build !unix

package main

// lockData is a no-op where flock is not available: run one serve per data folder.
func lockData(string) (func(), error) { return func() {}, nil }
