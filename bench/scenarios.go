package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/totp"
	"golang.org/x/crypto/argon2"

	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/password/argon2id"
)

// healthz is the HTTP ceiling: the cheapest route of the same server.
func healthzStep(c *http.Client, base urls) step {
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		req, _ := newRequest(ctx, "GET", base.at(w)+"/healthz", nil)
		t := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return failed, 0, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l := time.Since(t)
		if resp.StatusCode != 200 {
			return failed, 0, fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		return okay, l, ""
	}
}

// passwordStep signs in a random seeded user with the password: one argon2id verification
// on the server, answered with state second_factor (every seeded user has TOTP).
func passwordStep(c *http.Client, base urls, users []benchUser) step {
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		u := users[rand.IntN(len(users))]
		t := time.Now()
		r, err := call(ctx, c, "POST", base.at(w)+"/api/v1/login", "", map[string]string{"username": u.username, "password": benchPassword})
		l := time.Since(t)
		o, msg := classify(r, err, "second_factor")
		return o, l, msg
	}
}

// totpPool hands out users for the TOTP step. Each user holds seeded sign-in flows and is used
// by one worker at a time; a code is sent for the lowest step of T-1, T, T+1 above the last
// one that user used, so that no code is ever a replay: each user signs in at most three
// times per 30-second window, plus one more per window that begins during the run.
type totpPool struct {
	users  chan int
	all    []benchUser
	tokens [][]string // per pool entry
	index  []int      // pool entry → user index
	next   []int      // next unused token per pool entry
	last   []int64    // last step used per pool entry
}

func newTOTPPool(all []benchUser, index []int, tokens [][]string) *totpPool {
	p := &totpPool{users: make(chan int, len(index)), all: all, tokens: tokens, index: index,
		next: make([]int, len(index)), last: make([]int64, len(index))}
	for i := range index {
		p.users <- i
	}
	return p
}

// pickStep returns the step to send a code for, or false when the user has none left now.
func pickStep(now time.Time, last int64) (int64, bool) {
	s := totp.Step(now)
	for _, c := range [...]int64{s - 1, s, s + 1} {
		if c <= last {
			continue
		}
		// T-1 turns into T-2 at the window's end: leave it alone in the last 5 seconds, since
		// the server reads its clock later than we do (by the request's latency, which on a
		// loaded machine or under the race detector can pass a second).
		if c == s-1 && time.Unix((s+1)*totp.Period, 0).Sub(now) < 5*time.Second {
			continue
		}
		return c, true
	}
	return 0, false
}

func totpStep(c *http.Client, base urls, p *totpPool) step {
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		for {
			var i int
			select {
			case i = <-p.users:
			default:
				return exhausted, 0, ""
			}
			st, ok := pickStep(time.Now(), p.last[i])
			if !ok || p.next[i] >= len(p.tokens[i]) {
				continue // spent for this run: not put back
			}
			tok := p.tokens[i][p.next[i]]
			p.next[i]++
			code := totp.Code(p.all[p.index[i]].secret, st)
			t := time.Now()
			r, err := call(ctx, c, "POST", base.at(w)+"/api/v1/login/totp", tok, map[string]string{"code": code})
			l := time.Since(t)
			p.last[i] = st
			p.users <- i
			o, msg := classify(r, err, "authenticated")
			if o == okay && r.cookie == "" {
				o, msg = failed, "no new session cookie"
			}
			return o, l, msg
		}
	}
}

// deviceClient is a Latch device as the harness plays it: signed requests with its key.
type deviceClient struct {
	id     int64
	key    *ecdsa.PrivateKey
	base   string
	c      *http.Client
	events chan string // challenge IDs from the event stream
	body   io.Closer
}

func (d *deviceClient) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := newRequest(ctx, method, d.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, deviceproto.Sign(req, d.key, d.id, body, time.Now())
}

// connect opens the device's event stream; with listen, challenge IDs go to d.events.
func (d *deviceClient) connect(ctx context.Context, listen bool) error {
	req, err := d.request(ctx, "GET", deviceproto.PathEvents, nil)
	if err != nil {
		return err
	}
	resp, err := d.c.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Errorf("event stream: HTTP %d %s", resp.StatusCode, b)
	}
	d.body = resp.Body
	if !listen {
		return nil
	}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var event, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "":
				if event == deviceproto.EventChallenge {
					var ch deviceproto.Challenge
					if json.Unmarshal([]byte(data), &ch) == nil {
						select {
						case d.events <- ch.ID:
						default:
						}
					}
				}
				event, data = "", ""
			}
		}
	}()
	return nil
}

func (d *deviceClient) close() {
	if d.body != nil {
		d.body.Close()
	}
}

// answer approves challenge id with number.
func (d *deviceClient) answer(ctx context.Context, id, number string) error {
	body, _ := json.Marshal(deviceproto.AnswerRequest{Decision: deviceproto.DecisionApprove, Number: number})
	req, err := d.request(ctx, "POST", deviceproto.PathAnswer+id+"/answer", body)
	if err != nil {
		return err
	}
	resp, err := d.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ar deviceproto.AnswerResponse
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, &ar) != nil || ar.State != "approved" {
		return fmt.Errorf("answer: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return nil
}

// pushStep is one push round trip for worker w, whose device and seeded sign-in flows are
// its own: the browser starts the push, the device receives the challenge on its event
// stream and approves it with the browser's number, and the browser's long poll answers
// "approved" (signed in). The latency is from the start to the browser's answer. The
// browser's node is worker w's; the device may be connected to another one (runPush).
func pushStep(c *http.Client, base urls, devs []*deviceClient, tokens [][]string) step {
	next := make([]int, len(devs))
	return func(ctx context.Context, w int) (outcome, time.Duration, string) {
		if next[w] >= len(tokens[w]) {
			return exhausted, 0, ""
		}
		tok := tokens[w][next[w]]
		next[w]++
		d := devs[w]
		t := time.Now()
		r, err := call(ctx, c, "POST", base.at(w)+"/api/v1/login/push", tok, nil)
		if o, msg := classify(r, err, ""); o != okay {
			return o, 0, "start push: " + msg
		}
		id, _ := r.body["challenge_id"].(string)
		number, _ := r.body["number"].(string)
		type res struct {
			r   *apiResult
			err error
		}
		browser := make(chan res, 1)
		go func() {
			for {
				r, err := call(ctx, c, "GET", base.at(w)+"/api/v1/login/push/"+id+"?wait=10s", tok, nil)
				if err == nil && r.status == 200 && r.body["state"] == "pending" {
					continue
				}
				browser <- res{r, err}
				return
			}
		}()
		timeout := time.NewTimer(10 * time.Second)
		defer timeout.Stop()
	wait:
		for {
			select {
			case got := <-d.events:
				if got == id {
					break wait
				}
			case <-timeout.C:
				return failed, 0, "the device received no challenge within 10 s"
			case <-ctx.Done():
				return cut, 0, ""
			}
		}
		if err := d.answer(ctx, id, number); err != nil {
			return failed, 0, err.Error()
		}
		b := <-browser
		l := time.Since(t)
		o, msg := classify(b.r, b.err, "approved")
		if o == okay && b.r.cookie == "" {
			o, msg = failed, "no signed-in session cookie"
		}
		return o, l, msg
	}
}

// argon2Env makes the harness's binary measure the raw argon2id rate and exit (argon2Child):
// its value is "DURATION GOROUTINES KERNEL", the kernel "server" or "x-crypto".
const argon2Env = "LATCHKEY_BENCH_ARGON2"

// The kernels rawArgon2 can measure: the server's (internal/password/argon2id, which reuses
// each hash's memory), the password step's reference, and x/crypto's IDKey (which allocates
// it afresh every time), for comparison.
const (
	kernelServer  = "server"
	kernelXCrypto = "x-crypto"
)

// rawArgon2Process measures rawArgon2 with kernel in a new process of this binary and
// returns its rate and the process's ID. The reference runs apart from the harness because
// the harness's heap would slow it down: with x/crypto's kernel the collector runs about
// every two hashes (each allocates 46 MiB) and marks the whole heap each time, and the
// harness holds every seeded user. With a million users held, the same process hashed a
// quarter slower (38 against 50–52/s in a test program), and the million-user run read the
// password step as 125% of its reference. The server's own heap stays small at any number
// of users: it holds none of them.
func rawArgon2Process(ctx context.Context, d time.Duration, g int, kernel string) (float64, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, fmt.Errorf("raw argon2id reference: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", argon2Env, d, g, kernel))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("raw argon2id reference: %w", err)
	}
	var rate float64
	var pid int
	if _, err := fmt.Sscanf(string(out), "%g %d", &rate, &pid); err != nil {
		return 0, 0, fmt.Errorf("raw argon2id reference: unexpected output %q: %w", out, err)
	}
	return rate, pid, nil
}

// argon2Child is the process of rawArgon2Process: when argon2Env is set, it prints the rate
// and its process ID, and exits. main and TestMain call it first.
func argon2Child() {
	v, ok := os.LookupEnv(argon2Env)
	if !ok {
		return
	}
	f := strings.Fields(v)
	var d time.Duration
	var g int
	err := fmt.Errorf("%d fields", len(f))
	if len(f) == 3 {
		if d, err = time.ParseDuration(f[0]); err == nil {
			g, err = strconv.Atoi(f[1])
		}
	}
	if err != nil || d <= 0 || g <= 0 || (f[2] != kernelServer && f[2] != kernelXCrypto) {
		fmt.Fprintf(os.Stderr, "%s=%q: want a duration, a number of goroutines and a kernel (%s or %s)\n", argon2Env, v, kernelServer, kernelXCrypto)
		os.Exit(2)
	}
	fmt.Printf("%g %d\n", rawArgon2(d, g, f[2]), os.Getpid())
	os.Exit(0)
}

// rawArgon2 runs argon2id with the server's parameters on g goroutines for d with kernel,
// and returns hashes per second. Two hashes on each goroutine first are not counted: a
// process's first hashes run slower (its heap grows to hold them and is faulted in, the
// likely cause), and counted they made x/crypto's rate a tenth lower than the process's rate
// once warm, the state the server hashes in after its first second of load.
func rawArgon2(d time.Duration, g int, kernel string) float64 {
	p := password.New(password.Options{}).Params()
	salt := make([]byte, p.SaltLen)
	hash := argon2id.Key
	if kernel == kernelXCrypto {
		hash = argon2.IDKey
	}
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range 2 {
				hash([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
			}
		})
	}
	wg.Wait()
	var mu sync.Mutex
	n := 0
	begin := time.Now()
	for range g {
		wg.Go(func() {
			k := 0
			for time.Since(begin) < d {
				hash([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
				k++
			}
			mu.Lock()
			n += k
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(n) / time.Since(begin).Seconds()
}
