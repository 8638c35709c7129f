package main

import (
	"strings"
	"testing"
)

// TestConnectionLimits: the listener keeps descriptors for the database and files, device
// waits take at most half of the connections (so sign-ins always find one), and a configured
// push.max_connections wins.
func TestConnectionLimits(t *testing.T) {
	for _, tt := range []struct {
		nofile           uint64
		configured       int
		wantConns, waits int
	}{
		{0, 0, 0, 0},                       // unknown: no limit
		{0, 500, 0, 500},                   // configured without a known descriptor limit
		{1024, 0, 768, 384},                // a small limit keeps a quarter
		{20000, 0, 19744, 9872},            // the probe's limit, which 20,000 streams exhausted
		{20000, 1000, 19744, 1000},         // configured
		{1 << 20, 0, 1<<20 - 256, 100_000}, // plenty of descriptors: capped for memory
	} {
		conns, waits := connectionLimits(tt.nofile, tt.configured)
		if conns != tt.wantConns || waits != tt.waits {
			t.Errorf("connectionLimits(%d, %d) = %d, %d; want %d, %d", tt.nofile, tt.configured, conns, waits, tt.wantConns, tt.waits)
		}
	}
	if n := descriptorLimit(); n == 0 {
		t.Error("descriptorLimit() = 0 on a Unix system")
	}
}

func TestMaxConnectionsMustNotBeNegative(t *testing.T) {
	cfg := defaultConfig()
	cfg.Push.MaxConnections = -1
	if p := strings.Join(cfg.validate(), "\n"); !strings.Contains(p, "push.max_connections") {
		t.Fatalf("push.max_connections -1: %q", p)
	}
}
