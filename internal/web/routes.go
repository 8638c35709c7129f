package web

import (
	"net/http"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiPrefix is the pattern of every API path that no route takes (apiNoRoute).
const apiPrefix = "/api/"

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
	mux.HandleFunc("GET /auth/forward", s.forwardAuthGate(false)) // Traefik, Caddy: X-Forwarded-*
	mux.HandleFunc("GET /auth/nginx", s.forwardAuthGate(true))    // nginx auth_request: X-Original-URL
	mux.Handle("GET /auth/return", s.page(s.pageReturn))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /static/", s.staticHandler())

	// JSON API: sign-in.
	mux.Handle("POST /api/v1/login", s.api(s.apiLogin))
	mux.Handle("POST /api/v1/login/totp", s.api(s.apiLoginTOTP))
	mux.Handle("POST /api/v1/login/recovery", s.api(s.apiLoginRecovery))
	mux.Handle("POST /api/v1/login/push", s.api(s.apiLoginPush))
	mux.Handle("GET /api/v1/login/push/{id}", s.api(s.apiLoginPushStatus))
	mux.Handle("POST /api/v1/login/webauthn", s.api(s.apiLoginWebAuthn))
	mux.Handle("POST /api/v1/login/webauthn/finish", s.api(s.apiLoginWebAuthnFinish))
	mux.Handle("POST /api/v1/login/passkey", s.api(s.apiLoginPasskey))
	mux.Handle("POST /api/v1/login/passkey/finish", s.api(s.apiLoginPasskeyFinish))
	mux.Handle("POST /api/v1/login/enroll/complete", s.api(s.apiEnrollComplete))
	mux.Handle("GET /api/v1/session", s.apiAuthed(s.apiSession))
	mux.Handle("POST /api/v1/logout", s.api(s.apiLogout))

	// JSON API: the signed-in user's account.
	mux.Handle("GET /api/v1/account/security", s.apiAuthed(s.apiSecurity))
	mux.Handle("POST /api/v1/account/reauthenticate", s.apiAuthed(s.apiReauthenticate))
	mux.Handle("POST /api/v1/account/password", s.apiAuthed(s.apiChangePassword))
	mux.Handle("POST /api/v1/account/totp", s.apiEnrollable(s.apiBeginTOTP))
	mux.Handle("POST /api/v1/account/totp/confirm", s.apiEnrollable(s.apiConfirmTOTP))
	mux.Handle("DELETE /api/v1/account/totp", s.apiAuthed(s.apiDisableTOTP))
	mux.Handle("PATCH /api/v1/account/totp/{id}", s.apiAuthed(s.apiRenameTOTP))
	mux.Handle("GET /api/v1/account/factors", s.apiAuthed(s.apiFactors))
	mux.Handle("POST /api/v1/account/factors/primary", s.apiAuthed(s.apiPrimaryFactor))
	mux.Handle("POST /api/v1/account/recovery-codes", s.apiAuthed(s.apiRegenerateRecovery))
	mux.Handle("GET /api/v1/account/devices", s.apiAuthed(s.apiDevices))
	mux.Handle("POST /api/v1/account/devices/activation", s.apiEnrollable(s.apiCreateActivation))
	mux.Handle("PATCH /api/v1/account/devices/{id}", s.apiAuthed(s.apiUpdateDevice))
	mux.Handle("DELETE /api/v1/account/devices/{id}", s.apiAuthed(s.apiDeleteDevice))
	mux.Handle("GET /api/v1/account/webauthn", s.apiAuthed(s.apiKeys))
	mux.Handle("POST /api/v1/account/webauthn", s.apiEnrollable(s.apiBeginKey))
	mux.Handle("POST /api/v1/account/webauthn/finish", s.apiEnrollable(s.apiFinishKey))
	mux.Handle("PATCH /api/v1/account/webauthn/{id}", s.apiAuthed(s.apiRenameKey))
	mux.Handle("DELETE /api/v1/account/webauthn/{id}", s.apiAuthed(s.apiDeleteKey))
	mux.Handle("POST /api/v1/account/mfa/reset/key", s.apiAuthed(s.apiBeginConfirmKey))
	mux.Handle("POST /api/v1/account/mfa/reset", s.apiAuthed(s.apiResetMFA))
	mux.Handle("GET /api/v1/account/sessions", s.apiAuthed(s.apiSessions))
	mux.Handle("DELETE /api/v1/account/sessions/{sid}", s.apiAuthed(s.apiRevokeSession))
	mux.Handle("POST /api/v1/account/sessions/revoke-all", s.apiAuthed(s.apiRevokeAllSessions))
	mux.Handle("PUT /api/v1/account/time-zone", s.apiAuthed(s.apiTimeZone))

	// Device API (docs/device-protocol.md): every request signed by the device's key.
	mux.Handle("POST "+deviceproto.PathActivate, s.deviceRedeem(latchkey.ActivationNew))
	mux.Handle("POST "+deviceproto.PathRedeem, s.deviceRedeem(latchkey.ActivationTransfer))
	mux.Handle("GET "+deviceproto.PathDevice, s.device(s.deviceInfo, true))
	mux.Handle("GET "+deviceproto.PathDevices, s.device(s.deviceDevices, false))
	mux.Handle("GET "+deviceproto.PathEvents, s.device(s.deviceEvents, false))
	mux.Handle("GET "+deviceproto.PathChallenges, s.device(s.deviceChallenges, false))
	mux.Handle("POST "+deviceproto.PathAnswer+"{id}/answer", s.deviceAnswer())
	mux.Handle("POST "+deviceproto.PathTransfer, s.device(s.deviceTransfer, false))
	mux.Handle(apiPrefix, s.api(apiNoRoute(mux)))

	// Pages.
	mux.Handle("GET /{$}", s.page(s.pageHome))
	mux.Handle("GET /login", s.page(s.pageLogin))
	mux.Handle("POST /login", s.page(s.pageLoginPost))
	mux.Handle("GET /login/code", s.page(s.pageCode))
	mux.Handle("POST /login/code", s.page(s.pageCodePost))
	mux.Handle("GET /login/recovery", s.page(s.pageRecovery))
	mux.Handle("POST /login/recovery", s.page(s.pageRecoveryPost))
	mux.Handle("POST /login/push", s.page(s.pageLoginPush))
	mux.Handle("POST /login/push/check", s.page(s.pageLoginPushCheck))
	mux.Handle("GET /login/enroll", s.page(s.pageEnroll))
	mux.Handle("POST /login/enroll/totp", s.page(s.pageEnrollTOTP))
	mux.Handle("POST /login/enroll/totp/confirm", s.page(s.pageEnrollTOTPConfirm))
	mux.Handle("POST /login/enroll/device", s.page(s.pageEnrollDevice))
	mux.Handle("POST /login/enroll/done", s.page(s.pageEnrollDone))
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
	mux.Handle("GET /settings/security/devices/add", s.pageAuthed(s.pageDeviceAdd))
	mux.Handle("POST /settings/security/devices/add", s.pageAuthed(s.pageDeviceAddPost))
	mux.Handle("POST /settings/security/devices/{id}/rename", s.pageAuthed(s.pageDeviceRename))
	mux.Handle("POST /settings/security/devices/{id}/primary", s.pageAuthed(s.pageDevicePrimary))
	mux.Handle("POST /settings/security/devices/{id}/remove", s.pageAuthed(s.pageDeviceRemove))
	mux.Handle("GET /settings/security/keys/add", s.pageAuthed(s.pageKeyAdd))
	mux.Handle("POST /settings/security/keys/{id}/rename", s.pageAuthed(s.pageKeyRename))
	mux.Handle("POST /settings/security/totp/{id}/rename", s.pageAuthed(s.pageTOTPRename))
	mux.Handle("POST /settings/security/primary", s.pageAuthed(s.pagePrimary))
	mux.Handle("POST /settings/security/keys/{id}/remove", s.pageAuthed(s.pageKeyRemove))
	mux.Handle("GET /settings/security/reset", s.pageAuthed(s.pageReset))
	mux.Handle("POST /settings/security/reset", s.pageAuthed(s.pageResetPost))
	mux.Handle("GET /settings/password", s.pageAuthed(s.pagePassword))
	mux.Handle("POST /settings/password", s.pageAuthed(s.pagePasswordPost))
	mux.Handle("GET /settings/account", s.pageAuthed(s.pageAccount))
	mux.Handle("POST /settings/account", s.pageAuthed(s.pageAccountPost))
	mux.Handle("POST /settings/account/time-zone", s.pageAuthed(s.pageTimeZone))
	mux.Handle("POST /settings/security/sessions/{sid}/revoke", s.pageAuthed(s.pageRevokeSession))
	mux.Handle("POST /settings/security/sessions/revoke-all", s.pageAuthed(s.pageRevokeAllSessions))
	s.mountOIDC(mux) // OpenID Connect provider: /oidc/...
	if s.oidc != nil {
		// RP-initiated logout ends the browser's Latchkey session (sessions.go). It takes GET
		// and POST only: HEAD, which the GET route would take, and every other method (the
		// /oidc/ route) get the provider's 405 (Allow: GET, POST), and change nothing.
		mux.Handle("GET /oidc/end_session", s.page(s.pageEndSession))
		mux.Handle("POST /oidc/end_session", s.page(s.pageEndSession))
		mux.Handle("HEAD /oidc/end_session", s.oidcHandler())
	}
	s.mountSupport(mux) // support desk: /api/v1/support, /support, /admin/tickets

	// Admin console /admin/... (one table in admin.go) and /activate for invited users.
	s.mountAdmin(mux)

	// Any other path: the "Page not found" page (API paths: apiNoRoute above).
	mux.Handle("/", s.page(s.pageNotFound(mux)))

	var h http.Handler = mux
	h = s.limitBody(h)
	h = crossOrigin(h)
	h = securityHeaders(h)
	h = s.observe(h)
	h = s.recover(h)
	return h
}
