package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const userAgent = "latchkey-bench/1"

// The harness plays many users behind one reverse proxy: the server trusts 127.0.0.1 (see
// writeConfig), and every request of a simulated client carries that client's own address in
// X-Forwarded-For, so the per-IP limits of internal/login see distinct users rather than one
// address shared by all of them.

// clientAddrKey is the context key of the simulated client's address.
type clientAddrKey struct{}

// clientAddr is the address of worker w of the scenario whose --only name has index i in
// scenarioNames: 10.(i+1).hi.lo, where hi.lo is w (modulo 65,536). Each scenario has its own
// addresses, so the failures of one cannot throttle the next.
func clientAddr(i, w int) string { return fmt.Sprintf("10.%d.%d.%d", i+1, w>>8&0xff, w&0xff) }

// newRequest is http.NewRequestWithContext with the harness's User-Agent and, when ctx
// carries one (drive's workers), the simulated client's address in X-Forwarded-For.
func newRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	if a, ok := ctx.Value(clientAddrKey{}).(string); ok {
		req.Header.Set("X-Forwarded-For", a)
	}
	return req, nil
}

// outcome is how one request (or round trip) ended.
type outcome int

const (
	okay      outcome = iota // the expected answer
	throttled                // 429: reported apart, never counted as a success
	failed                   // anything else: an error of the harness or the server
	exhausted                // the worker has nothing left to send (its user pool is spent)
	cut                      // cancelled at the end of a flood; neither success nor error
)

// stats are the results of one scenario.
type stats struct {
	ok, throttled, failed, cut int
	elapsed                    time.Duration
	lat                        []time.Duration // of successes, sorted
	errs                       map[string]int  // failure messages and their counts
	exhaustedEarly             bool
	peakRSS                    uint64
	cpu                        cpuUse // where the cores went (cpu.go)
	// writer is the share of the time SQLite's batch writer was busy (writer.go); -1 when
	// not known (PostgreSQL).
	writer float64
}

// rate is successes per second; 0 for a scenario that did not run (nil).
func (s *stats) rate() float64 {
	if s == nil || s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

// pct is the p-quantile of the successes' latencies; 0 for none or a scenario that did not
// run (nil).
func (s *stats) pct(p float64) time.Duration {
	if s == nil || len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p+0.5) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// firstErrors lists up to three failure messages, for the report.
func (s *stats) firstErrors() string {
	type kv struct {
		msg string
		n   int
	}
	var all []kv
	for m, n := range s.errs {
		all = append(all, kv{m, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
	var b bytes.Buffer
	for i, e := range all {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "%d× %s; ", e.n, e.msg)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("; ")))
}

// step is one request (or round trip) of worker w. It returns the outcome, the latency to
// record (for successes) and, for failures, a message.
type step func(ctx context.Context, w int) (outcome, time.Duration, string)

// drive runs c workers of the named scenario (one of scenarioNames) calling f in a loop for
// d, measuring the peak memory of the nodes pids (peak.go) and reading the batch writer's
// time from the metrics of the nodes at their URLs (writer.go); worker w's requests come
// from clientAddr(scenario, w). A worker starts no new request after d; the requests in flight
// finish and count (elapsed runs until the last one ends).
// With cancel, requests still in flight at d are cancelled instead and counted as cut (a
// flood).
func drive(ctx context.Context, pids []int, nodes urls, scenario string, c int, d time.Duration, cancelAtEnd bool, f step) *stats {
	si := scenarioIndex(scenario)
	st := &stats{errs: map[string]int{}}
	var mu sync.Mutex
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	smp := measurePeak(pids...)
	writer0 := readWriter(ctx, nodes)
	cpu0 := readCPU(pids)
	begin := time.Now()
	deadline := begin.Add(d)
	if cancelAtEnd {
		t := time.AfterFunc(d, stop)
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			var lat []time.Duration
			var ok, thr, fail, cutN int
			errs := map[string]int{}
			early := false
			wctx := context.WithValue(rctx, clientAddrKey{}, clientAddr(si, w))
			for time.Now().Before(deadline) && rctx.Err() == nil {
				o, l, msg := f(wctx, w)
				switch o {
				case okay:
					ok++
					lat = append(lat, l)
				case throttled:
					thr++
				case failed:
					if rctx.Err() != nil && cancelAtEnd {
						cutN++
						continue
					}
					fail++
					errs[msg]++
				case cut:
					cutN++
				case exhausted:
					early = true
				}
				if o == exhausted {
					break
				}
			}
			mu.Lock()
			st.ok += ok
			st.throttled += thr
			st.failed += fail
			st.cut += cutN
			st.lat = append(st.lat, lat...)
			for m, n := range errs {
				st.errs[m] += n
			}
			st.exhaustedEarly = st.exhaustedEarly || early
			mu.Unlock()
		})
	}
	wg.Wait()
	st.cpu = since(cpu0, readCPU(pids), st.ok)
	st.writer = writerBusy(writer0, readWriter(ctx, nodes))
	st.elapsed = time.Since(begin)
	if cancelAtEnd {
		st.elapsed = min(st.elapsed, d)
	}
	st.peakRSS = smp.Stop()
	slices.Sort(st.lat)
	return st
}

// scenarioIndex is the index of the named scenario in scenarioNames, which its clients'
// addresses carry (clientAddr).
func scenarioIndex(scenario string) int {
	si := slices.Index(scenarioNames, scenario)
	if si < 0 {
		panic("bench: unknown scenario " + scenario)
	}
	return si
}

// warmUp runs f once on each of c workers of the named scenario, unmeasured, and returns how
// many did not succeed. A process's first argon2id hashes run slower than the later ones (see
// rawArgon2, whose reference leaves its first ones uncounted for that reason): the password
// step, the server's first hashes, is measured after a warm-up as well, or its ratio would set
// a cold server against a warm reference.
func warmUp(ctx context.Context, c int, scenario string, f step) int {
	si := scenarioIndex(scenario)
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			if o, _, _ := f(context.WithValue(ctx, clientAddrKey{}, clientAddr(si, w)), w); o != okay {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// newClient returns an HTTP client that keeps up to conns connections to the server.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// apiResult is an answer of the JSON API.
type apiResult struct {
	status int
	body   map[string]any
	cookie string // the new session token, when the answer set one
	raw    []byte
}

// errorCode returns the JSON error code of a failed answer.
func (r *apiResult) errorCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		if c, ok := e["code"].(string); ok {
			return c
		}
	}
	return ""
}

// call sends a JSON request with the session token (if any) as the cookie a browser holds.
func call(ctx context.Context, c *http.Client, method, url, token string, body any) (*apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := newRequest(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: "latchkey_session", Value: token})
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &apiResult{status: resp.StatusCode, raw: raw}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &r.body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "latchkey_session" {
			r.cookie = ck.Value
		}
	}
	return r, nil
}

// classify maps an answer to an outcome: 200 with the wanted state is a success, 429 is
// throttled, everything else a failure with a short message.
func classify(r *apiResult, err error, wantState string) (outcome, string) {
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return cut, ""
		}
		return failed, err.Error()
	}
	switch {
	case r.status == http.StatusTooManyRequests:
		return throttled, ""
	case r.status != http.StatusOK:
		return failed, fmt.Sprintf("HTTP %d %s", r.status, r.errorCode())
	case wantState != "" && r.body["state"] != wantState:
		return failed, fmt.Sprintf("state %v, want %s", r.body["state"], wantState)
	}
	return okay, ""
}
