//go:build linux

package main

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice: guest time is part of
	// user time already and must not be counted twice.
	total, idle, err := parseProcStat("cpu  100 5 45 800 20 10 10 10 99 99\ncpu0 50 2 20 400 10 5 5 5 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if total != 10 || idle != 8.2 {
		t.Errorf("parseProcStat = %v s in all, %v s idle; want 10 and 8.2", total, idle)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 x 4 5\n", "cpu 1 2\n"} {
		if _, _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

func TestParsePidStat(t *testing.T) {
	// Fields 14 and 15 are utime and stime; a command name may hold spaces and parentheses.
	line := "4242 (lk (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 7 7 20 0 9 0 12345 1000000 2000 18446744073709551615\n"
	got, err := parsePidStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2 {
		t.Errorf("parsePidStat = %v s, want 2 (150 + 50 ticks)", got)
	}
	for _, bad := range []string{"", "4242 lk S 1", "4242 (lk) S 1 2 3", "4242 (lk) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 50 7"} {
		if _, err := parsePidStat(bad); err == nil {
			t.Errorf("parsePidStat(%q): no error", bad)
		}
	}
}

func TestSince(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	a := cpuSnap{at: t0, total: 1000, idle: 300, server: 50, harness: 20, ok: true}
	// 4 s on 2 cores: 8 s of the machine, 1 s of it idle; the server 4.8 s, the harness 1.6 s,
	// so 0.6 s went elsewhere; 24,000 requests done.
	b := cpuSnap{at: t0.Add(4 * time.Second), total: 1008, idle: 301, server: 54.8, harness: 21.6, ok: true}
	u := since(a, b, 24000)
	near := func(x, want float64) bool { return math.Abs(x-want) < 1e-9 }
	if !u.ok || !near(u.server, 1.2) || !near(u.harness, 0.4) || !near(u.other, 0.15) || !near(u.idle, 0.125) {
		t.Errorf("since = %+v; want 1.2 cores of the server, 0.4 of the harness, 0.15 other, 12.5%% idle", u)
	}
	if u.perRequest != 200*time.Microsecond {
		t.Errorf("per request %v, want 200µs", u.perRequest)
	}
	if u := since(a, b, 0); !u.ok || u.perRequest != 0 {
		t.Errorf("with no request done: %+v, want the cores and no time per request", u)
	}
	b.ok = false
	if u := since(a, b, 24000); u.ok {
		t.Errorf("since with a snapshot not read: %+v, want nothing", u)
	}
}

func TestMicros(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "–", 167 * time.Microsecond: "167 µs", 9999 * time.Microsecond: "9999 µs", 33590 * time.Microsecond: "33.6 ms"} {
		if got := micros(d); got != want {
			t.Errorf("micros(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestReadCPU: the harness's own processor time is read and grows with work. Like the rest
// of the harness (the RSS figures), it needs Linux's /proc. The work runs until the kernel's
// own account (getrusage) says it took 200 ms of processor time, however long that takes on
// a machine busy with other tests; /proc counts in ticks of 10 ms, hence the margin.
func TestReadCPU(t *testing.T) {
	a := readCPU(nil)
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, x := used(), 0
	for begin := time.Now(); used()-start < 200*time.Millisecond && time.Since(begin) < 20*time.Second; {
		for range 1000 {
			x += len(strconv.Itoa(x))
		}
	}
	b := readCPU(nil)
	if !a.ok || !b.ok {
		t.Fatalf("readCPU not ok: %+v %+v", a, b)
	}
	if d := b.harness - a.harness; d < 0.15 {
		t.Errorf("the harness used %v s of CPU in %v of work, want at least 0.15 (x=%d)", d, used()-start, x)
	}
	if b.total <= a.total {
		t.Errorf("the machine's time did not grow: %v then %v", a.total, b.total)
	}
}

// checkCores checks a quick run's row of where the cores went (on Linux): the server's CPU
// per request is measured, the shares are plausible; the batch writer's share is known on
// SQLite (kind), under 100% per node, and above 0 for the scenarios that write, and is "–"
// on PostgreSQL.
func checkCores(t *testing.T, kind, name string, c []string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	if len(c) != 9 {
		t.Errorf("%s: where the cores went: %q, want 9 cells", name, c)
		return
	}
	if kind != "SQLite" {
		if c[8] != "–" {
			t.Errorf("%s: SQLite writer busy %q on %s, want –", name, c[8], kind)
		}
	} else if busy, err := strconv.ParseFloat(strings.TrimSuffix(c[8], "%"), 64); err != nil || busy < 0 || busy > 105 {
		t.Errorf("%s: SQLite writer busy %q", name, c[8])
	} else if busy == 0 && (strings.HasPrefix(name, "TOTP") || strings.HasPrefix(name, "push")) {
		t.Errorf("%s: SQLite writer busy 0%%, want more: the scenario writes", name)
	}
	if name != "password step flood" && !strings.HasSuffix(c[2], "µs") && !strings.HasSuffix(c[2], " ms") {
		t.Errorf("%s: server CPU per request %q, want a time", name, c[2])
	}
	for i, what := range map[int]string{4: "server", 5: "harness", 6: "other"} {
		v, err := strconv.ParseFloat(c[i], 64)
		if err != nil || v < 0 || v > float64(runtime.NumCPU())+0.5 {
			t.Errorf("%s: %s cores %q", name, what, c[i])
		}
	}
	if idle, err := strconv.ParseFloat(strings.TrimSuffix(c[7], "%"), 64); err != nil || idle < 0 || idle > 100 {
		t.Errorf("%s: idle %q", name, c[7])
	}
}
