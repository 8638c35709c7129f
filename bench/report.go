package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/password"
)

// Targets of issue 7 (docs/performance.md), on 2 cores over loopback.
const (
	targetTOTPRatio     = 0.30 // of the /healthz rate
	targetTOTPP99       = 10 * time.Millisecond
	targetForwardRatio  = 0.60 // of the /healthz rate
	targetPasswordRatio = 0.90 // of the raw argon2id rate
	targetPushP99       = 50 * time.Millisecond
	targetDevices       = 10000
	targetDevicesRSS    = 200 << 20
	targetIdleRSS       = 40 << 20
	targetStartup       = 300 * time.Millisecond
	// floodConnBytes is what the flood bound allows per additional waiting sign-in.
	floodConnBytes = 128 << 10
)

// report holds every figure of a run.
type report struct {
	opt    *options
	dbKind string

	startup time.Duration
	restart time.Duration
	// restartUsers is how many users the restart found (the devices' own among them).
	restartUsers int
	idleRSS      uint64
	hwm          uint64
	seedTime     time.Duration
	argon2       float64 // the mean of the two below
	// argon2Before and argon2After are the raw rate just before and just after the step.
	argon2Before, argon2After float64
	// argon2XCrypto is x/crypto's kernel's raw rate, measured after the step, for comparison.
	argon2XCrypto float64
	// passwordWarmUp is how many sign-ins warmed the server up before the password step.
	passwordWarmUp int

	// The scenarios' results; nil for one that did not run (--only, --flood 0): every use
	// of them must allow for that.
	healthz, password, flood, totp, push1, push *stats
	pushClients                                 int
	forwardAuth, oidc                           *stats
	healthzFwd                                  *stats // /healthz measured just before forward-auth

	devices                                int
	devicesBefore, devicesRSS, devicesPeak uint64
	devicesHalfRSS                         uint64             // with the first half of the streams open
	devicesRuntime                         map[string]float64 // the server's go_* metrics with the streams open
	connectTime                            time.Duration

	notes []string
}

// perDevice returns the RSS of one more event stream and the RSS extrapolated to 10,000: the
// growth from the first half of the streams to all of them, per stream (or, when that
// growth is not measurable, from the RSS before any), added to the RSS with all of them.
func (r *report) perDevice() (per, at10k float64) {
	n := r.devices - r.devices/2
	switch {
	case n > 0 && r.devicesHalfRSS > 0 && r.devicesRSS > r.devicesHalfRSS:
		per = float64(r.devicesRSS-r.devicesHalfRSS) / float64(n)
	case r.devicesRSS > r.devicesBefore:
		per = float64(r.devicesRSS-r.devicesBefore) / float64(r.devices)
	}
	return per, float64(r.devicesRSS) + per*float64(max(0, targetDevices-r.devices))
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "MISS"
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// floodBound is the memory the password flood may use. "Bounded" means that memory does not
// grow with the hashes asked for (each costs 46 MiB: a server hashing 1,000 sign-ins at once
// would need 45 GiB), only by a small cost per waiting connection. The bound is the idle RSS,
// plus three times the hasher's bound (max(2, NumCPU) hashes at once, as internal/password:
// the live hashes, as much garbage again before the collector runs at GOGC=100, and pages
// the runtime has not returned yet), plus 128 KiB per client.
func (r *report) floodBound() uint64 {
	p := password.New(password.Options{}).Params()
	hashes := uint64(max(2, runtime.NumCPU()))
	return r.idleRSS + 3*hashes*uint64(p.Memory)<<10 + uint64(r.opt.flood)*floodConnBytes
}

// unexpected counts the failures that are neither successes nor 429s.
func (r *report) unexpected() int {
	n := 0
	for _, s := range []*stats{r.healthz, r.password, r.flood, r.totp, r.push1, r.push, r.healthzFwd, r.forwardAuth, r.oidc} {
		if s != nil {
			n += s.failed
		}
	}
	return n
}

// loadRow is a row of the load table.
type loadRow struct {
	name    string
	clients int
	s       *stats
	target  string
	result  string
}

func (r *report) print(w io.Writer) {
	db := r.dbKind
	if r.opt.nodes > 1 {
		db = fmt.Sprintf("%s, %d nodes", db, r.opt.nodes)
		r.notes = append(r.notes, fmt.Sprintf("%d nodes on one PostgreSQL database: worker w uses node w modulo %d, and each push's device is connected to the node after its browser's (every challenge crosses nodes through NOTIFY). Memory figures are the largest node's; start-up and idle memory are the first node's.", r.opt.nodes, r.opt.nodes))
	}
	fmt.Fprintf(w, "Latchkey benchmark harness: %s, %s, %d users, %v per scenario, %s\n\n",
		machine(), db, r.opt.users, r.opt.duration, time.Now().UTC().Format("2006-01-02"))

	hz := r.healthz.rate()
	ratio := func(s *stats, of float64) float64 {
		if of == 0 {
			return 0
		}
		return s.rate() / of
	}
	rows := []loadRow{{name: "GET /healthz (HTTP ceiling)", clients: r.opt.concurrency, s: r.healthz, target: "reference", result: "–"}}

	pr := ratio(r.password, r.argon2)
	passwordTarget := "≥ 90% of raw argon2id"
	if r.argon2 > 0 {
		passwordTarget += fmt.Sprintf(" (%.1f/s, the server's kernel)", r.argon2)
	}
	rows = append(rows, loadRow{name: "password step (POST /api/v1/login)", clients: r.opt.concurrency, s: r.password,
		target: passwordTarget,
		result: fmt.Sprintf("%s (%.0f%%)", verdict(pr >= targetPasswordRatio), pr*100)})
	floodRow := loadRow{name: "password step flood", clients: r.opt.flood, s: r.flood,
		target: fmt.Sprintf("bounded: peak RSS ≤ %s", mib(r.floodBound()))}
	if r.flood != nil {
		floodRow.result = verdict(r.flood.peakRSS <= r.floodBound())
	}
	rows = append(rows, floodRow)
	tr := ratio(r.totp, hz)
	p99 := r.totp.pct(0.99)
	rows = append(rows, loadRow{name: "TOTP step (POST /api/v1/login/totp)", clients: r.opt.concurrency, s: r.totp,
		target: "≥ 30% of /healthz, p99 < 10 ms",
		result: fmt.Sprintf("%s (%.0f%%, %s)", verdict(tr >= targetTOTPRatio && p99 < targetTOTPP99 && p99 > 0), tr*100, ms(p99))})
	for _, s := range []struct {
		st *stats
		n  int
	}{{r.push1, 1}, {r.push, r.pushClients}} {
		row := loadRow{name: "push round trip", clients: s.n, s: s.st, target: "p99 < 50 ms"}
		if s.st != nil {
			row.result = verdict(s.st.pct(0.99) < targetPushP99 && s.st.ok > 0)
		}
		rows = append(rows, row)
	}
	fhz := hz
	if r.healthzFwd != nil && r.healthzFwd.rate() > 0 {
		fhz = r.healthzFwd.rate()
	}
	fr := ratio(r.forwardAuth, fhz)
	rows = append(rows,
		loadRow{name: "forward-auth check (valid session)", clients: r.opt.concurrency, s: r.forwardAuth,
			target: fmt.Sprintf("≥ 60%% of /healthz (%.0f/s just before)", fhz), result: fmt.Sprintf("%s (%.0f%%)", verdict(fr >= targetForwardRatio), fr*100)},
		loadRow{name: "OIDC authorization-code flow", clients: r.opt.concurrency, s: r.oidc,
			target: "reported (4 requests: authorize, 2 redirects, token)", result: "–"})

	fmt.Fprintln(w, "| scenario | clients | req/s | p50 | p99 | 429 | errors | peak RSS | target | result |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|---|")
	for _, row := range rows {
		if row.s == nil {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | – | – | %s | not run |\n", row.name, row.target)
			continue
		}
		s := row.s
		fmt.Fprintf(w, "| %s | %d | %.1f | %s | %s | %d | %d | %s | %s | %s |\n",
			row.name, row.clients, s.rate(), ms(s.pct(0.50)), ms(s.pct(0.99)), s.throttled, s.failed, mib(s.peakRSS), row.target, row.result)
		if s.failed > 0 {
			r.notes = append(r.notes, fmt.Sprintf("%s: %s", row.name, s.firstErrors()))
		}
		if s.exhaustedEarly {
			more := ""
			if s == r.totp {
				more = " (a longer run: --totp-users, at most --users)"
			}
			r.notes = append(r.notes, fmt.Sprintf("%s, %d client(s): the seeded sign-ins were all used after %.1f s; the rate is over that time%s", row.name, row.clients, s.elapsed.Seconds(), more))
		}
		if s.cut > 0 {
			r.notes = append(r.notes, fmt.Sprintf("%s: %d requests still waiting at the end were cancelled (not counted)", row.name, s.cut))
		}
	}

	r.printCores(w, rows)

	p := password.New(password.Options{}).Params()
	var loaded uint64
	for _, s := range []*stats{r.healthz, r.password, r.totp, r.push1, r.push, r.forwardAuth, r.oidc} {
		if s != nil {
			loaded = max(loaded, s.peakRSS)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | value | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|")
	argon2 := "not run (measured with the password step)"
	if r.argon2 > 0 {
		argon2 = fmt.Sprintf("%.1f hashes/s (%.1f before the password step, %.1f after, each in a process of its own; warm: 2 hashes per goroutine first, and the server %d sign-ins before the step)", r.argon2, r.argon2Before, r.argon2After, r.passwordWarmUp)
	}
	fmt.Fprintf(w, "| raw argon2id (m=%d KiB, t=%d, p=%d), 2 goroutines, the server's kernel (memory reused) | %s | reference | – |\n", p.Memory, p.Time, p.Threads, argon2)
	if r.argon2XCrypto > 0 {
		fmt.Fprintf(w, "| raw argon2id, 2 goroutines, x/crypto's IDKey (46 MiB allocated per hash) | %.1f hashes/s (after the password step, in a process of its own) | for comparison | – |\n", r.argon2XCrypto)
	}
	st := "–"
	if r.dbKind == "SQLite" {
		st = verdict(r.startup < targetStartup)
	}
	restartVerdict := "–"
	if r.dbKind == "SQLite" && r.restart > 0 {
		restartVerdict = verdict(r.restart < targetStartup)
	}
	fmt.Fprintf(w, "| start-up to /readyz (%s, first start) | %s | < 300 ms on SQLite | %s |\n", r.dbKind, ms(r.startup), st)
	fmt.Fprintf(w, "| start-up to /readyz (%s, restart with %d users) | %s | < 300 ms on SQLite | %s |\n", r.dbKind, max(r.restartUsers, r.opt.users), ms(r.restart), restartVerdict)
	fmt.Fprintf(w, "| idle memory (RSS 1 s after start) | %s | < 40 MiB | %s |\n", mib(r.idleRSS), verdict(r.idleRSS < targetIdleRSS))
	fmt.Fprintf(w, "| loaded memory (peak RSS, %d clients) | %s | reported | – |\n", r.opt.concurrency, mib(loaded))
	if r.flood != nil {
		fmt.Fprintf(w, "| loaded memory (peak RSS, %d-client password flood) | %s | ≤ %s (idle + 3 × %d hashes + 128 KiB per client) | %s |\n",
			r.opt.flood, mib(r.flood.peakRSS), mib(r.floodBound()), max(2, runtime.NumCPU()), verdict(r.flood.peakRSS <= r.floodBound()))
	} else {
		fmt.Fprintf(w, "| loaded memory (password flood) | not run | bounded | – |\n")
	}
	if r.devices > 0 {
		per, at10k := r.perDevice()
		value := fmt.Sprintf("%d streams: %s (%.1f KiB each)", r.devices, mib(r.devicesRSS), per/1024)
		if m := r.devicesRuntime; m != nil {
			value += fmt.Sprintf(", of which Go heap %s, goroutine stacks %s, %.0f goroutines",
				mib(uint64(m["go_memstats_heap_inuse_bytes"])), mib(uint64(m["go_memstats_stack_inuse_bytes"])), m["go_goroutines"])
		}
		pass := float64(r.devicesRSS) < targetDevicesRSS
		res := verdict(pass)
		if r.devices < targetDevices {
			value += fmt.Sprintf("; 10,000 ≈ %s", mib(uint64(at10k)))
			res = verdict(at10k < targetDevicesRSS) + " (extrapolated)"
		}
		fmt.Fprintf(w, "| connected devices (RSS with event streams open) | %s | 10,000 < 200 MiB | %s |\n", value, res)
	} else {
		fmt.Fprintf(w, "| connected devices (RSS with event streams open) | not run | 10,000 < 200 MiB | – |\n")
	}
	if r.opt.users >= 1000000 {
		fmt.Fprintf(w, "| 1,000,000 users | this run: %d users | every figure within 20%% of 1,000 users | compare with a run of --users 1000 |\n", r.opt.users)
	} else {
		fmt.Fprintf(w, "| 1,000,000 users | not measured in this run | every figure within 20%% of 1,000 users | run with --users 1000000 |\n")
	}
	fmt.Fprintf(w, "\nPeak RSS of the run (VmHWM): %s. Seeding %d users took %v.\n", mib(r.hwm), r.opt.users, r.seedTime.Round(time.Millisecond))
	for _, n := range r.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// printCores prints where the cores went in each scenario that ran (cpu.go): the server's CPU
// per successful request (or round trip), and that as a multiple of /healthz's, then the
// cores used by the server, by the harness and by the rest of the machine, the share of the
// machine's time no core had work, and the share of the time SQLite's batch writer was busy
// (writer.go; – on PostgreSQL).
func (r *report) printCores(w io.Writer, rows []loadRow) {
	var hz time.Duration
	if r.healthz != nil && r.healthz.cpu.ok {
		hz = r.healthz.cpu.perRequest
	}
	if !slices.ContainsFunc(rows, func(row loadRow) bool { return row.s != nil && row.s.cpu.ok }) {
		return // not measured (no /proc)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| where the cores went | clients | server CPU per request | × /healthz's | server | harness | other | idle | SQLite writer busy |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, row := range rows {
		if row.s == nil || !row.s.cpu.ok {
			continue
		}
		c := row.s.cpu
		times := "–"
		if hz > 0 && c.perRequest > 0 {
			times = fmt.Sprintf("%.1f", float64(c.perRequest)/float64(hz))
		}
		writer := "–"
		if row.s.writer >= 0 {
			writer = fmt.Sprintf("%.0f%%", row.s.writer*100)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.2f | %.2f | %.2f | %.0f%% | %s |\n",
			row.name, row.clients, micros(c.perRequest), times, c.server, c.harness, c.other, c.idle*100, writer)
	}
}
