package login

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey/latchkey"
)

// WebAuthn ceremonies: the challenge the server sent, kept until the browser's answer.
//
// What a ceremony costs its starter bounds what a flood of starts can cost the server:
//   - a ceremony of a session (adding a key, the second step, confirming a reset) is stored
//     under an ID keyed with the session and the kind, so that a new one replaces the
//     session's earlier one: a session holds one row of each kind at most, however often it
//     starts;
//   - a passkey sign-in has no session yet, and anyone may start one. Its ceremony is not
//     stored at all: it travels sealed (AES-GCM under a key derived from the session key) in
//     its own ID, with its expiry. Only its answer writes a row, to refuse a second answer,
//     and answers are throttled per address.

const sealedPrefix = "pk1."

// startCeremony keeps the library's session data for the ceremony's answer and returns the
// ceremony's ID.
func (s *Service) startCeremony(ctx context.Context, kind string, userID latchkey.UserID, sessionID string, data *webauthn.SessionData) (string, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	expires := s.now().Add(ceremonyTTL)
	if sessionID == "" {
		return s.sealCeremony(kind, raw, expires)
	}
	id := hex.EncodeToString(s.keyedHash("webauthn ceremony", kind+"\x00"+sessionID)[:16])
	c := &latchkey.WebAuthnCeremony{ID: id, Kind: kind, UserID: userID, SessionID: sessionID, Data: raw, ExpiresAt: expires}
	if err := s.opt.Store.PutWebAuthnCeremony(ctx, c); err != nil {
		return "", fmt.Errorf("store webauthn ceremony: %w", err)
	}
	return c.ID, nil
}

// takeCeremony consumes a ceremony, which must be of that kind, for that user and session,
// and not expired. Whatever the outcome, it cannot be answered again.
func (s *Service) takeCeremony(ctx context.Context, id, kind string, userID latchkey.UserID, sessionID string) (*webauthn.SessionData, error) {
	if strings.HasPrefix(id, sealedPrefix) {
		if sessionID != "" || userID != 0 {
			return nil, errCeremony
		}
		return s.takeSealed(ctx, id, kind)
	}
	if id == "" || len(id) > 64 {
		return nil, errCeremony
	}
	c, err := s.opt.Store.TakeWebAuthnCeremony(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return nil, errCeremony
	} else if err != nil {
		return nil, fmt.Errorf("take webauthn ceremony: %w", err)
	}
	if c.Kind != kind || c.UserID != userID || c.SessionID != sessionID || !s.now().Before(c.ExpiresAt) {
		return nil, errCeremony
	}
	var data webauthn.SessionData
	if err := json.Unmarshal(c.Data, &data); err != nil {
		return nil, fmt.Errorf("webauthn ceremony data: %w", err)
	}
	return &data, nil
}

// maxSealed bounds a sealed ceremony ID: the library's session data is a few hundred bytes.
const maxSealed = 2048

// sealCeremony returns the ID that carries the ceremony: sealedPrefix, then in base64url the
// nonce and the sealed expiry and data, with the kind as associated data.
func (s *Service) sealCeremony(kind string, raw []byte, expires time.Time) (string, error) {
	aead := s.ceremonyAEAD()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+8+len(raw)+aead.Overhead())
	if _, err := io.ReadFull(s.opt.Rand, nonce); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(raw)), uint64(expires.UnixMilli()))
	plain = append(plain, raw...)
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(kind))), nil
}

// takeSealed opens a sealed ceremony of kind, checks its expiry, and records it as answered:
// a second answer with the same ID is refused. The record lives until the ceremony would
// have expired.
func (s *Service) takeSealed(ctx context.Context, id, kind string) (*webauthn.SessionData, error) {
	if len(id) > maxSealed {
		return nil, errCeremony
	}
	// One ceremony has one spelling: the lenient decoder skips \r and \n and ignores the
	// unused low bits of the last character, so another spelling of the same box would get a
	// used record of its own and the answer would count again. The record is named after the
	// decoded box too, not the text.
	enc := id[len(sealedPrefix):]
	if strings.IndexFunc(enc, notBase64URL) >= 0 {
		return nil, errCeremony
	}
	box, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	aead := s.ceremonyAEAD()
	if err != nil || len(box) < aead.NonceSize()+aead.Overhead()+8 {
		return nil, errCeremony
	}
	plain, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], []byte(kind))
	if err != nil {
		return nil, errCeremony
	}
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(plain))).UTC()
	if !s.now().Before(expires) {
		return nil, errCeremony
	}
	var data webauthn.SessionData
	if err := json.Unmarshal(plain[8:], &data); err != nil {
		return nil, errCeremony
	}
	sum := sha256.Sum256(box)
	used := &latchkey.WebAuthnCeremony{ID: "used-" + hex.EncodeToString(sum[:16]), Kind: kind, Data: []byte("{}"), ExpiresAt: expires}
	if err := s.opt.Store.CreateWebAuthnCeremony(ctx, used); latchkey.ErrorCode(err) == latchkey.EConflict {
		return nil, errCeremony
	} else if err != nil {
		return nil, fmt.Errorf("record webauthn ceremony: %w", err)
	}
	return &data, nil
}

// notBase64URL reports whether r is outside the unpadded base64url alphabet.
func notBase64URL(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
}

// ceremonyAEAD returns the AES-256-GCM of sealed ceremonies, keyed from the session key.
func (s *Service) ceremonyAEAD() cipher.AEAD {
	s.sealOnce.Do(func() {
		block, err := aes.NewCipher(s.keyedHash("webauthn ceremony seal", ""))
		if err != nil {
			panic(err) // a 32-byte key always makes a cipher
		}
		if s.seal, err = cipher.NewGCM(block); err != nil {
			panic(err)
		}
	})
	return s.seal
}
