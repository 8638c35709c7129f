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
	// RecordFailure atomically increments the counter for key, sets LastFailureAt to at, and
	// returns the new count.
	RecordFailure(ctx Context, key string, at time.Time) (int, error)
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
