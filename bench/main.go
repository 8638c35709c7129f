// Command bench is Latchkey's benchmark harness (issue 7). It builds and starts the real
// `latchkey serve` on a free loopback port with a fresh database, seeds users straight into
// that database, drives load over loopback and prints a Markdown table of requests per
// second and p50/p99 latency for each scenario, with memory and start-up figures, each
// against the targets of docs/performance.md:
//
//	go run ./bench [--db sqlite|postgres://...] [--nodes 1] [--users 1000] [--totp-users 1000] [--concurrency 64] [--duration 5s] [--quick] [--only password,totp]
//
// See docs/performance.md, "The benchmark harness", for what each row measures.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/latchkey/latchkey/internal/sqlstore"
)

func main() {
	argon2Child()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

// options are the harness's flags.
type options struct {
	db          string
	nodes       int
	users       int
	totpUsers   int
	concurrency int
	duration    time.Duration
	quick       bool
	flood       int
	devices     int
	bin         string
	logLevel    string
	keep        bool
	// only holds the scenarios to run (--only); /healthz always runs.
	only map[string]bool
}

// scenarioNames are the scenarios --only accepts, in the order they run.
var scenarioNames = []string{"healthz", "password", "flood", "totp", "push", "forward", "oidc", "devices"}

// parseOnly parses the value of --only: comma-separated names of scenarioNames, "all" or
// empty for every one. /healthz is added: it is the reference of the ratios.
func parseOnly(v string) (map[string]bool, error) {
	only := map[string]bool{}
	if strings.TrimSpace(v) == "" || strings.TrimSpace(v) == "all" {
		for _, n := range scenarioNames {
			only[n] = true
		}
		return only, nil
	}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(scenarioNames, n) {
			return nil, fmt.Errorf("--only: unknown scenario %q (want a comma-separated list of %s)", n, strings.Join(scenarioNames, ", "))
		}
		only[n] = true
	}
	only["healthz"] = true
	return only, nil
}

// runs reports whether scenario name is to run; the flood and the connected devices also
// need a non-zero --flood and --devices.
func (o *options) runs(name string) bool {
	switch name {
	case "flood":
		return o.only[name] && o.flood > 0
	case "devices":
		return o.only[name] && o.devices > 0
	}
	return o.only[name]
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.db, "db", "sqlite", `database: "sqlite" (a fresh file in a temporary folder) or a postgres:// URL (its tables must be empty or Latchkey's)`)
	fs.IntVar(&o.nodes, "nodes", 1, "latchkey serve processes sharing the database and the keys, as the nodes of a deployment (PostgreSQL only): the clients are spread over them, and each push's device is connected to another node than its browser")
	fs.IntVar(&o.users, "users", 1000, "users to seed")
	fs.IntVar(&o.totpUsers, "totp-users", 1000, "users the TOTP step signs in, spread over all of them (three sign-ins each at most, so 3,000 by default): the same at every --users, so that the figures compare; more gives a longer TOTP run (at most --users and 20,000)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent clients per scenario")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "duration of each scenario")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 1s per scenario, 200 users (unless set explicitly); the 10,000 connected devices stay, since opening them takes ~5 s")
	fs.IntVar(&o.flood, "flood", 1000, "concurrent clients of the password-step flood")
	fs.IntVar(&o.devices, "devices", 10000, "device event streams to hold open for the connected-devices figure")
	fs.StringVar(&o.bin, "bin", "", "latchkey binary to run (default: go build ./cmd/latchkey)")
	fs.StringVar(&o.logLevel, "log-level", "info", "the server's log level (its log goes to a file)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder (database, server log)")
	only := fs.String("only", "all", "comma-separated scenarios to run, of "+strings.Join(scenarioNames, ",")+" (healthz always runs: it is the reference of the ratios)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.only, err = parseOnly(*only); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["users"] {
			o.users = 200
		}
	}
	if o.db != "sqlite" && !strings.HasPrefix(o.db, "postgres://") && !strings.HasPrefix(o.db, "postgresql://") {
		return nil, fmt.Errorf(`--db must be "sqlite" or a postgres:// URL`)
	}
	if o.nodes < 1 || (o.nodes > 1 && !o.postgres()) {
		return nil, errors.New("--nodes: several nodes share a PostgreSQL database (--db postgres://...); with SQLite there is one")
	}
	if o.users < 1 || o.totpUsers < 1 || o.concurrency < 1 || o.duration <= 0 || o.flood < 0 || o.devices < 0 {
		return nil, errors.New("--users, --totp-users and --concurrency must be positive, --duration too; --flood and --devices not negative")
	}
	return o, nil
}

func (o *options) postgres() bool { return o.db != "sqlite" }

// envKey returns the key in the environment variable name (base64, 32 bytes), or raw and
// encoded when it is unset.
func envKey(name string, raw []byte, encoded string) ([]byte, string, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return raw, encoded, nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(k) != 32 {
		return nil, "", fmt.Errorf("%s: want 32 bytes in base64", name)
	}
	return k, v, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	tmp, err := os.MkdirTemp("", "latchkey-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	bin := o.bin
	if bin == "" {
		logf("building cmd/latchkey")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return err
		}
	}

	// Keys: with SQLite the files the server would generate on its first start, in the data
	// folder; with PostgreSQL the environment, as several nodes would share them.
	data := filepath.Join(tmp, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	sessionKey, sessionB64 := newKey()
	secretsKey, secretsB64 := newKey()
	// A PostgreSQL database remembers the keys it was first used with, and refuses others:
	// to run again on the same database, give the harness the same keys.
	if o.postgres() {
		if sessionKey, sessionB64, err = envKey("LATCHKEY_SESSION_KEY", sessionKey, sessionB64); err != nil {
			return err
		}
		if secretsKey, secretsB64, err = envKey("LATCHKEY_SECRETS_KEY", secretsKey, secretsB64); err != nil {
			return err
		}
	}
	env := []string{"LATCHKEY_LOG_LEVEL=" + o.logLevel}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	database, dsn := "", filepath.Join(data, "latchkey.db")
	if o.postgres() {
		database, dsn = o.db, o.db
		env = append(env, "LATCHKEY_SESSION_KEY="+sessionB64, "LATCHKEY_SECRETS_KEY="+secretsB64)
	} else {
		for name, k := range map[string]string{"session.key": sessionB64, "secrets.key": secretsB64} {
			if err := os.WriteFile(filepath.Join(data, name), []byte(k+"\n"), 0o600); err != nil {
				return err
			}
		}
	}

	config, err := writeConfig(tmp)
	if err != nil {
		return err
	}

	rep := &report{opt: o, dbKind: "SQLite"}
	if o.postgres() {
		rep.dbKind = "PostgreSQL"
	}
	logf("starting latchkey serve")
	srv, err := startServer(ctx, "server", bin, data, database, config, env)
	if err != nil {
		return err
	}
	nodes := cluster{srv}
	defer func() { nodes.kill() }()
	rep.startup = srv.startup
	time.Sleep(time.Second)
	if rep.idleRSS, err = rss(srv.pid(), "VmRSS"); err != nil {
		return err
	}
	logf("listening at %s, ready after %v, idle RSS %s", srv.url, srv.startup.Round(time.Millisecond), mib(rep.idleRSS))
	// The other nodes, once the first has migrated the database. Each has a data folder of
	// its own; they share the database and the keys (the environment).
	for i := 2; i <= o.nodes; i++ {
		nd := fmt.Sprintf("%s-%d", data, i)
		if err := os.MkdirAll(nd, 0o700); err != nil {
			return err
		}
		n, err := startServer(ctx, fmt.Sprintf("server-%d", i), bin, nd, database, config, env)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		nodes = append(nodes, n)
		logf("node %d listening at %s, ready after %v", i, n.url, n.startup.Round(time.Millisecond))
	}

	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: secretsKey})
	if err != nil {
		return fmt.Errorf("open the server's database: %w", err)
	}
	defer db.Close()
	sd := &seeder{db: db, sessionKey: sessionKey, prefix: "bench" + randHex(3)}
	begin := time.Now()
	if err := sd.seedUsers(ctx, o.users, func(done int) { logf("seeded %d of %d users", done, o.users) }); err != nil {
		return err
	}
	rep.seedTime = time.Since(begin)
	logf("seeded %d users with TOTP in %v", o.users, rep.seedTime.Round(time.Millisecond))
	var oidcSecret string
	if o.runs("oidc") {
		// The client's ID is the run's user prefix: a PostgreSQL database can serve several runs.
		if oidcSecret, err = createOIDCClient(ctx, bin, data, database, sd.prefix, env); err != nil {
			return err
		}
	}

	if err := runScenarios(ctx, o, nodes, sd, rep, oidcSecret, logf); err != nil {
		return err
	}
	if rep.hwm, err = peakOfRun(nodes); err != nil {
		return err
	}
	err = nodes.stop()
	nodes = nil
	if err != nil {
		return err
	}

	// Connected devices: on one node, a fresh process, so that the memory of the load above
	// (argon2id hashes the runtime has not returned yet) does not count.
	if o.runs("devices") {
		// One device per user, as in a deployment: a user's devices hold at most
		// push.WaitsPerUser streams at once (a new one ends the oldest), so ten devices each
		// for 1,000 users would hold 8,000 streams, not 10,000. Users beyond --users are
		// seeded for the devices that lack one.
		if extra := o.devices - len(sd.users); extra > 0 {
			logf("seeding %d more users, one for each device", extra)
			if err := sd.seedUsers(ctx, extra, func(int) {}); err != nil {
				return err
			}
		}
		users := spread(len(sd.users), o.devices)
		logf("seeding %d devices", o.devices)
		devs, err := sd.seedDevices(ctx, users)
		if err != nil {
			return err
		}
		logf("restarting latchkey serve")
		if srv, err = startServer(ctx, "server-restart", bin, data, database, config, env); err != nil {
			return err
		}
		nodes = cluster{srv}
		rep.restart, rep.restartUsers = srv.startup, len(sd.users)
		time.Sleep(time.Second)
		if err := connectedDevices(ctx, o, srv, devs, rep, logf); err != nil {
			return err
		}
		err = nodes.stop()
		nodes = nil
		if err != nil {
			return err
		}
	}
	rep.print(stdout)
	if n := rep.unexpected(); n > 0 {
		return fmt.Errorf("%d unexpected errors (see the table)", n)
	}
	return nil
}

// totpPoolMax bounds the users the scenarios use (the TOTP step seeds three flows for each of
// its own), so that a run with a million users does not seed three million sessions.
const totpPoolMax = 20000

// spread returns n user indexes spread evenly over total users.
func spread(total, n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i * total / n
	}
	return idx
}

func runScenarios(ctx context.Context, o *options, nodes cluster, sd *seeder, rep *report, oidcSecret string, logf func(string, ...any)) error {
	c := newClient(o.concurrency)
	defer c.CloseIdleConnections()
	base, pid := nodes.urls(), nodes.pids()

	logf("GET /healthz, %d clients, %v", o.concurrency, o.duration)
	rep.healthz = drive(ctx, pid, base, "healthz", o.concurrency, o.duration, false, healthzStep(c, base))

	if o.runs("password") {
		// The reference brackets the step: half before it, half after, and their mean, each
		// warm (see rawArgon2), so that a drift of the shared machine during the step moves
		// the reference too. Before the ninth session it was measured once, cold, before the
		// step, and read a tenth low.
		logf("raw argon2id, the server's kernel, 2 goroutines in a process of their own, %v", o.duration/2)
		var err error
		if rep.argon2Before, _, err = rawArgon2Process(ctx, o.duration/2, 2, kernelServer); err != nil {
			return err
		}

		// The server warms up as the reference does: its first hashes are not counted either.
		logf("password step warm-up, %d sign-ins", o.concurrency)
		if n := warmUp(ctx, o.concurrency, "password", passwordStep(c, base, sd.users)); n > 0 {
			logf("password step warm-up: %d of %d sign-ins failed", n, o.concurrency)
		}
		rep.passwordWarmUp = o.concurrency
		logf("password step, %d clients, %v", o.concurrency, o.duration)
		rep.password = drive(ctx, pid, base, "password", o.concurrency, o.duration, false, passwordStep(c, base, sd.users))

		logf("raw argon2id again, the server's kernel, 2 goroutines in a process of their own, %v", o.duration/2)
		if rep.argon2After, _, err = rawArgon2Process(ctx, o.duration/2, 2, kernelServer); err != nil {
			return err
		}
		rep.argon2 = (rep.argon2Before + rep.argon2After) / 2
		// x/crypto's kernel, which the server used until the twenty-first session, for
		// comparison: the reference is the kernel the server runs.
		logf("raw argon2id, x/crypto's kernel, 2 goroutines in a process of their own, %v", o.duration/2)
		if rep.argon2XCrypto, _, err = rawArgon2Process(ctx, o.duration/2, 2, kernelXCrypto); err != nil {
			return err
		}
	}

	if o.runs("flood") {
		logf("password step flood, %d clients, %v", o.flood, o.duration)
		fc := newClient(o.flood)
		rep.flood = drive(ctx, pid, base, "flood", o.flood, o.duration, true, passwordStep(fc, base, sd.users))
		fc.CloseIdleConnections()
		// Let the server notice the cancelled requests before the next scenario.
		time.Sleep(500 * time.Millisecond)
	}

	// The users the TOTP, push, forward-auth and OIDC scenarios use: up to totpPoolMax,
	// spread evenly over all of them.
	idx := spread(len(sd.users), min(len(sd.users), totpPoolMax))

	if o.runs("totp") {
		// Three seeded sign-in flows (one per usable step) for each user of its own pool: a
		// user signs in at most three times per 30-second window, so the step's run is as
		// long as its pool allows. The pool has the same size at every --users: a million
		// users are compared with a thousand on the same sign-ins, not on a longer run.
		tidx := spread(len(sd.users), min(len(sd.users), o.totpUsers, totpPoolMax))
		logf("seeding %d sign-in flows for the TOTP step (%d users)", 3*len(tidx), len(tidx))
		toks, err := sd.seedFlows(ctx, tidx, 3)
		if err != nil {
			return err
		}
		logf("TOTP step, %d clients, %v", o.concurrency, o.duration)
		rep.totp = drive(ctx, pid, base, "totp", o.concurrency, o.duration, false, totpStep(c, base, newTOTPPool(sd.users, tidx, toks)))
	}

	if o.runs("push") {
		if err := runPush(ctx, o, c, base, pid, sd, idx, rep, logf); err != nil {
			return err
		}
	}

	if !o.runs("forward") && !o.runs("oidc") {
		return nil
	}
	// Forward-auth and the OIDC code flow: one signed-in (MFA) session per client.
	logf("seeding %d signed-in sessions", o.concurrency)
	sidx := make([]int, o.concurrency)
	for i := range sidx {
		sidx[i] = idx[i%len(idx)]
	}
	signedIn, err := sd.seedSignedIn(ctx, sidx)
	if err != nil {
		return err
	}
	if o.runs("forward") {
		// The ceiling again, just before: on a shared machine the load of other processes
		// changes within a run, and the first /healthz figure is a minute old by now.
		logf("GET /healthz again, %d clients, %v", o.concurrency, o.duration)
		rep.healthzFwd = drive(ctx, pid, base, "healthz", o.concurrency, o.duration, false, healthzStep(c, base))
		logf("forward-auth check, %d clients, %v", o.concurrency, o.duration)
		rep.forwardAuth = drive(ctx, pid, base, "forward", o.concurrency, o.duration, false, forwardAuthStep(c, base, signedIn))
	}
	if o.runs("oidc") {
		oc := newClient(o.concurrency)
		oc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		defer oc.CloseIdleConnections()
		logf("OIDC authorization-code flow, %d clients, %v", o.concurrency, o.duration)
		rep.oidc = drive(ctx, pid, base, "oidc", o.concurrency, o.duration, false, oidcFlowStep(oc, base, sd.prefix, oidcSecret, signedIn))
	}
	return nil
}

// runPush measures the push round trip: one device and one event stream per client, on the
// first users of idx; first one client alone (the latency of an idle server), then all of
// them. With several nodes, client w's device is connected to the node after its browser's:
// every challenge reaches its device through PostgreSQL's NOTIFY.
func runPush(ctx context.Context, o *options, c *http.Client, base urls, pid []int, sd *seeder, idx []int, rep *report, logf func(string, ...any)) error {
	np := min(o.concurrency, len(idx))
	pidx := idx[:np]
	devs, err := sd.seedDevices(ctx, pidx)
	if err != nil {
		return err
	}
	dc := newClient(np * 2)
	defer dc.CloseIdleConnections()
	clients := make([]*deviceClient, np)
	defer func() {
		for _, d := range clients {
			if d != nil {
				d.close()
			}
		}
	}()
	for i, d := range devs {
		clients[i] = &deviceClient{id: d.id, key: d.key, base: base.at(i + 1), c: dc, events: make(chan string, 16)}
		if err := clients[i].connect(ctx, true); err != nil {
			return fmt.Errorf("device %d: %w", d.id, err)
		}
	}
	one := max(50, int(o.duration.Seconds()*800))
	logf("seeding %d sign-in flows for push, 1 client", one)
	ptoks, err := sd.seedFlows(ctx, pidx[:1], one)
	if err != nil {
		return err
	}
	logf("push round trip, 1 client, %v", o.duration)
	rep.push1 = drive(ctx, pid, base, "push", 1, o.duration, false, pushStep(c, base, clients[:1], ptoks))
	// 50 sign-ins per device and second: 3,200 round trips/s at 64 clients, well above the
	// ~2,000/s of the twenty-fourth session (at 25, its runs used them all after 4 s).
	perDev := max(20, int(o.duration.Seconds()*50))
	logf("seeding %d sign-in flows for push, %d clients", np*perDev, np)
	if ptoks, err = sd.seedFlows(ctx, pidx, perDev); err != nil {
		return err
	}
	logf("push round trip, %d clients, %v", np, o.duration)
	rep.pushClients = np
	rep.push = drive(ctx, pid, base, "push", np, o.duration, false, pushStep(c, base, clients, ptoks))
	return nil
}

// connectedDevices holds one event stream open for each device, then reads the server's RSS.
func connectedDevices(ctx context.Context, o *options, srv *server, devs []benchDevice, rep *report, logf func(string, ...any)) error {
	before, err := rss(srv.pid(), "VmRSS")
	if err != nil {
		return err
	}
	smp := measurePeak(srv.pid())
	logf("opening %d device event streams", o.devices)
	dc := newClient(0)
	dc.Timeout = 0
	clients := make([]*deviceClient, len(devs))
	defer func() {
		for _, d := range clients {
			if d != nil {
				d.close()
			}
		}
		dc.CloseIdleConnections()
	}()
	// open connects devices [from, to).
	open := func(from, to int) error {
		return parallel(ctx, to-from, 32, func(i int) error {
			i += from
			d := &deviceClient{id: devs[i].id, key: devs[i].key, base: srv.url, c: dc}
			if err := d.connect(ctx, false); err != nil {
				return fmt.Errorf("device stream %d of %d: %w", i+1, len(devs), err)
			}
			clients[i] = d
			return nil
		})
	}
	// The streams open in two halves, with the RSS read after each: the growth of the second
	// half is the cost of a stream, without what the first streams cost once (the runtime's
	// first heap growth, the connection pool, the hub), which an extrapolation from fewer
	// than 10,000 streams must not multiply.
	half := len(devs) / 2
	begin := time.Now()
	if err := open(0, half); err != nil {
		return err
	}
	connectHalf := time.Since(begin)
	time.Sleep(time.Second)
	if rep.devicesHalfRSS, err = rss(srv.pid(), "VmRSS"); err != nil {
		return err
	}
	begin = time.Now()
	if err := open(half, len(devs)); err != nil {
		return err
	}
	rep.connectTime = connectHalf + time.Since(begin)
	time.Sleep(2 * time.Second)
	rep.devices = o.devices
	rep.devicesBefore = before
	if rep.devicesRSS, err = rss(srv.pid(), "VmRSS"); err != nil {
		return err
	}
	rep.devicesPeak = smp.Stop()
	if m, err := runtimeMetrics(ctx, srv.url); err != nil {
		logf("server metrics: %v", err)
	} else {
		rep.devicesRuntime = m
	}
	logf("%d streams open: RSS %s (before %s, peak %s)", o.devices, mib(rep.devicesRSS), mib(before), mib(rep.devicesPeak))
	// The figure is the cost of o.devices open streams only if the server holds them all:
	// a stream the server ended (displaced, or past its limit) costs nothing.
	if held, ok := rep.devicesRuntime[deviceConnections]; ok && int(held) != o.devices {
		return fmt.Errorf("connected devices: the server holds %.0f of the %d streams (%s)", held, o.devices, deviceConnections)
	}
	return nil
}

// deviceConnections is the server's gauge of device event streams and long polls open.
const deviceConnections = "latchkey_device_connections"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// machine describes where the figures came from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s %s/%s", runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// runtimeMetrics reads the server's unlabelled go_* metrics from /metrics: what the Go
// runtime says of the memory, beside the RSS the kernel reports.
func runtimeMetrics(ctx context.Context, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: HTTP %d", resp.StatusCode)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !strings.HasPrefix(f[0], "go_") && f[0] != deviceConnections {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	return m, sc.Err()
}
