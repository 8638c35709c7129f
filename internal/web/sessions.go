package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// This file serves the workday session to the user: "Signed in until …", the list of active
// sessions with "Sign out" per session and "Sign out everywhere" (Security page and JSON),
// the time zone setting, and RP-initiated logout (the OIDC end_session endpoint). Every way a
// session ends here also ends it for the applications (endForApps).

// endForApps revokes the OIDC tokens given in the ended sessions and sends back-channel
// logouts, in the background.
func (s *Server) endForApps(r *http.Request, ended ...*latchkey.Session) {
	if s.oidc != nil {
		s.oidc.EndSessions(r.Context(), ended...)
	}
}

// endAccountForApps is endForApps for "Sign out everywhere": it also revokes every other
// OIDC token of u, such as offline_access ones given in sessions that had ended before. It
// keeps no session's tokens: "Sign out everywhere" signs out this browser too.
func (s *Server) endAccountForApps(r *http.Request, u *latchkey.User, ended ...*latchkey.Session) {
	if s.oidc != nil {
		s.oidc.EndAllSessions(r.Context(), u.ID, "", ended...)
	}
}

// sessionJSON is one session in GET /api/v1/account/sessions.
type sessionJSON struct {
	ID         string    `json:"id"`
	Device     string    `json:"device"`
	IP         string    `json:"ip"`
	SignedInAt time.Time `json:"signed_in_at"`
	LastActive time.Time `json:"last_active_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	MFA        bool      `json:"mfa"`
	Current    bool      `json:"current"`
	// Idle sessions no longer count as signed in; their second factor is remembered until
	// expires_at, so that signing in again there asks only the password.
	Idle bool `json:"idle"`
}

type sessionsJSON struct {
	// SignedInUntil is the absolute end of the caller's session.
	SignedInUntil time.Time `json:"signed_in_until"`
	// Until says what ends it: "workday_end" or "max_age".
	Until              string        `json:"until"`
	TimeZone           string        `json:"time_zone"`
	IdleTimeoutSeconds int           `json:"idle_timeout_seconds"`
	Sessions           []sessionJSON `json:"sessions"`
}

func (s *Server) apiSessions(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	list, err := s.login.Sessions(r.Context(), a.user, a.session)
	if err != nil {
		return nil, err
	}
	e := s.login.Expiry(a.session, a.user)
	resp := sessionsJSON{SignedInUntil: e.Until, Until: "max_age", TimeZone: e.Location.String(), IdleTimeoutSeconds: int(e.IdleTimeout / time.Second), Sessions: []sessionJSON{}}
	if e.Workday {
		resp.Until = "workday_end"
	}
	for _, x := range list {
		resp.Sessions = append(resp.Sessions, sessionJSON{ID: x.SID, Device: describeUserAgent(x.UserAgent), IP: x.IP, SignedInAt: x.CreatedAt,
			LastActive: x.LastSeenAt, ExpiresAt: x.ExpiresAt, MFA: x.MFAAt != nil, Current: x.Current, Idle: x.Idle})
	}
	return resp, nil
}

func (s *Server) apiRevokeSession(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	ended, err := s.login.RevokeSession(r.Context(), client(r), a.user, r.PathValue("sid"))
	if err != nil {
		return nil, err
	}
	s.endForApps(r, ended)
	if ended.ID == a.session.ID {
		s.clearSession(w)
	}
	return map[string]any{"revoked": ended.SID, "signed_out": ended.ID == a.session.ID}, nil
}

func (s *Server) apiRevokeAllSessions(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	ended, err := s.login.RevokeAllSessions(r.Context(), client(r), a.user)
	if err != nil {
		return nil, err
	}
	s.endAccountForApps(r, a.user, ended...)
	s.clearSession(w)
	return map[string]any{"revoked": len(ended), "signed_out": true}, nil
}

func (s *Server) pageRevokeSession(w http.ResponseWriter, r *http.Request, a *auth) error {
	ended, err := s.login.RevokeSession(r.Context(), client(r), a.user, r.PathValue("sid"))
	if err != nil {
		return err
	}
	s.endForApps(r, ended)
	if ended.ID == a.session.ID {
		s.clearSession(w)
		http.Redirect(w, r, "/login?done=signed-out", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/settings/security?done=session-ended#sessions", http.StatusSeeOther)
	return nil
}

func (s *Server) pageRevokeAllSessions(w http.ResponseWriter, r *http.Request, a *auth) error {
	ended, err := s.login.RevokeAllSessions(r.Context(), client(r), a.user)
	if err != nil {
		return err
	}
	s.endAccountForApps(r, a.user, ended...)
	s.clearSession(w)
	http.Redirect(w, r, "/login?done=signed-out-all", http.StatusSeeOther)
	return nil
}

// sessionsView is the "Where you're signed in" panel of the Security page.
type sessionsView struct {
	Until    string // in the user's time zone, e.g. "Monday 23 November 2026, 19:00 CET"
	UntilISO string
	Workday  bool
	MFA      bool
	Idle     string // "1 hour"
	Zone     string
	List     []sessionRow
}

type sessionRow struct {
	SID, Device, IP            string
	SignedIn, LastActive       string
	SignedInISO, LastActiveISO string
	Current, Idle, MFA         bool
}

const pageTime = "Monday 2 January 2006, 15:04 MST"

func (s *Server) sessionsView(r *http.Request, a *auth) (*sessionsView, error) {
	list, err := s.login.Sessions(r.Context(), a.user, a.session)
	if err != nil {
		return nil, err
	}
	e := s.login.Expiry(a.session, a.user)
	v := &sessionsView{Until: e.Until.In(e.Location).Format(pageTime), UntilISO: e.Until.Format(time.RFC3339), Workday: e.Workday,
		MFA: a.session.MFAAt != nil, Idle: humanDuration(e.IdleTimeout), Zone: e.Location.String()}
	for _, x := range list {
		v.List = append(v.List, sessionRow{SID: x.SID, Device: describeUserAgent(x.UserAgent), IP: x.IP,
			SignedIn: x.CreatedAt.In(e.Location).Format(pageTime), SignedInISO: x.CreatedAt.Format(time.RFC3339),
			LastActive: x.LastSeenAt.In(e.Location).Format(pageTime), LastActiveISO: x.LastSeenAt.Format(time.RFC3339),
			Current: x.Current, Idle: x.Idle, MFA: x.MFAAt != nil})
	}
	return v, nil
}

// describeUserAgent names the browser and operating system of a User-Agent header in plain
// words ("Firefox on Windows"). It recognises the common ones and says "Unknown browser"
// otherwise; the header is never shown raw.
func describeUserAgent(ua string) string {
	has := func(s string) bool { return strings.Contains(ua, s) }
	browser := ""
	switch {
	case has("Edg/"):
		browser = "Edge"
	case has("OPR/"):
		browser = "Opera"
	case has("HeadlessChrome/"):
		browser = "Headless Chrome"
	case has("Firefox/"):
		browser = "Firefox"
	case has("Chrome/") || has("CriOS/"):
		browser = "Chrome"
	case has("Safari/"):
		browser = "Safari"
	case has("latch/") || has("Latch/"):
		browser = "Latch app"
	case has("curl/"):
		browser = "curl"
	case strings.HasPrefix(ua, "Go-http-client/"):
		browser = "Go program"
	}
	os := ""
	switch {
	case has("iPhone") || has("iPad"):
		os = "iOS"
	case has("Android"):
		os = "Android"
	case has("Windows"):
		os = "Windows"
	case has("Mac OS X") || has("Macintosh"):
		os = "macOS"
	case has("CrOS"):
		os = "ChromeOS"
	case has("Linux"):
		os = "Linux"
	}
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "A browser on " + os
	}
	return "Unknown browser"
}

// pageTimeZone saves the user's time zone (Settings › Account).
func (s *Server) pageTimeZone(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	if _, err := s.login.SetTimeZone(r.Context(), client(r), a.user, r.PostFormValue("time_zone")); err != nil {
		return err
	}
	http.Redirect(w, r, "/settings/account?done=time-zone", http.StatusSeeOther)
	return nil
}

type timeZoneRequest struct {
	TimeZone string `json:"time_zone"`
}

func (s *Server) apiTimeZone(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req timeZoneRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	u, err := s.login.SetTimeZone(r.Context(), client(r), a.user, req.TimeZone)
	if err != nil {
		return nil, err
	}
	return map[string]string{"time_zone": u.TimeZone}, nil
}

// pageEndSession is the OIDC end_session endpoint (RP-initiated logout). With a valid
// id_token_hint for the browser's user, it signs the browser out of Latchkey, and so of every
// application, and returns to the client's registered post_logout_redirect_uri with state.
// Without one (or with one of another user or an earlier session), a GET only asks the user to confirm (a link on another site must not sign a
// user out); the confirmation POSTs back here with confirm=yes.
func (s *Server) pageEndSession(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	req, err := s.oidc.ParseEndSession(r)
	if err != nil {
		return err
	}
	sess, u, err := s.login.Authenticate(r.Context(), s.token(r))
	if err != nil && latchkey.ErrorCode(err) != latchkey.EUnauthenticated {
		return err
	}
	// The confirmation counts only from Latchkey's own page: a cross-site POST (let through
	// for RP-initiated logout) with confirm=yes is a request like a GET's.
	confirmed := r.Method == http.MethodPost && r.PostFormValue("confirm") == "yes" && sameSite.Check(r) == nil
	if u == nil {
		// No one signed in, but the browser may hold a session that remembers something: an
		// idle one whose second factor the workday keeps, a sign-in under way. Ending it takes
		// the same proof as ending a signed-in one, so that a link on another site cannot
		// make its user give the second factor again.
		idle, err := s.login.SessionOf(r.Context(), s.token(r))
		if err != nil && latchkey.ErrorCode(err) != latchkey.ENotFound {
			return err
		}
		if idle != nil && !confirmed && !(req.UserID == idle.UserID && (req.SID == "" || req.SID == idle.SID)) {
			return s.render(w, http.StatusOK, "logout_confirm", &view{Title: "Sign out?", Data: logoutConfirmView{Params: req.Params, Session: idle}})
		}
		if ended, err := s.login.EndSession(r.Context(), client(r), s.token(r)); err == nil && ended != nil {
			s.endForApps(r, ended)
		}
		s.clearSession(w)
		http.Redirect(w, r, req.RedirectURI, http.StatusSeeOther)
		return nil
	}
	// A hint for this user, and for this very session when it names one (an ID token from an
	// earlier session is no proof that this session's application asks).
	hinted := req.UserID == u.ID && (req.SID == "" || req.SID == sess.SID)
	if !confirmed && !hinted {
		return s.render(w, http.StatusOK, "logout_confirm", &view{Title: "Sign out?", User: u, Data: logoutConfirmView{Params: req.Params, Session: sess}})
	}
	ended, err := s.login.EndSession(r.Context(), client(r), s.token(r))
	if err != nil {
		return err
	}
	s.endForApps(r, ended)
	s.clearSession(w)
	http.Redirect(w, r, req.RedirectURI, http.StatusSeeOther)
	return nil
}

// sameSite checks that a request came from Latchkey's own pages (Sec-Fetch-Site, Origin).
var sameSite = http.NewCrossOriginProtection()

type logoutConfirmView struct {
	Params  url.Values
	Session *latchkey.Session
}

// zoneChoices are the time zones offered on Settings › Account: the common ones of each
// region. Any valid IANA name is accepted by the server.
var zoneChoices = []string{
	"UTC",
	"Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Madrid", "Europe/Paris", "Europe/Brussels", "Europe/Amsterdam",
	"Europe/Berlin", "Europe/Zurich", "Europe/Rome", "Europe/Vienna", "Europe/Stockholm", "Europe/Oslo", "Europe/Copenhagen",
	"Europe/Warsaw", "Europe/Prague", "Europe/Budapest", "Europe/Athens", "Europe/Helsinki", "Europe/Bucharest", "Europe/Istanbul",
	"Europe/Kyiv", "Europe/Moscow",
	"Africa/Casablanca", "Africa/Lagos", "Africa/Cairo", "Africa/Johannesburg", "Africa/Nairobi",
	"America/St_Johns", "America/Halifax", "America/New_York", "America/Toronto", "America/Chicago", "America/Mexico_City",
	"America/Denver", "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
	"America/Bogota", "America/Lima", "America/Caracas", "America/Santiago", "America/Argentina/Buenos_Aires", "America/Sao_Paulo",
	"Asia/Dubai", "Asia/Karachi", "Asia/Kolkata", "Asia/Dhaka", "Asia/Bangkok", "Asia/Jakarta", "Asia/Singapore", "Asia/Shanghai",
	"Asia/Hong_Kong", "Asia/Taipei", "Asia/Manila", "Asia/Seoul", "Asia/Tokyo",
	"Australia/Perth", "Australia/Adelaide", "Australia/Brisbane", "Australia/Sydney", "Pacific/Auckland",
}

type accountZoneView struct {
	Current string
	Default bool // the user has not chosen: the server's default applies
	Choices []string
}

func (s *Server) accountZone(u *latchkey.User) accountZoneView {
	v := accountZoneView{Current: s.login.Location(u).String(), Default: u.TimeZone == "", Choices: zoneChoices}
	found := false
	for _, z := range zoneChoices {
		found = found || z == v.Current
	}
	if !found {
		v.Choices = append([]string{v.Current}, zoneChoices...)
	}
	return v
}

// accountView is Settings › Account: the plain 2FA form and the time zone.
type accountView struct {
	*login.Status
	Zone accountZoneView
}
