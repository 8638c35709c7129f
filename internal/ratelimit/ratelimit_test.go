package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
)

// TestTakeIsCheckAndSpend: of many concurrent takes, exactly the burst passes; a refund gives
// one back; time refills; an empty IP is never limited.
func TestTakeIsCheckAndSpend(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	l := New(5, 10*time.Second)
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Take("192.0.2.1", now) == nil {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 5 {
		t.Fatalf("%d takes passed, want the burst of 5", passed.Load())
	}
	err := l.Take("192.0.2.1", now)
	if latchkey.ErrorCode(err) != latchkey.EThrottled {
		t.Fatalf("take on an empty bucket: %v", err)
	}
	l.Refund("192.0.2.1", now)
	if err := l.Take("192.0.2.1", now); err != nil {
		t.Fatalf("take after a refund: %v", err)
	}
	if err := l.Take("192.0.2.1", now.Add(10*time.Second)); err != nil {
		t.Fatalf("take after one refill: %v", err)
	}
	if err := l.Take("192.0.2.2", now); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	for range 100 {
		if err := l.Take("", now); err != nil {
			t.Fatal("an unknown IP was limited")
		}
	}
	for range 10 {
		l.Refund("192.0.2.2", now)
	}
	n := 0
	for l.Take("192.0.2.2", now) == nil {
		n++
	}
	if n != 5 {
		t.Fatalf("refunds filled the bucket beyond its burst: %d takes", n)
	}
}

// TestIPv6SharesItsSlash64: the addresses of one IPv6 /64 spend one bucket, another /64 has
// its own; an IPv4 address is the same bucket however it is written.
func TestIPv6SharesItsSlash64(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	l := New(10, time.Hour)
	passed := 0
	for i := range 100 {
		if l.Take(fmt.Sprintf("2001:db8:1:2::%x", i+1), now) == nil {
			passed++
		}
	}
	if passed != 10 {
		t.Errorf("%d of 100 attempts from one /64 passed, want the burst of 10", passed)
	}
	if err := l.Take("2001:db8:1:3::1", now); err != nil {
		t.Errorf("another /64: %v", err)
	}
	for range 10 {
		l.Fail("192.0.2.7", now)
	}
	if err := l.Take("::ffff:192.0.2.7", now); latchkey.ErrorCode(err) != latchkey.EThrottled {
		t.Errorf("192.0.2.7 written as IPv6: %v, want throttled", err)
	}
	for ip, want := range map[string]string{
		"2001:db8:1:2:aaaa:bbbb:cccc:dddd": "2001:db8:1:2::/64",
		"fe80::1%eth0":                     "fe80::/64",
		"::ffff:192.0.2.7":                 "192.0.2.7",
		"192.0.2.7":                        "192.0.2.7",
		"not an address":                   "not an address",
	} {
		if got := Key(ip); got != want {
			t.Errorf("Key(%q) = %q, want %q", ip, got, want)
		}
	}
}

// TestFloodOfAddressesIsBounded: with as many failing addresses as the limiter holds, a new
// address does not keep it scanning the whole map: the first one past the bound drops a tenth,
// and the next ones are added without a scan until it fills again.
func TestFloodOfAddressesIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	l := New(10, time.Hour)
	for i := range maxEntries {
		l.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), now)
	}
	if len(l.buckets) != maxEntries {
		t.Fatalf("%d buckets, want %d", len(l.buckets), maxEntries)
	}
	l.Fail("192.0.2.1", now)
	if n := len(l.buckets); n != maxEntries*9/10+1 {
		t.Fatalf("after one more address: %d buckets, want %d", n, maxEntries*9/10+1)
	}
	for i := range 1000 {
		l.Fail(fmt.Sprintf("198.51.%d.%d", i>>8, i&255), now)
	}
	if n := len(l.buckets); n != maxEntries*9/10+1001 {
		t.Errorf("after 1000 more: %d buckets, want %d (no scan dropped any)", n, maxEntries*9/10+1001)
	}
}
