// Package latchkey is the domain of the Latchkey identity and MFA server: plain types, the small
// storage interfaces the services depend on, and the error values every layer shares.
//
// It imports only the standard library. Services live in internal/*, storage in
// internal/sqlstore, HTTP in internal/web, and only cmd/* wires them together.
package latchkey

import "time"

// Clock returns the current time. Services take a Clock so that tests can move time.
type Clock func() time.Time

// Store is everything the SQL store provides. Services depend on the smaller interfaces they use.
type Store interface {
	UserStore
	TOTPStore
	RecoveryCodeStore
	DeviceStore
	WebAuthnStore
	SessionStore
	ThrottleStore
	AuditStore
	SettingStore
	SecondFactorStore
	TicketStore
	// Ping reports whether the database is reachable.
	Ping(ctx Context) error
	// Close releases the database.
	Close() error
}
