package latchkey

import "time"

// Throttle counts consecutive failures for a key ("user:alice", "ip:192.0.2.1"), shared by every
// session and node. The waiting rule lives in internal/login; the store only counts.
type Throttle struct {
	Key           string
	Failures      int
	LastFailureAt time.Time
}

// ThrottleStore persists failure counters.
type ThrottleStore interface {
	// FindThrottle returns the counter for key, or a zero Throttle (Failures 0) when none.
	FindThrottle(ctx Context, key string) (Throttle, error)
	// FindThrottles returns the counters for keys, in their order, in one read: each as
	// FindThrottle would (a zero Throttle with its Key when none).
	FindThrottles(ctx Context, keys ...string) ([]Throttle, error)
	// RecordFailure atomically increments the counter for key, sets LastFailureAt to at, and
	// returns the new count.
	RecordFailure(ctx Context, key string, at time.Time) (int, error)
	// ReserveAttempt counts an attempt before it is checked: it sets the counter for key to
	// seen.Failures+1 and LastFailureAt to at, if and only if the counter still holds
	// seen.Failures (compare and swap). It reports whether it did; of concurrent callers that
	// saw the same counter, exactly one succeeds.
	ReserveAttempt(ctx Context, key string, seen Throttle, at time.Time) (bool, error)
	// RefundAttempt takes back one counted attempt of key (not below zero), for an attempt that
	// turned out to succeed. n is the count the attempt made and prev the LastFailureAt before
	// it: when no other attempt was counted since (the counter still holds n), LastFailureAt
	// goes back to prev, so a success does not start a new wait.
	RefundAttempt(ctx Context, key string, n int, prev time.Time) error
	// ResetThrottle removes the counter for key.
	ResetThrottle(ctx Context, key string) error
}

// Throttle keys shared by the services.

// ThrottleKeyUser counts an account's consecutive failed sign-in steps.
func ThrottleKeyUser(username string) string { return "user:" + username }

// ThrottleKeyPush counts the pushes sent to an account since its last successful sign-in.
func ThrottleKeyPush(username string) string { return "push:" + username }

// ThrottleKeyPushPause marks an account whose pushes are paused after a fraud report; its
// LastFailureAt is the time of the report.
func ThrottleKeyPushPause(username string) string { return "push-pause:" + username }
