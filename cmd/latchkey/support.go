package main

import (
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/internal/support"
)

// SupportConfig configures the support desk (the "support" section of the config file).
type SupportConfig struct {
	// Types are the request types a requester chooses from (id and name); the defaults are
	// support.DefaultTypes. An id is stored with each ticket, so keep ids stable.
	Types []support.Choice `yaml:"types"`
	// Checks are the identity checks an agent completes before an MFA action; the defaults
	// are support.DefaultChecks. Every one of them is required.
	Checks []support.Choice `yaml:"checks"`
	// TicketsPerEmail bounds the tickets opened from one email address per hour (default 5).
	TicketsPerEmail int `yaml:"tickets_per_email"`
}

func (c *Config) validateSupport() []string {
	var p []string
	p = append(p, support.ValidChoices("support.types", c.Support.Types)...)
	p = append(p, support.ValidChoices("support.checks", c.Support.Checks)...)
	if c.Support.TicketsPerEmail < 0 {
		p = append(p, "support.tickets_per_email must not be negative")
	}
	return p
}

// newSupport wires the support desk. Users created from tickets get the admin console's
// invitation (login's InviteUser: an activation mail to set a password and enrol MFA).
func newSupport(a *app) (*support.Service, error) {
	sessionKey, _, err := a.cfg.keys()
	if err != nil {
		return nil, fmt.Errorf("support desk: %w", err)
	}
	return support.New(support.Options{
		Store:     a.db,
		Accounts:  a.login,
		Inviter:   a.login,
		Mailer:    a.mail,
		Audit:     a.audit,
		Logger:    a.log,
		Key:       sessionKey, // tracking tokens are hashed under their own purpose label
		PublicURL: strings.TrimSuffix(a.public.String(), "/"),
		Types:     a.cfg.Support.Types,
		Checks:    a.cfg.Support.Checks,
		PerEmail:  a.cfg.Support.TicketsPerEmail,
	}), nil
}
