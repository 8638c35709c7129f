package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/totp"
)

// benchPassword is every seeded user's password. It is hashed once, with the server's
// parameters, and the one PHC string is stored for every user: the server still runs a full
// argon2id verification per sign-in, which is what the password step measures.
const benchPassword = "correct horse battery staple, bench"

// benchUser is a seeded user with a confirmed authenticator app.
type benchUser struct {
	id       latchkey.UserID
	username string
	secret   []byte // the TOTP seed
}

// benchDevice is a seeded, active Latch device.
type benchDevice struct {
	id   int64
	user int // index into seeder.users
	key  *ecdsa.PrivateKey
}

// seeder writes fixtures straight into the server's database through internal/sqlstore,
// which encrypts TOTP seeds with the same secrets key the server uses. Sessions are stored
// the way internal/login stores them: under the hex HMAC-SHA-256 of "session", 0, token with
// the session key, so a cookie holding the token is a sign-in in progress to the server.
type seeder struct {
	db         *sqlstore.DB
	sessionKey []byte
	prefix     string
	users      []benchUser
}

// parallel runs f(i) for i in [0, n) on w goroutines and returns the first error.
func parallel(ctx context.Context, n, w int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(w, max(n, 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// seedUsers creates n users (usernames PREFIX-u000001...) with one password hash and a
// confirmed TOTP credential each. Step 1 is marked used, so every current code is fresh.
func (s *seeder) seedUsers(ctx context.Context, n int, progress func(done int)) error {
	hash, err := password.New(password.Options{}).Hash(ctx, benchPassword)
	if err != nil {
		return err
	}
	start := len(s.users)
	s.users = append(s.users, make([]benchUser, n)...)
	var done atomic.Int64
	return parallel(ctx, n, 4, func(i int) error {
		u := &latchkey.User{
			Username:     fmt.Sprintf("%s-u%07d", s.prefix, start+i+1),
			Role:         latchkey.RoleUser,
			PasswordHash: hash,
		}
		u.UsernameKey = login.UsernameKey(u.Username)
		u.Email = u.Username + "@bench.example"
		if err := s.db.CreateUser(ctx, u); err != nil {
			return fmt.Errorf("seed user: %w", err)
		}
		secret, err := totp.GenerateSecret()
		if err != nil {
			return err
		}
		c := &latchkey.TOTPCredential{UserID: u.ID, Name: "Authenticator app", Secret: secret}
		if err := s.db.CreateTOTPCredential(ctx, c); err != nil {
			return fmt.Errorf("seed totp credential: %w", err)
		}
		if err := s.db.ConfirmTOTPCredential(ctx, c.ID, 1, time.Now(), nil, false); err != nil {
			return fmt.Errorf("confirm totp credential: %w", err)
		}
		s.users[start+i] = benchUser{id: u.ID, username: u.Username, secret: secret}
		if d := done.Add(1); progress != nil && n >= 100000 && d%int64(n/10) == 0 {
			progress(int(d))
		}
		return nil
	})
}

// seedDevices activates one Latch device for each of the given users, with a key pair made
// here (only the public key reaches the database, as with a real activation).
func (s *seeder) seedDevices(ctx context.Context, users []int) ([]benchDevice, error) {
	out := make([]benchDevice, len(users))
	err := parallel(ctx, len(users), 4, func(i int) error {
		key, err := deviceproto.GenerateKey()
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		seed, err := totp.GenerateSecret()
		if err != nil {
			return err
		}
		u := s.users[users[i]]
		d := &latchkey.Device{UserID: u.id, Name: "Bench device", Platform: "linux", PublicKey: der, State: latchkey.DeviceActive}
		if err := s.db.CreateDevice(ctx, d, &latchkey.TOTPCredential{Name: "Bench device", Secret: seed}); err != nil {
			return fmt.Errorf("seed device: %w", err)
		}
		out[i] = benchDevice{id: d.ID, user: users[i], key: key}
		return nil
	})
	return out, err
}

// keyedHash is internal/login's keyed hash of a token part.
func (s *seeder) keyedHash(purpose, value string) string {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie token made as internal/login makes one ("selector.verifier",
// 256 random bits each) and sets sess's stored ID and verifier, and its public SID (128
// random bits): the completion of a flow keeps the flow's SID, and rotates the row in place
// only when it has one, as every flow the server makes does.
func (s *seeder) newSession(sess *latchkey.Session) (string, error) {
	var parts [2]string
	for i := range parts {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		parts[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	sid := make([]byte, 16)
	if _, err := rand.Read(sid); err != nil {
		return "", err
	}
	sess.ID, sess.Verifier, sess.SID = s.keyedHash("session", parts[0]), s.keyedHash("session-verifier", parts[1]), hex.EncodeToString(sid)
	return parts[0] + "." + parts[1], nil
}

// seedFlows stores, for each user index in users, count sign-ins that passed the password
// step (state second_factor, 10 minutes, as the server makes them) and returns their cookie
// tokens, per entry of users. The TOTP and push scenarios then measure the second step
// alone, without an argon2id hash per request on the client's account.
func (s *seeder) seedFlows(ctx context.Context, users []int, count int) ([][]string, error) {
	out := make([][]string, len(users))
	for i := range out {
		out[i] = make([]string, count)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := parallel(ctx, len(users)*count, 4, func(k int) error {
		i, j := k/count, k%count
		sess := &latchkey.Session{
			UserID: s.users[users[i]].id, State: latchkey.StateSecondFactor,
			AMR: []string{latchkey.AMRPassword}, PasswordAt: now, CreatedAt: now, LastSeenAt: now,
			ExpiresAt: now.Add(10 * time.Minute), IP: "127.0.0.1", UserAgent: userAgent,
		}
		tok, err := s.newSession(sess)
		if err != nil {
			return err
		}
		if err := s.db.CreateSession(ctx, sess); err != nil {
			return fmt.Errorf("seed session: %w", err)
		}
		out[i][j] = tok
		return nil
	})
	return out, err
}
