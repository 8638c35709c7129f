package latchkey

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Context is context.Context, named here so interface declarations stay short.
type Context = context.Context

// Error codes. They appear verbatim in JSON errors, so they are part of the public API.
const (
	EInvalid            = "invalid_request"           // malformed or missing input
	EInvalidCredentials = "invalid_credentials"       // wrong username or password (never says which)
	EInvalidCode        = "invalid_code"              // wrong, expired or replayed second-factor code
	EUnauthenticated    = "unauthenticated"           // no signed-in session
	EForbidden          = "forbidden"                 // signed in, not allowed
	EReauthenticate     = "reauthentication_required" // a fresh password is needed first
	ENotFound           = "not_found"
	EConflict           = "conflict"
	EWeakPassword       = "weak_password"
	EThrottled          = "throttled"
	ETooLarge           = "payload_too_large"
	EUnsupportedMedia   = "unsupported_media_type"
	EMethodNotAllowed   = "method_not_allowed" // the API path exists, for other methods
	EFlowExpired        = "flow_expired"
	EExpired            = "expired"           // a push challenge or code past its expiry
	EDeviceSignature    = "invalid_signature" // a device request's signature did not verify
	EUnavailable        = "unavailable"       // the database cannot be reached; try again shortly
	EInternal           = "internal"
)

// Error is a domain error: a machine code and a message a person can read. Anything that is
// not an *Error is an internal error and its text is never shown to a client.
type Error struct {
	Code    string
	Message string
	// RetryAfter is set on EThrottled and EUnavailable errors: how long the client should
	// wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("latchkey error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Throttled returns an EThrottled error that tells the client to wait d.
func Throttled(d time.Duration) *Error {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return &Error{Code: EThrottled, Message: fmt.Sprintf("Too many attempts. Try again in %d %s.", secs, unit), RetryAfter: time.Duration(secs) * time.Second}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for any other
// error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the human message of the first *Error in err's chain, or a generic
// message for internal errors, so that internal details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong on our side. Please try again."
}
