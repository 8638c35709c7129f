package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The peak RSS of a stretch of the run (a scenario, the connected devices).
//
// The kernel keeps each process's high-water mark of resident memory (VmHWM in
// /proc/PID/status), and since Linux 4.0 resets it to the current RSS when "5" is written to
// /proc/PID/clear_refs. A stretch resets the marks of the nodes at its start and reads them at
// its end: the exact peak, spikes shorter than any sampling period included, and nothing
// running beside the load. Before, a goroutine of the harness read /proc/PID/status every
// 10 ms during every scenario, on the same two cores as the server (about 2–3% of the
// password step's rate; docs/performance.md). Where the reset is refused (another owner, a
// kernel without it), the stretch samples VmRSS every 10 ms as before.
//
// Each reset forgets the peak before it, so the stretch first reads it into runPeak: the
// peak of the whole run (the report's "Peak RSS of the run") is the largest of runPeak and
// the marks at the end (peakOfRun).

// runPeak is the largest VmHWM of any node read before a reset, or measured by a stretch.
var runPeak atomic.Uint64

// notePeak raises runPeak to v.
func notePeak(v uint64) {
	for {
		old := runPeak.Load()
		if v <= old || runPeak.CompareAndSwap(old, v) {
			return
		}
	}
}

// peakMeter measures the peak RSS of processes (the largest of any one) between
// measurePeak and Stop.
type peakMeter struct {
	pids []int
	smp  *sampler // when a reset was refused: sampling instead
}

// measurePeak starts measuring the peak RSS of pids.
func measurePeak(pids ...int) *peakMeter {
	m := &peakMeter{pids: pids}
	for _, pid := range pids {
		if hwm, err := rss(pid, "VmHWM"); err == nil {
			notePeak(hwm)
		}
		if err := resetPeak(pid); err != nil {
			m.smp = sampleRSS(pids...)
			break
		}
	}
	return m
}

// resetPeak resets the kernel's high-water mark of pid's RSS to its current RSS.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// Stop ends the measure and returns the peak.
func (m *peakMeter) Stop() uint64 {
	var peak uint64
	if m.smp != nil {
		peak = m.smp.Stop()
	} else {
		for _, pid := range m.pids {
			if v, err := rss(pid, "VmHWM"); err == nil {
				peak = max(peak, v)
			}
		}
	}
	notePeak(peak)
	return peak
}

// peakOfRun is the peak RSS of the run: the largest of the nodes' marks now (their peak
// since the last reset) and of what the stretches read before (runPeak).
func peakOfRun(c cluster) (uint64, error) {
	v, err := c.maxRSS("VmHWM")
	return max(v, runPeak.Load()), err
}

// sampler, peakMeter's fallback, records the peak VmRSS of processes (the largest of any
// one), read every 10 ms between start and stop.
type sampler struct {
	pids []int
	mu   sync.Mutex
	peak uint64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pids ...int) *sampler {
	s := &sampler{pids: pids, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			s.read()
			select {
			case <-s.stop:
				s.read()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) read() {
	for _, pid := range s.pids {
		v, err := rss(pid, "VmRSS")
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.peak = max(s.peak, v)
		s.mu.Unlock()
	}
}

// Stop ends sampling and returns the peak.
func (s *sampler) Stop() uint64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
