package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/argon2"
)

// The vault is one file, <home>/vault.json, mode 0600: a JSON header (format, KDF and its
// parameters, salt, where the passphrase is kept, nonce) and the AES-256-GCM ciphertext of the
// state. The key is derived from a passphrase with argon2id; the header is the associated data,
// so it cannot be altered.
//
// The passphrase comes, as SPEC.md orders it, from LATCH_PASSPHRASE when set, else the OS
// keyring (a random 256-bit passphrase made when the vault is created, kept under the service
// "latch" and the vault's absolute path), else a prompt on the terminal.
const vaultFile = "vault.json"

// Where a vault's passphrase is kept (vaultHeader.Source).
const (
	sourcePassphrase = "passphrase" // LATCH_PASSPHRASE or typed; "" in vaults made before the keyring
	sourceKeyring    = "keyring"
)

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
	Source  string `json:"source,omitempty"`
	Nonce   []byte `json:"nonce"`
}

type vaultFileJSON struct {
	Header     vaultHeader `json:"header"`
	Ciphertext []byte      `json:"ciphertext"`
}

// Vault opens and saves the state under a home folder.
type Vault struct {
	home string
	// passphrase is LATCH_PASSPHRASE or a prompt; nil means none is available.
	passphrase func() (string, error)
	// env reports whether LATCH_PASSPHRASE is set, which puts it before the keyring.
	env bool
	// ring is the OS keyring; nil when it is not to be used.
	ring   secretStore
	header vaultHeader
	key    []byte
}

// secretStore is where a vault's passphrase can be kept: the OS keyring (keyring.go).
type secretStore interface {
	Get(account string) (string, error)
	Set(account, secret string) error
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

func (v *Vault) account() string {
	if abs, err := filepath.Abs(v.path()); err == nil {
		return abs
	}
	return v.path()
}

// openPassphrase finds the passphrase of an existing vault: LATCH_PASSPHRASE when set, else
// the keyring for a vault whose passphrase is kept there, else the prompt.
func (v *Vault) openPassphrase() (string, error) {
	if v.header.Source == sourceKeyring && !v.env {
		if v.ring == nil {
			return "", errors.New("this vault's passphrase is kept in the OS keyring; run latch where that keyring is available, or set LATCH_PASSPHRASE")
		}
		p, err := v.ring.Get(v.account())
		if err != nil {
			return "", fmt.Errorf("this vault's passphrase is kept in the OS keyring, which could not give it: %w", err)
		}
		return p, nil
	}
	if v.passphrase == nil {
		return "", errors.New("set LATCH_PASSPHRASE, or run latch in a terminal to type the vault's passphrase")
	}
	return v.passphrase()
}

// newPassphrase chooses the passphrase of a new vault: LATCH_PASSPHRASE when set, else a random
// one kept in the OS keyring, else the prompt.
func (v *Vault) newPassphrase() (pass, source string, err error) {
	if !v.env && v.ring != nil {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", "", err
		}
		pass = base64.RawStdEncoding.EncodeToString(b)
		if err := v.ring.Set(v.account(), pass); err == nil {
			return pass, sourceKeyring, nil
		}
	}
	if v.passphrase == nil {
		return "", "", errors.New("no OS keyring is available: set LATCH_PASSPHRASE, or run latch in a terminal to choose the vault's passphrase")
	}
	pass, err = v.passphrase()
	return pass, sourcePassphrase, err
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
	// The header is read before it is authenticated: bound what it may ask of argon2id (which
	// panics on 0 passes or threads) and of AES-GCM (which panics on a nonce of another size).
	if h := f.Header; len(h.Nonce) != 12 || h.Time < 1 || h.Time > 16 || h.Threads < 1 || h.Threads > 16 || h.Memory > 1<<20 {
		return nil, fmt.Errorf("%s is not a Latch vault: its parameters are out of range", v.path())
	}
	v.header = f.Header
	if v.key == nil {
		pass, err := v.openPassphrase()
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

// Prepare makes sure the vault has its key: a vault that does not exist yet chooses its
// passphrase now (newPassphrase). Commands that change something outside the vault before
// they save (activate registers a key with the server) call it first, so that a passphrase
// that cannot be had fails them before that change, not after it.
func (v *Vault) Prepare() error {
	if v.key != nil {
		return nil
	}
	h := vaultHeader{Format: "latch-vault-1", KDF: "argon2id", Memory: 64 * 1024, Time: 2, Threads: 1, Salt: make([]byte, 16)}
	if _, err := rand.Read(h.Salt); err != nil {
		return err
	}
	pass, source, err := v.newPassphrase()
	if err != nil {
		return err
	}
	h.Source = source
	v.header = h
	v.key = v.derive(pass)
	return nil
}

// Save writes the state atomically (a temporary file renamed over the vault), mode 0600.
func (v *Vault) Save(st *State) error {
	if err := os.MkdirAll(v.home, 0o700); err != nil {
		return err
	}
	if err := v.Prepare(); err != nil {
		return err
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
