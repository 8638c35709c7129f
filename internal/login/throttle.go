package login

import (
	"sync"
	"time"

	"github.com/latchkey/latchkey"
)

// ThrottleOptions sets how failed attempts slow an attacker down.
type ThrottleOptions struct {
	// FreeFailures is how many consecutive failures an account may have before waits start.
	FreeFailures int
	// BaseWait is the first wait; each further failure doubles it, up to MaxWait.
	BaseWait time.Duration
	MaxWait  time.Duration
	// LockAt is the number of consecutive failures after which the account is locked until an
	// administrator unlocks it (NIST SP 800-63B: never more than 100).
	LockAt int
	// IPBurst failures from one IP address are allowed at once; then one more every IPRefill.
	IPBurst  int
	IPRefill time.Duration
}

// DefaultThrottle is the shipped throttling policy.
var DefaultThrottle = ThrottleOptions{
	FreeFailures: 5,
	BaseWait:     time.Second,
	MaxWait:      15 * time.Minute,
	LockAt:       100,
	IPBurst:      50,
	IPRefill:     10 * time.Second,
}

// accountWait returns how long after the last failure an account with n consecutive failures
// must wait, and whether it is locked outright.
func (o ThrottleOptions) accountWait(n int) (wait time.Duration, locked bool) {
	if n >= o.LockAt {
		return 0, true
	}
	if n < o.FreeFailures {
		return 0, false
	}
	wait = o.BaseWait
	for i := o.FreeFailures; i < n && wait < o.MaxWait; i++ {
		wait *= 2
	}
	return min(wait, o.MaxWait), false
}

// ipLimiter is a per-IP token bucket of failures, held in memory. Each node limits on its own;
// the per-account counter, which is what matters against a targeted attack, lives in the
// database and is shared.
type ipLimiter struct {
	mu      sync.Mutex
	burst   float64
	refill  time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const ipLimiterMaxEntries = 100_000

func newIPLimiter(burst int, refill time.Duration) *ipLimiter {
	return &ipLimiter{burst: float64(burst), refill: refill, buckets: map[string]*bucket{}}
}

func (l *ipLimiter) level(ip string, now time.Time) *bucket {
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= ipLimiterMaxEntries {
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

// evict drops every full bucket: they carry no information.
func (l *ipLimiter) evict(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.refill) >= l.burst {
			delete(l.buckets, ip)
		}
	}
}

// check returns an EThrottled error when ip has no failures left.
func (l *ipLimiter) check(ip string, now time.Time) error {
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

// fail spends one token of ip.
func (l *ipLimiter) fail(ip string, now time.Time) {
	if ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(ip, now)
	b.tokens = max(0, b.tokens-1)
}
