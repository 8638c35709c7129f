//go:build linux

package main

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/pgtest"
)

func TestMain(m *testing.M) {
	argon2Child() // rawArgon2Process runs this binary again
	rssChild()    // and TestPeakMeter
	pgtest.Main(m)
}

// TestQuickRun runs the whole harness in quick mode against a real server (built from
// cmd/latchkey) on SQLite, and checks that the table has every row, every built scenario a
// non-zero rate, and no unexpected errors. Targets are not checked: MISS is a finding, not
// a failure.
func TestQuickRun(t *testing.T) {
	quickRun(t, "SQLite", "--quick", "--devices", "200", "--flood", "300")
}

// TestQuickRunPostgres is the same on PostgreSQL (pgtest), shorter still, with two nodes:
// the clients alternate between them and every push's device is connected to the other node
// than its browser, so the push rows (no errors, a rate above 0) show the fan-out through
// NOTIFY under load.
func TestQuickRunPostgres(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds and runs the server; not in -short mode")
	}
	out := quickRun(t, "PostgreSQL", "--quick", "--db", pgtest.Start(t), "--nodes", "2", "--duration", "500ms", "--users", "100", "--devices", "100", "--flood", "300")
	if !strings.Contains(out, "PostgreSQL, 2 nodes,") || !strings.Contains(out, "2 nodes on one PostgreSQL database") {
		t.Errorf("the report does not say it ran on 2 nodes:\n%s", out)
	}
}

func quickRun(t *testing.T, kind string, args ...string) string {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds and runs the server for ~20 s; not in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb strings.Builder
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	t.Logf("\n%s", out.String())

	// The rows of each table, by its first header cell: the load table and where its cores
	// went (keyed by scenario, and push round trip by its clients too), then the figures.
	tables := map[string]map[string][]string{}
	var rows map[string][]string
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if head := cells[0]; head == "scenario" || head == "where the cores went" || head == "figure" {
			rows = map[string][]string{}
			tables[head] = rows
			continue
		}
		if rows == nil {
			t.Fatalf("a table row before any header: %q", line)
		}
		key := cells[0]
		if len(cells) > 1 && cells[0] == "push round trip" {
			key += " " + cells[1]
		}
		rows[key] = cells
	}
	rows, cores, figures := tables["scenario"], tables["where the cores went"], tables["figure"]

	for _, name := range []string{
		"GET /healthz (HTTP ceiling)",
		"password step (POST /api/v1/login)",
		"password step flood",
		"TOTP step (POST /api/v1/login/totp)",
		"push round trip 1",
		"push round trip 64",
		"forward-auth check (valid session)",
		"OIDC authorization-code flow",
	} {
		c, ok := rows[name]
		if !ok {
			t.Errorf("no row %q", name)
			continue
		}
		if len(c) != 10 {
			t.Errorf("%s: %d cells, want 10: %q", name, len(c), c)
			continue
		}
		// The flood's rate may be 0 on a busy machine: 300 sign-ins queue for 2 hashers, and a
		// short quick run can end before one is done (they are cancelled, not errors).
		if rate, err := strconv.ParseFloat(c[2], 64); err != nil || rate < 0 || (rate == 0 && name != "password step flood") {
			t.Errorf("%s: rate %q, want > 0", name, c[2])
		}
		if c[6] != "0" {
			t.Errorf("%s: %s unexpected errors", name, c[6])
		}
		if !strings.HasPrefix(c[9], "PASS") && !strings.HasPrefix(c[9], "MISS") && c[9] != "–" {
			t.Errorf("%s: result %q, want PASS, MISS or –", name, c[9])
		}
		checkCores(t, kind, name, cores[name])
	}
	if c := figures["raw argon2id (m=47104 KiB, t=1, p=1), 2 goroutines, the server's kernel (memory reused)"]; len(c) < 2 || !strings.Contains(c[1], "the server 64 sign-ins before the step") {
		t.Errorf("the raw argon2id row does not say the server warmed up: %q", c)
	}
	if c := figures["raw argon2id, 2 goroutines, x/crypto's IDKey (46 MiB allocated per hash)"]; len(c) < 2 || !strings.HasSuffix(c[1], "hashes/s (after the password step, in a process of its own)") {
		t.Errorf("no row of x/crypto's raw rate: %q", c)
	}
	for _, prefix := range []string{
		"raw argon2id",
		"start-up to /readyz (" + kind + ", first start)",
		"start-up to /readyz (" + kind + ", restart",
		"idle memory",
		"loaded memory (peak RSS, 64 clients)",
		"loaded memory (peak RSS, 300-client password flood)",
		"connected devices",
		"1,000,000 users",
	} {
		found := false
		for name, c := range figures {
			if strings.HasPrefix(name, prefix) {
				found = true
				if len(c) != 4 {
					t.Errorf("%s: %d cells, want 4", name, len(c))
				} else if prefix != "1,000,000 users" && (c[1] == "" || strings.HasPrefix(c[1], "0.0 ") || strings.HasPrefix(c[1], "–")) {
					t.Errorf("%s: value %q", name, c[1])
				}
			}
		}
		if !found {
			t.Errorf("no figure row starting %q", prefix)
		}
	}
	return out.String()
}

// TestNodesFlag: several nodes need PostgreSQL; worker w uses node w modulo the count.
func TestNodesFlag(t *testing.T) {
	for _, args := range [][]string{{"--nodes", "2"}, {"--nodes", "0"}, {"--nodes", "0", "--db", "postgres://h/db"}} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), "--nodes") {
			t.Errorf("parseFlags(%q) = %v, want an error naming --nodes", args, err)
		}
	}
	o, err := parseFlags([]string{"--nodes", "3", "--db", "postgres://h/db"}, io.Discard)
	if err != nil || o.nodes != 3 {
		t.Fatalf("--nodes 3 on PostgreSQL: %+v, %v", o, err)
	}
	u := urls{"a", "b", "c"}
	if got := []string{u.at(0), u.at(1), u.at(2), u.at(3), u.at(64)}; strings.Join(got, "") != "abcab" {
		t.Errorf("urls.at(0, 1, 2, 3, 64) = %q, want a b c a b", got)
	}
}

// TestParseOnly: --only takes a comma-separated list of scenarios, always adds /healthz (the
// reference of the ratios) and refuses unknown names.
func TestParseOnly(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // the scenarios that run (with --flood and --devices at their defaults)
		wantErr string
	}{
		{"default", nil, scenarioNames, ""},
		{"all", []string{"--only", "all"}, scenarioNames, ""},
		{"some", []string{"--only", "totp, oidc"}, []string{"healthz", "totp", "oidc"}, ""},
		{"healthz alone", []string{"--only", "healthz"}, []string{"healthz"}, ""},
		{"flood with --flood 0", []string{"--only", "flood,password", "--flood", "0"}, []string{"healthz", "password"}, ""},
		{"unknown", []string{"--only", "totp,login"}, nil, `unknown scenario "login"`},
		{"empty item", []string{"--only", "totp,"}, nil, `unknown scenario ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			o, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			var got []string
			for _, n := range scenarioNames {
				if o.runs(n) {
					got = append(got, n)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("parseFlags(%q) runs %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}

// TestSpread: the TOTP step's users are spread over all the users, the same number at every
// --users (--totp-users), so that a million users are compared with a thousand on the same
// sign-ins.
func TestSpread(t *testing.T) {
	o, err := parseFlags([]string{"--users", "1000000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.totpUsers != 1000 {
		t.Errorf("--totp-users defaults to %d, want 1000", o.totpUsers)
	}
	idx := spread(o.users, o.totpUsers)
	if len(idx) != 1000 || idx[0] != 0 || idx[1] != 1000 || idx[999] != 999000 {
		t.Errorf("spread(1000000, 1000) = %d indexes, %v … %v", len(idx), idx[:2], idx[len(idx)-1:])
	}
	if _, err := parseFlags([]string{"--totp-users", "0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--totp-users") {
		t.Errorf("--totp-users 0: %v, want an error naming the flag", err)
	}
}

// TestReportSomeRows: a report of a run with --only prints dashes for the scenarios that did
// not run (nil stats) and does not panic.
func TestReportSomeRows(t *testing.T) {
	o, err := parseFlags([]string{"--only", "totp"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lat := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	r := &report{opt: o, dbKind: "SQLite", idleRSS: 20 << 20,
		healthz: &stats{ok: 1000, elapsed: time.Second, lat: lat, peakRSS: 25 << 20},
		totp:    &stats{ok: 400, throttled: 3, elapsed: time.Second, lat: lat, peakRSS: 30 << 20},
	}
	var out strings.Builder
	r.print(&out)
	if n := r.unexpected(); n != 0 {
		t.Errorf("unexpected() = %d, want 0", n)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if name, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| ") {
			rows[name] += line + "\n"
		}
	}
	for _, name := range []string{"GET /healthz (HTTP ceiling)", "TOTP step (POST /api/v1/login/totp)"} {
		if !strings.Contains(rows[name], "| 1000.0 |") && !strings.Contains(rows[name], "| 400.0 |") {
			t.Errorf("row %q has no rate:\n%s", name, rows[name])
		}
	}
	for _, name := range []string{"password step (POST /api/v1/login)", "password step flood", "push round trip",
		"forward-auth check (valid session)", "OIDC authorization-code flow"} {
		if !strings.Contains(rows[name], "| – | – | – | – | – | – | – |") || !strings.Contains(rows[name], "not run") {
			t.Errorf("row %q of a scenario that did not run, want dashes and \"not run\":\n%s", name, rows[name])
		}
	}
	for _, name := range []string{"loaded memory (password flood)", "connected devices (RSS with event streams open)"} {
		if !strings.HasPrefix(rows[name], "| "+name+" | not run |") {
			t.Errorf("figure %q of a scenario that did not run, want \"not run\":\n%s", name, rows[name])
		}
	}
	if t.Failed() {
		t.Logf("\n%s", out.String())
	}
}

// TestPerDevice checks the extrapolation of the connected-devices figure: the cost of a
// stream is the growth from the first half of the streams to all of them, so that what the
// first streams cost once is not multiplied by 10,000. (From 500 streams, the growth from
// the start counted it 20 times over: 258 MiB extrapolated where 10,000 measure 147 MiB.)
func TestPerDevice(t *testing.T) {
	const mibB = 1 << 20
	for _, tt := range []struct {
		name                    string
		devices                 int
		before, half, all       uint64
		wantPerKiB, wantAt10MiB float64
	}{
		// 27 MiB idle, 33 MiB with 250 streams, 36 MiB with 500: 3 MiB per 250 streams.
		{"two halves", 500, 27 * mibB, 33 * mibB, 36 * mibB, 3 * 1024 / 250.0, 36 + 3*9500/250.0},
		// The second half did not grow the RSS (a heap that had room): the growth from
		// the start, per stream.
		{"no growth in the second half", 500, 27 * mibB, 36 * mibB, 36 * mibB, 9 * 1024 / 500.0, 36 + 9*9500/500.0},
		// 10,000 streams measured: the figure is the RSS itself.
		{"all measured", 10000, 27 * mibB, 90 * mibB, 150 * mibB, 60 * 1024 / 5000.0, 150},
	} {
		r := &report{devices: tt.devices, devicesBefore: tt.before, devicesHalfRSS: tt.half, devicesRSS: tt.all}
		per, at10k := r.perDevice()
		if math.Abs(per/1024-tt.wantPerKiB) > 1e-9 || math.Abs(at10k/mibB-tt.wantAt10MiB) > 1e-9 {
			t.Errorf("%s: %.3f KiB per stream, %.3f MiB at 10,000; want %.3f KiB, %.3f MiB",
				tt.name, per/1024, at10k/mibB, tt.wantPerKiB, tt.wantAt10MiB)
		}
	}
}

// TestWarmUp: each worker runs the step once, from its scenario's client address, and the
// failures are counted.
func TestWarmUp(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := func(ctx context.Context, w int) (outcome, time.Duration, string) {
		a, _ := ctx.Value(clientAddrKey{}).(string)
		mu.Lock()
		seen[a]++
		mu.Unlock()
		if w%4 == 0 {
			return failed, 0, "no"
		}
		return okay, time.Millisecond, ""
	}
	if n := warmUp(context.Background(), 10, "password", f); n != 3 {
		t.Errorf("warmUp counted %d failures, want 3 (workers 0, 4, 8)", n)
	}
	if len(seen) != 10 {
		t.Errorf("%d distinct client addresses, want 10: %v", len(seen), seen)
	}
	for w := range 10 {
		if a := clientAddr(1, w); seen[a] != 1 {
			t.Errorf("worker %d (%s) ran %d times, want once", w, a, seen[a])
		}
	}
}

// TestRawArgon2Process: the raw argon2id reference runs in a process of its own (this
// binary again), so that the harness's heap does not slow it (rawArgon2Process).
func TestRawArgon2Process(t *testing.T) {
	for _, kernel := range []string{kernelServer, kernelXCrypto} {
		rate, pid, err := rawArgon2Process(context.Background(), 300*time.Millisecond, 1, kernel)
		if err != nil {
			t.Fatal(err)
		}
		if pid == os.Getpid() || pid <= 0 {
			t.Errorf("%s: the reference ran in process %d, the harness is %d: want another process", kernel, pid, os.Getpid())
		}
		if rate <= 0 {
			t.Errorf("%s: rate %v, want > 0", kernel, rate)
		}
	}
	// A malformed value is refused by the child, which measures nothing.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"soon 2 server", "1s", "1s 2", "1s 0 server", "-1s 2 server", "1s 2 libsodium", "1s 2 server x"} {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), argon2Env+"="+v)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "want a duration, a number of goroutines and a kernel (server or x-crypto)") {
			t.Errorf("%s=%q: %v, %q; want exit status 2 and the reason", argon2Env, v, err, out)
		}
	}
}
