package main

import (
	"strings"
	"testing"
)

// TestConnectionLimits: the listener keeps descriptors for the database and files; device
// waits take at most three quarters of the connections and leave 4,096 (half, on a small
// limit) for sign-ins; 10,000 devices fit a limit of 20,000; idle keep-alive connections make
// room past half of what the waits leave; a configured push.max_connections wins.
func TestConnectionLimits(t *testing.T) {
	for _, tt := range []struct {
		nofile                 uint64
		configured             int
		wantConns, waits, idle int
	}{
		{0, 0, 0, 0, 0},                // unknown: no limit
		{0, 500, 0, 500, 0},            // configured without a known descriptor limit
		{1024, 0, 768, 384, 192},       // a small limit keeps a quarter, and half for the others
		{8192, 0, 7936, 3968, 1984},    // half left for the others (4,096 is more)
		{16384, 0, 16128, 12032, 2048}, // 4,096 left for the others
		{20000, 0, 19744, 14808, 2468}, // a quarter left for the others: 10,000 devices fit
		{20000, 1000, 19744, 1000, 9372},
		{20000, 50000, 19744, 50000, 2468},          // configured past the connections
		{1 << 20, 0, 1<<20 - 256, 100_000, 474_160}, // plenty of descriptors: capped for memory
	} {
		conns, waits, idle := connectionLimits(tt.nofile, tt.configured)
		if conns != tt.wantConns || waits != tt.waits || idle != tt.idle {
			t.Errorf("connectionLimits(%d, %d) = %d, %d, %d; want %d, %d, %d", tt.nofile, tt.configured, conns, waits, idle, tt.wantConns, tt.waits, tt.idle)
		}
		if tt.configured == 0 && conns > 0 && conns-waits < min(4096, conns/2) {
			t.Errorf("nofile %d: device waits leave %d connections", tt.nofile, conns-waits)
		}
	}
	if _, waits, _ := connectionLimits(20000, 0); waits < 10_000 {
		t.Errorf("a descriptor limit of 20,000 holds %d device waits, want at least 10,000 (issue 7's target)", waits)
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
