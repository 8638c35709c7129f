package main

import (
	"errors"
	"time"

	"github.com/zalando/go-keyring"
)

// keyringService names Latch's entries in the OS keyring: the macOS Keychain, the Windows
// Credential Manager, or the freedesktop Secret Service (GNOME Keyring, KWallet) over D-Bus.
const keyringService = "latch"

// osKeyring is the OS keyring. Every call has a time limit, so a keyring that waits for an
// unlock dialog nobody sees (a locked collection over SSH) fails instead of hanging latch.
type osKeyring struct{ timeout time.Duration }

var errKeyringTimeout = errors.New("the OS keyring did not answer in time")

func (k osKeyring) call(f func() (string, error)) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := f()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(k.timeout):
		return "", errKeyringTimeout
	}
}

func (k osKeyring) Get(account string) (string, error) {
	return k.call(func() (string, error) { return keyring.Get(keyringService, account) })
}

func (k osKeyring) Set(account, secret string) error {
	_, err := k.call(func() (string, error) { return "", keyring.Set(keyringService, account, secret) })
	return err
}
