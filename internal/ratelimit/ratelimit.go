// Package ratelimit holds the in-memory per-IP limiter of failed attempts that the sign-in,
// device and support services share: a token bucket per IPv4 address or IPv6 /64, refilled
// over time.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"github.com/latchkey/latchkey"
)

// Limiter is a per-key (per-IP) token bucket of failures, held in memory. Each node limits on its own;
// the per-account counter, which is what matters against a targeted attack, lives in the
// database and is shared.
type Limiter struct {
	mu      sync.Mutex
	burst   float64
	refill  time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxEntries = 100_000

// New returns a limiter allowing burst failures per IP, then one more per refill.
func New(burst int, refill time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), refill: refill, buckets: map[string]*bucket{}}
}

// Key is the bucket of an address: an IPv4 address (also when written as IPv6, ::ffff:a.b.c.d)
// is its own, an IPv6 address shares the bucket of its /64, the block one host or one
// customer line is given, so that the 2^64 addresses of one attacker are one bucket. What
// does not parse as an address is its own key.
func Key(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

func (l *Limiter) level(ip string, now time.Time) *bucket {
	ip = Key(ip)
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxEntries {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[ip] = b
		return b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(l.refill))
		b.at = now
	}
	return b
}

// evict drops every full bucket: they carry no information. When that leaves the map above
// nine tenths of maxEntries (as many clients failing at once as it holds, from as many
// addresses or /64s), it drops buckets at random down to nine tenths, forgetting some
// failures rather than scanning the whole map again for every new address: the memory and the
// work of a flood stay bounded, and the per-account counters, which are in the database,
// still hold.
func (l *Limiter) evict(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.refill) >= l.burst {
			delete(l.buckets, ip)
		}
	}
	for ip := range l.buckets { // in Go's random order
		if len(l.buckets) <= maxEntries*9/10 {
			break
		}
		delete(l.buckets, ip)
	}
}

// Check returns an EThrottled error when ip has no failures left.
func (l *Limiter) Check(ip string, now time.Time) error {
	if ip == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(ip, now)
	if b.tokens >= 1 {
		return nil
	}
	return latchkey.Throttled(time.Duration((1 - b.tokens) * float64(l.refill)))
}

// Fail spends one token of ip.
func (l *Limiter) Fail(ip string, now time.Time) {
	if ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(ip, now)
	b.tokens = max(0, b.tokens-1)
}

// Take spends one token of ip before an attempt is checked, or returns EThrottled when there is
// none: check and spend in one step, so concurrent attempts cannot all pass a check that only
// one of them should. A successful attempt gives its token back with Refund.
func (l *Limiter) Take(ip string, now time.Time) error {
	if ip == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(ip, now)
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	return latchkey.Throttled(time.Duration((1 - b.tokens) * float64(l.refill)))
}

// Refund gives back a token taken for an attempt that succeeded.
func (l *Limiter) Refund(ip string, now time.Time) {
	if ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(ip, now)
	b.tokens = min(l.burst, b.tokens+1)
}
