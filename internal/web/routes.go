package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every route of the server in one place. Tiers of middleware:
//   - all: recover, access log, metrics, security headers, cross-origin protection for
//     every non-safe method, body limit;
//   - api: JSON errors; "authed" handlers get the signed-in session or a 401;
//   - pages: HTML; "authed" pages redirect to /login when signed out.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	// Operations.
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /static/", s.staticHandler())

	// JSON API: sign-in.
	mux.Handle("POST /api/v1/login", s.api(s.apiLogin))
	mux.Handle("POST /api/v1/login/totp", s.api(s.apiLoginTOTP))
	mux.Handle("POST /api/v1/login/recovery", s.api(s.apiLoginRecovery))
	mux.Handle("GET /api/v1/session", s.apiAuthed(s.apiSession))
	mux.Handle("POST /api/v1/logout", s.api(s.apiLogout))

	// JSON API: the signed-in user's account.
	mux.Handle("GET /api/v1/account/security", s.apiAuthed(s.apiSecurity))
	mux.Handle("POST /api/v1/account/reauthenticate", s.api(s.apiReauthenticate))
	mux.Handle("POST /api/v1/account/password", s.api(s.apiChangePassword))
	mux.Handle("POST /api/v1/account/totp", s.apiAuthed(s.apiBeginTOTP))
	mux.Handle("POST /api/v1/account/totp/confirm", s.apiAuthed(s.apiConfirmTOTP))
	mux.Handle("DELETE /api/v1/account/totp", s.apiAuthed(s.apiDisableTOTP))
	mux.Handle("POST /api/v1/account/recovery-codes", s.apiAuthed(s.apiRegenerateRecovery))
	mux.Handle("/api/", s.api(s.apiNotFound))

	// Pages.
	mux.Handle("GET /{$}", s.page(s.pageHome))
	mux.Handle("GET /login", s.page(s.pageLogin))
	mux.Handle("POST /login", s.page(s.pageLoginPost))
	mux.Handle("GET /login/code", s.page(s.pageCode))
	mux.Handle("POST /login/code", s.page(s.pageCodePost))
	mux.Handle("GET /login/recovery", s.page(s.pageRecovery))
	mux.Handle("POST /login/recovery", s.page(s.pageRecoveryPost))
	mux.Handle("POST /logout", s.page(s.pageLogout))
	mux.Handle("GET /setup", s.page(s.pageSetup))
	mux.Handle("POST /setup", s.page(s.pageSetupPost))
	mux.Handle("GET /reauth", s.pageAuthed(s.pageReauth))
	mux.Handle("POST /reauth", s.pageAuthed(s.pageReauthPost))
	mux.Handle("GET /settings/security", s.pageAuthed(s.pageSecurity))
	mux.Handle("GET /settings/security/totp", s.pageAuthed(s.pageTOTP))
	mux.Handle("POST /settings/security/totp", s.pageAuthed(s.pageTOTPStart))
	mux.Handle("POST /settings/security/totp/confirm", s.pageAuthed(s.pageTOTPConfirm))
	mux.Handle("GET /settings/security/totp/disable", s.pageAuthed(s.pageTOTPDisable))
	mux.Handle("POST /settings/security/totp/disable", s.pageAuthed(s.pageTOTPDisablePost))
	mux.Handle("GET /settings/security/recovery-codes", s.pageAuthed(s.pageRecoveryCodes))
	mux.Handle("POST /settings/security/recovery-codes", s.pageAuthed(s.pageRecoveryCodesPost))
	mux.Handle("GET /settings/password", s.pageAuthed(s.pagePassword))
	mux.Handle("POST /settings/password", s.pageAuthed(s.pagePasswordPost))
	mux.Handle("GET /settings/account", s.pageAuthed(s.pageAccount))
	mux.Handle("POST /settings/account", s.pageAuthed(s.pageAccountPost))

	var h http.Handler = mux
	h = s.limitBody(h)
	h = crossOrigin(h)
	h = securityHeaders(h)
	h = s.observe(h)
	h = s.recover(h)
	return h
}
