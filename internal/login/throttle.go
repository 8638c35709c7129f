package login

import "time"

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
