package latchkey_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
)

func TestErrorCodeAndMessage(t *testing.T) {
	domain := latchkey.Errorf(latchkey.EInvalidCode, "That code didn't work.")
	wrapped := fmt.Errorf("use code: %w", domain)
	internal := errors.New("disk on fire: /var/lib/secret")
	tests := []struct {
		name      string
		err       error
		code, msg string
	}{
		{"nil", nil, "", ""},
		{"domain", domain, latchkey.EInvalidCode, "That code didn't work."},
		{"wrapped", wrapped, latchkey.EInvalidCode, "That code didn't work."},
		{"internal", internal, latchkey.EInternal, "Something went wrong on our side. Please try again."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := latchkey.ErrorCode(tt.err); got != tt.code {
				t.Errorf("ErrorCode = %q, want %q", got, tt.code)
			}
			if got := latchkey.ErrorMessage(tt.err); got != tt.msg {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.msg)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want time.Duration
		msg  string
	}{
		{0, time.Second, "Too many attempts. Try again in 1 second."},
		{1500 * time.Millisecond, 2 * time.Second, "Too many attempts. Try again in 2 seconds."},
		{15 * time.Minute, 15 * time.Minute, "Too many attempts. Try again in 900 seconds."},
	}
	for _, tt := range tests {
		e := latchkey.Throttled(tt.in)
		if e.Code != latchkey.EThrottled || e.RetryAfter != tt.want || e.Message != tt.msg {
			t.Errorf("Throttled(%v) = %+v, want RetryAfter %v, %q", tt.in, e, tt.want, tt.msg)
		}
	}
}

func TestAuditHashCoversEveryField(t *testing.T) {
	base := latchkey.AuditEvent{Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), UserID: 1, Username: "alice", Action: "login.password", Outcome: "failure", IP: "192.0.2.1", UserAgent: "UA", Detail: "d", TicketID: 7}
	h := base.ComputeHash([]byte("prev"))
	edits := map[string]func(e *latchkey.AuditEvent){
		"time":       func(e *latchkey.AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		"user id":    func(e *latchkey.AuditEvent) { e.UserID = 2 },
		"username":   func(e *latchkey.AuditEvent) { e.Username = "bob" },
		"action":     func(e *latchkey.AuditEvent) { e.Action = "logout" },
		"outcome":    func(e *latchkey.AuditEvent) { e.Outcome = "success" },
		"ip":         func(e *latchkey.AuditEvent) { e.IP = "192.0.2.2" },
		"user agent": func(e *latchkey.AuditEvent) { e.UserAgent = "UB" },
		"detail":     func(e *latchkey.AuditEvent) { e.Detail = "e" },
		"ticket":     func(e *latchkey.AuditEvent) { e.TicketID = 8 },
		"actor id":   func(e *latchkey.AuditEvent) { e.ActorID = 3 },
		"actor":      func(e *latchkey.AuditEvent) { e.Actor = "root" },
		// Moving text between fields must change the hash too (length-prefixed encoding).
		"shifted text": func(e *latchkey.AuditEvent) { e.Username, e.Action = "alicelogin", ".password" },
	}
	for name, edit := range edits {
		e := base
		edit(&e)
		if bytes.Equal(e.ComputeHash([]byte("prev")), h) {
			t.Errorf("editing the %s does not change the hash", name)
		}
	}
	if bytes.Equal(base.ComputeHash([]byte("other")), h) {
		t.Error("the previous hash is not part of the hash")
	}
	// An entry without an actor hashes as every entry did before the actor existed (this
	// value was computed with that code), so the trails written then still verify.
	if got := hex.EncodeToString(h); got != "3f08150ab4fa221748dca216d8b54ec8dc6926d4a5bf015c7932a9d3bf162ed0" {
		t.Errorf("the hash of an entry without an actor = %s, not the one it had before actors", got)
	}
	// Moving text between the actor and the fields before it changes the hash too.
	withActor := base
	withActor.ActorID, withActor.Actor = 3, "root"
	moved := withActor
	moved.Detail, moved.Actor = "droot", ""
	if bytes.Equal(withActor.ComputeHash(nil), moved.ComputeHash(nil)) {
		t.Error("text moved from the actor to the detail keeps the hash")
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"  Work phone ": "Work phone", "Clé bleue": "Clé bleue", "電話": "電話"} {
		if got, ok := latchkey.CleanName(in, 64); !ok || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "   ", "a\u200bb", "a\u202eb", "a\x00b", "a\nb", "a\u2066b", strings.Repeat("x", 65)} {
		if got, ok := latchkey.CleanName(in, 64); ok {
			t.Errorf("CleanName(%q) = %q, accepted", in, got)
		}
	}
}

func TestCleanLine(t *testing.T) {
	for in, want := range map[string]string{" lost  phone,\n\tverified ": "lost phone, verified", "": "", "Überprüft": "Überprüft"} {
		if got, ok := latchkey.CleanLine(in, 500); !ok || got != want {
			t.Errorf("CleanLine(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"a\x00b", "bad\xff", "a\u202eb", strings.Repeat("x", 501)} {
		if got, ok := latchkey.CleanLine(in, 500); ok {
			t.Errorf("CleanLine(%q) = %q, accepted", in, got)
		}
	}
}
