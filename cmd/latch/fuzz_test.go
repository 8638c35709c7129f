package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fuzzPassphrase opens the vaults of FuzzVaultLoad.
const fuzzPassphrase = "fuzz passphrase"

// fuzzVault makes a real vault (cheap argon2id parameters, so the fuzzer can derive keys) and
// returns its file and the state in it.
func fuzzVault(f *testing.F) ([]byte, *State) {
	home := f.TempDir()
	st := &State{
		Accounts:      []Account{{Issuer: "Example", Name: "bob", Secret: []byte("12345678901234567890"), Digits: 6, Period: 30, Algorithm: "SHA1"}},
		Registrations: []Registration{{Server: "https://login.example.com", DeviceID: 7, Username: "alice", PrivateKey: []byte{1, 2, 3}, State: "active", AddedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
	}
	v := &Vault{home: home, passphrase: func() (string, error) { return fuzzPassphrase, nil }}
	// Cheap parameters, set the way Save sets them, so that every fuzz input is fast to derive.
	v.header = vaultHeader{Format: "latch-vault-1", KDF: "argon2id", Memory: 64, Time: 1, Threads: 1, Salt: bytes.Repeat([]byte{1}, 16), Source: sourcePassphrase}
	v.key = v.derive(fuzzPassphrase)
	if err := v.Save(st); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(home, vaultFile))
	if err != nil {
		f.Fatal(err)
	}
	return raw, st
}

// FuzzVaultLoad feeds arbitrary vault files to Vault.Load, as a tampered or corrupted
// vault.json would: it never panics and never hangs on the file's own KDF parameters; it
// returns the saved state only for the untouched file, and an error for anything that does
// not authenticate.
func FuzzVaultLoad(f *testing.F) {
	good, want := fuzzVault(f)
	f.Add(good)
	var vf vaultFileJSON
	if err := json.Unmarshal(good, &vf); err != nil {
		f.Fatal(err)
	}
	mutate := func(m func(*vaultFileJSON)) {
		c := vf
		c.Header.Salt, c.Header.Nonce, c.Ciphertext = bytes.Clone(vf.Header.Salt), bytes.Clone(vf.Header.Nonce), bytes.Clone(vf.Ciphertext)
		m(&c)
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	mutate(func(c *vaultFileJSON) { c.Header.Nonce = c.Header.Nonce[:5] }) // short nonce
	mutate(func(c *vaultFileJSON) { c.Header.Nonce = nil })                // no nonce
	mutate(func(c *vaultFileJSON) { c.Header.Threads = 0 })                // argon2 refuses
	mutate(func(c *vaultFileJSON) { c.Header.Time = 0 })                   // argon2 refuses
	mutate(func(c *vaultFileJSON) { c.Header.Memory = 1 << 31 })           // 2 TiB
	mutate(func(c *vaultFileJSON) { c.Header.Time = 1 << 30 })             // forever
	mutate(func(c *vaultFileJSON) { c.Header.Source = sourceKeyring })     // header altered
	mutate(func(c *vaultFileJSON) { c.Ciphertext[0] ^= 1 })                // ciphertext altered
	mutate(func(c *vaultFileJSON) { c.Ciphertext = c.Ciphertext[:3] })     // truncated
	mutate(func(c *vaultFileJSON) { c.Header.Salt = nil })                 // no salt
	mutate(func(c *vaultFileJSON) { c.Header.Format = "latch-vault-2" })   // unknown format
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"header":{"format":"latch-vault-1","kdf":"argon2id"}}`, `{"header":{"format":"latch-vault-1","kdf":"argon2id","threads":300}}`} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// The KDF parameters are the file's. Load must refuse absurd ones (see the seeds)
		// without deriving anything; within the bounds it accepts (those of password.DecodeHash:
		// 1 GiB, 16 passes), skip the expensive ones, so that a run measures the parser and
		// not argon2id.
		var peek vaultFileJSON
		if json.Unmarshal(data, &peek) == nil && peek.Header.Memory <= 1<<20 && peek.Header.Time <= 16 &&
			(peek.Header.Memory > 4096 || peek.Header.Time > 4) {
			return
		}
		home := t.TempDir()
		if err := os.WriteFile(filepath.Join(home, vaultFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		asked := false
		v := &Vault{home: home, passphrase: func() (string, error) { asked = true; return fuzzPassphrase, nil }}
		done := make(chan struct{})
		var st *State
		var err error
		go func() {
			defer close(done)
			st, err = v.Load()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Load did not return within 10 s: header %+v", peek.Header)
		}
		if err != nil {
			if st != nil {
				t.Fatalf("Load = %+v with error %v", st, err)
			}
			return
		}
		if !asked {
			t.Fatal("Load opened a vault without asking for the passphrase")
		}
		// Only an authentic file opens, and it holds what was saved. (The fuzzer can reformat
		// the JSON around the same values, which is the same vault.)
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("Load = %+v, want %+v", st, want)
		}
	})
}
