package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Where the cores went. The harness and the server share the machine's cores, so every rate
// it prints is the server's and the load generator's together. To read a figure as the
// server's own, each scenario also records the processor time of the server's processes, of
// the harness, and of the whole machine (what is left: other processes, PostgreSQL, and the
// time no core had work), from /proc, over the same interval as its rate. With them a
// scenario's server CPU per request can be compared with /healthz's, which the ratio of two
// rates on shared cores does not show.

// userHZ is the unit of /proc/stat and /proc/PID/stat: USER_HZ, 100 on every Linux the
// kernel's ABI supports (it is not the kernel's HZ).
const userHZ = 100

// cpuSnap is the processor time used so far, in seconds.
type cpuSnap struct {
	at          time.Time
	total, idle float64 // the machine's, all cores summed: every state, and idle + iowait
	server      float64 // the server's processes (utime + stime of each node)
	harness     float64 // this process
	ok          bool    // false when /proc could not be read (not Linux): no figures
}

// readCPU reads the machine's, the nodes' and the harness's processor time.
func readCPU(pids []int) cpuSnap {
	s := cpuSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	if s.total, s.idle, err = parseProcStat(string(b)); err != nil {
		return s
	}
	for _, pid := range pids {
		t, err := procTime(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s
		}
		s.server += t
	}
	if s.harness, err = procTime("/proc/self/stat"); err != nil {
		return s
	}
	s.ok = true
	return s
}

// procTime reads a process's utime + stime from its stat file, in seconds.
func procTime(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parsePidStat(string(b))
}

// parseProcStat reads the first line of /proc/stat ("cpu  user nice system idle iowait irq
// softirq steal …") into the machine's total and idle time in seconds. guest and guest_nice
// are left out: they are counted in user and nice already.
func parseProcStat(s string) (total, idle float64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i := 1; i < len(f) && i <= 8; i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += float64(v)
		if i == 4 || i == 5 {
			idle += float64(v)
		}
	}
	return total / userHZ, idle / userHZ, nil
}

// parsePidStat reads utime + stime (fields 14 and 15) of /proc/PID/stat, in seconds. The
// command name (field 2) is in parentheses and may hold spaces, so fields are counted after
// its closing parenthesis.
func parsePidStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/PID/stat: no command name in %q", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the name", len(f))
	}
	var sum float64
	for _, x := range f[11:13] {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		sum += float64(v)
	}
	return sum / userHZ, nil
}

// cpuUse is the processor time of one scenario, in cores (seconds of CPU per second of the
// scenario), the machine's idle share, and the server's CPU per successful request.
type cpuUse struct {
	server, harness, other float64 // cores
	idle                   float64 // of the machine's time, 0–1
	perRequest             time.Duration
	ok                     bool
}

// since returns what was used from a to b, with ok requests (or round trips) done.
func since(a, b cpuSnap, ok int) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	total := b.total - a.total
	if !a.ok || !b.ok || wall <= 0 || total <= 0 {
		return cpuUse{}
	}
	u := cpuUse{
		server:  (b.server - a.server) / wall,
		harness: (b.harness - a.harness) / wall,
		idle:    (b.idle - a.idle) / total,
		ok:      true,
	}
	// The machine's time over the same interval: busy cores in all, less the server's and
	// the harness's (/proc counts in ticks, so a short scenario can show a little
	// negative; it is shown as 0).
	cores := total / wall
	u.other = max(0, cores*(1-u.idle)-u.server-u.harness)
	if ok > 0 {
		u.perRequest = time.Duration(math.Round((b.server - a.server) / float64(ok) * float64(time.Second)))
	}
	return u
}

// micros formats a CPU time per request: in µs up to 10 ms, in ms above.
func micros(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
