package push_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// barrierStore is the real store, whose code look-ups wait until n of them are under way
// (or a second has passed): it holds concurrent attempts at the moment between the throttle
// and the look-up, where a check-then-spend limiter lets them all through.
type barrierStore struct {
	*sqlstore.DB
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{}
}

func (s *barrierStore) UseDeviceActivation(ctx context.Context, id string, at time.Time) (*latchkey.DeviceActivation, error) {
	s.mu.Lock()
	s.arrived++
	if s.arrived == s.n {
		close(s.all)
	}
	s.mu.Unlock()
	select {
	case <-s.all:
	case <-time.After(time.Second):
	}
	return s.DB.UseDeviceActivation(ctx, id, at)
}

// TestWrongActivationCodesAtOnce: wrong activation codes sent at the same moment from one
// address are tried no more than one after another would be: IPLimit, the rest throttled.
// (The limit was checked before the look-up and spent after it: of 500 sent at once, about
// half were tried.)
func TestWrongActivationCodesAtOnce(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "push.db"), sqlstore.Options{SecretsKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 30
	store := &barrierStore{DB: db, n: n, all: make(chan struct{})}
	mailer, err := mail.New(mail.Options{OutboxDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc := push.New(push.Options{Store: store, Mailer: mailer, Audit: audit.New(db, nil, nil), Hub: push.NewHub(), Key: make([]byte, 32), IPLimit: 10, IPRefill: time.Hour})
	now := time.Now()
	wrong, err := deviceproto.NewCode(rand.Reader) // of the right form, so that it is looked up
	if err != nil {
		t.Fatal(err)
	}
	sigs := make([]*deviceproto.Signed, n)
	reqs := make([]deviceproto.ActivateRequest, n)
	for i := range sigs {
		key, err := deviceproto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := deviceproto.EncodePublicKey(&key.PublicKey)
		reqs[i] = deviceproto.ActivateRequest{Code: wrong, PublicKey: pub, Name: "Guess", Platform: "linux"}
		body, _ := json.Marshal(reqs[i])
		r, _ := http.NewRequest("POST", "http://latchkey.test"+deviceproto.PathActivate, bytes.NewReader(body))
		if err := deviceproto.Sign(r, key, 0, body, now); err != nil {
			t.Fatal(err)
		}
		if sigs[i], err = deviceproto.Parse(r, body, now); err != nil {
			t.Fatal(err)
		}
	}
	outcomes := make([]string, n)
	var wg sync.WaitGroup
	for i := range sigs {
		wg.Go(func() {
			_, err := svc.Redeem(ctx, push.Client{IP: "192.0.2.7"}, latchkey.ActivationNew, sigs[i], reqs[i])
			outcomes[i] = string(latchkey.ErrorCode(err))
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, o := range outcomes {
		count[o]++
	}
	if count[string(latchkey.EThrottled)] != n-10 || len(count) != 2 {
		t.Fatalf("%d wrong codes at once: %v; want 10 tried and %d throttled", n, count, n-10)
	}
}
