package oidc

import (
	"context"
	"log/slog"

	"github.com/latchkey/latchkey"
)

type ctxKey int

const (
	clientKey ctxKey = iota
	loggerKey
)

// client is who sent a request, for the audit trail.
type clientInfo struct{ ip, userAgent string }

// WithClient returns ctx carrying the IP address and user agent of the request being served,
// which the audit entries of the provider record.
func WithClient(ctx context.Context, ip, userAgent string) context.Context {
	return context.WithValue(ctx, clientKey, clientInfo{ip, userAgent})
}

// record appends an audit event; u may be nil (then userID may name the user).
func (p *Provider) record(ctx context.Context, u *latchkey.User, action, outcome, detail string) {
	p.recordID(ctx, u, 0, action, outcome, detail)
}

func (p *Provider) recordID(ctx context.Context, u *latchkey.User, userID latchkey.UserID, action, outcome, detail string) {
	e := latchkey.AuditEvent{UserID: userID, Action: action, Outcome: outcome, Detail: detail}
	if u != nil {
		e.UserID, e.Username = u.ID, u.Username
	}
	p.recordEvent(ctx, e)
}

// recordEvent appends e with the request's IP address and user agent.
func (p *Provider) recordEvent(ctx context.Context, e latchkey.AuditEvent) {
	if p.opt.Audit == nil {
		return
	}
	if c, ok := ctx.Value(clientKey).(clientInfo); ok {
		e.IP, e.UserAgent = c.ip, c.userAgent
	}
	// The recorder logs its failures; a grant does not fail for want of its audit entry.
	_ = p.opt.Audit.Record(ctx, e)
}

// logContext marks ctx as served by p, so that what the library logs through the default
// logger reaches p's logger (LogHandler).
func (p *Provider) logContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, loggerKey, p.log)
}

// LogHandler returns a slog.Handler for slog.SetDefault. zitadel/oidc logs request errors
// only through the default logger; this handler sends each record whose context comes from a
// Provider's request to that Provider's logger, and every other record to fallback (which
// must not be the default handler itself).
func LogHandler(fallback slog.Handler) slog.Handler { return &logHandler{fallback: fallback} }

type logHandler struct {
	fallback slog.Handler
	// with are the WithAttrs and WithGroup calls, in order, replayed on the target.
	with []func(slog.Handler) slog.Handler
}

func (h *logHandler) target(ctx context.Context) slog.Handler {
	if ctx != nil {
		if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
			return l.Handler()
		}
	}
	return h.fallback
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.target(ctx).Enabled(ctx, l)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	t := h.target(ctx)
	for _, f := range h.with {
		t = f(t)
	}
	return t.Handle(ctx, r)
}

func (h *logHandler) plus(f func(slog.Handler) slog.Handler) slog.Handler {
	return &logHandler{fallback: h.fallback, with: append(append([]func(slog.Handler) slog.Handler(nil), h.with...), f)}
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.plus(func(t slog.Handler) slog.Handler { return t.WithAttrs(attrs) })
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return h.plus(func(t slog.Handler) slog.Handler { return t.WithGroup(name) })
}
