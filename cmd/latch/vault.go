package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/argon2"
)

// The vault is one file, <home>/vault.json, mode 0600: a JSON header (format, KDF and its
// parameters, salt, nonce) and the AES-256-GCM ciphertext of the state. The key is derived
// from a passphrase with argon2id; the header is the associated data, so it cannot be altered.
const vaultFile = "vault.json"

// State is everything the app keeps: private keys and seeds.
type State struct {
	Accounts      []Account      `json:"accounts"`
	Registrations []Registration `json:"registrations"`
}

// Account is a plain TOTP account imported with `latch add`.
type Account struct {
	Issuer    string `json:"issuer"`
	Name      string `json:"name"`
	Secret    []byte `json:"secret"`
	Digits    int    `json:"digits"`
	Period    int    `json:"period"`
	Algorithm string `json:"algorithm"`
}

// Registration is this device's binding to a Latchkey account.
type Registration struct {
	Server     string    `json:"server"`
	DeviceID   int64     `json:"device_id"`
	Username   string    `json:"username"`
	Issuer     string    `json:"issuer"`
	Name       string    `json:"name"`
	PrivateKey []byte    `json:"private_key"` // PKCS#8 DER
	Seed       []byte    `json:"seed,omitempty"`
	State      string    `json:"state"`
	AddedAt    time.Time `json:"added_at"`
}

type vaultHeader struct {
	Format  string `json:"format"` // "latch-vault-1"
	KDF     string `json:"kdf"`    // "argon2id"
	Memory  uint32 `json:"memory_kib"`
	Time    uint32 `json:"time"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
	Nonce   []byte `json:"nonce"`
}

type vaultFileJSON struct {
	Header     vaultHeader `json:"header"`
	Ciphertext []byte      `json:"ciphertext"`
}

// Vault opens and saves the state under a home folder.
type Vault struct {
	home       string
	passphrase func() (string, error)
	header     vaultHeader
	key        []byte
}

var errWrongPassphrase = errors.New("the vault could not be opened: wrong passphrase (LATCH_PASSPHRASE), or the file was altered")

func (v *Vault) path() string { return filepath.Join(v.home, vaultFile) }

func (v *Vault) derive(pass string) []byte {
	return argon2.IDKey([]byte(pass), v.header.Salt, v.header.Time, v.header.Memory, v.header.Threads, 32)
}

func aad(h vaultHeader) []byte {
	h.Nonce = nil
	b, _ := json.Marshal(h)
	return b
}

// Load reads the state; a missing vault is an empty state.
func (v *Vault) Load() (*State, error) {
	raw, err := os.ReadFile(v.path())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	} else if err != nil {
		return nil, err
	}
	var f vaultFileJSON
	if err := json.Unmarshal(raw, &f); err != nil || f.Header.Format != "latch-vault-1" || f.Header.KDF != "argon2id" {
		return nil, fmt.Errorf("%s is not a Latch vault", v.path())
	}
	v.header = f.Header
	if v.key == nil {
		pass, err := v.passphrase()
		if err != nil {
			return nil, err
		}
		v.key = v.derive(pass)
	}
	block, _ := aes.NewCipher(v.key)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, f.Header.Nonce, f.Ciphertext, aad(f.Header))
	if err != nil {
		return nil, errWrongPassphrase
	}
	var st State
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("vault content: %w", err)
	}
	return &st, nil
}

// Save writes the state atomically (a temporary file renamed over the vault), mode 0600.
func (v *Vault) Save(st *State) error {
	if err := os.MkdirAll(v.home, 0o700); err != nil {
		return err
	}
	if v.key == nil {
		pass, err := v.passphrase()
		if err != nil {
			return err
		}
		v.header = vaultHeader{Format: "latch-vault-1", KDF: "argon2id", Memory: 64 * 1024, Time: 2, Threads: 1, Salt: make([]byte, 16)}
		if _, err := rand.Read(v.header.Salt); err != nil {
			return err
		}
		v.key = v.derive(pass)
	}
	v.header.Nonce = make([]byte, 12)
	if _, err := rand.Read(v.header.Nonce); err != nil {
		return err
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return err
	}
	block, _ := aes.NewCipher(v.key)
	gcm, _ := cipher.NewGCM(block)
	out, err := json.MarshalIndent(vaultFileJSON{Header: v.header, Ciphertext: gcm.Seal(nil, v.header.Nonce, plain, aad(v.header))}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(v.home, ".vault-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), v.path())
}
