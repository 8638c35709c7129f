//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// rssChildEnv makes this test binary a child that, for each line N of its standard input,
// maps N MiB, touches every page, unmaps them and answers "ok": a spike of resident memory
// of a few milliseconds (TestPeakMeter).
const rssChildEnv = "LATCHKEY_BENCH_RSS_CHILD"

// rssChild runs the child when rssChildEnv is set (TestMain).
func rssChild() {
	if os.Getenv(rssChildEnv) == "" {
		return
	}
	// Announce that the runtime is up, so the parent reads a base RSS of a running child
	// and not of one still between fork and exec (0 MiB, under -race ~30 MiB less than later).
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			os.Exit(2)
		}
		b, err := syscall.Mmap(-1, 0, n<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			os.Exit(1)
		}
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 1
		}
		if err := syscall.Munmap(b); err != nil {
			os.Exit(1)
		}
		fmt.Println("ok")
	}
	os.Exit(0)
}

// TestPeakMeter: the peak of a stretch is the kernel's high-water mark, reset at its start.
// It counts a spike of 64 MiB that lasts a few milliseconds (which sampling every 10 ms
// misses or catches in part), forgets one before the stretch, and the run's peak keeps it.
func TestPeakMeter(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), rssChildEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	out := bufio.NewScanner(outPipe)
	pid := cmd.Process.Pid
	spike := func() {
		t.Helper()
		if _, err := io.WriteString(in, "64\n"); err != nil {
			t.Fatal(err)
		}
		if !out.Scan() || out.Text() != "ok" {
			t.Fatalf("the child did not answer ok: %q %v", out.Text(), out.Err())
		}
	}
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("the child did not start: %q %v", out.Text(), out.Err())
	}
	const spikeBytes = 64 << 20
	base, err := rss(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	if err := resetPeak(pid); err != nil {
		t.Fatalf("resetting the child's VmHWM: %v (the meter would fall back to sampling)", err)
	}

	spike() // before the stretch
	runPeak.Store(0)
	m := measurePeak(pid)
	if m.smp != nil {
		t.Fatal("the meter samples: the reset was refused")
	}
	if got := runPeak.Load(); got < base+spikeBytes-(1<<20) {
		t.Errorf("the run's peak read before the reset is %d MiB, want the spike before it (≥ %d MiB)", got>>20, (base+spikeBytes)>>20)
	}
	if got := m.Stop(); got >= base+spikeBytes/2 {
		t.Errorf("the peak of a stretch with no spike is %d MiB, want about the RSS (%d MiB): the reset did not forget the spike before", got>>20, base>>20)
	}

	m = measurePeak(pid)
	spike() // within the stretch
	rssAfter, err := rss(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	if rssAfter >= base+spikeBytes/2 {
		t.Fatalf("the child's RSS after its spike is %d MiB: the spike did not end", rssAfter>>20)
	}
	if got := m.Stop(); got < base+spikeBytes-(1<<20) {
		t.Errorf("the peak of a stretch with a spike is %d MiB, want the spike (≥ %d MiB)", got>>20, (base+spikeBytes)>>20)
	}
}
