package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

type pages struct {
	t map[string]*template.Template
}

// loadPages parses each page together with the shared layout. A broken template is a
// programming error caught by any test, so it panics.
func loadPages() *pages {
	base := template.Must(template.New("layout.html").Funcs(template.FuncMap{"pngDataURL": pngDataURL}).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		p.t[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return p
}

func (s *Server) staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// pngDataURL lets a PNG data: URL through html/template's URL filter, and nothing else.
func pngDataURL(s string) template.URL {
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(s, prefix) || strings.Trim(s[len(prefix):], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
		return ""
	}
	return template.URL(s)
}

// view is what every template receives.
type view struct {
	Title string
	User  *latchkey.User
	Error string // a message for the whole form
	// Fields maps a field's name, which is also its input's id, to the message shown next
	// to it. addField keeps the order of the form for the error summary.
	Fields map[string]string
	Flash  string
	Next   string
	// Passkeys shows "Sign in with a passkey" on the sign-in page.
	Passkeys bool
	Data     any

	fieldOrder []string // the Fields added with addField, in the order of the form
	reason     string   // the admin's user page: the reason typed, shown again with its error
}

// problem is one field's error in the error summary at the top of a page.
type problem struct{ Field, Message string }

// addField shows msg next to field. Add the fields of a form in its order: the error summary
// lists them so, and the first one gets the focus.
func (v *view) addField(field, msg string) *view {
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	if _, ok := v.Fields[field]; !ok {
		v.fieldOrder = append(v.fieldOrder, field)
	}
	v.Fields[field] = msg
	return v
}

// Problems lists the page's field errors for its error summary and its title ("Error: …"):
// those added with addField in their order, then any set on Fields directly (pages with one
// field), by name.
func (v *view) Problems() []problem {
	var out []problem
	for _, f := range v.fieldOrder {
		out = append(out, problem{f, v.Fields[f]})
	}
	var rest []string
	for f := range v.Fields {
		if !slices.Contains(v.fieldOrder, f) {
			rest = append(rest, f)
		}
	}
	slices.Sort(rest)
	for _, f := range rest {
		out = append(out, problem{f, v.Fields[f]})
	}
	return out
}

// FirstProblem is the field that gets the focus (autofocus) on a page with field errors, or "".
func (v *view) FirstProblem() string {
	if p := v.Problems(); len(p) > 0 {
		return p[0].Field
	}
	return ""
}

func (s *Server) render(w http.ResponseWriter, code int, name string, v *view) error {
	t, ok := s.pages.t[name]
	if !ok {
		return errors.New("web: no template " + name)
	}
	if name == "login" {
		v.Passkeys = s.login.PasskeysEnabled()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, err := buf.WriteTo(w)
	return err
}

type pageFunc func(w http.ResponseWriter, r *http.Request) error

type authedPageFunc func(w http.ResponseWriter, r *http.Request, a *auth) error

// page adapts a page handler: an error that escapes it is shown on an error page with the
// right status, internal ones only as a generic message.
func (s *Server) page(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			err = unavailable(err)
			code := latchkey.ErrorCode(err)
			if code == latchkey.EInternal {
				s.log.ErrorContext(r.Context(), "page error", "path", redactPath(r.URL.Path), "err", err)
			}
			s.logUnavailable(r, err)
			writeRetryAfter(w, err)
			if code == latchkey.ETooLarge {
				http.Error(w, latchkey.ErrorMessage(err), http.StatusRequestEntityTooLarge)
				return
			}
			title := "Something went wrong"
			if code == latchkey.EUnavailable {
				title = "Briefly unavailable"
			}
			_ = s.render(w, status(code), "error", &view{Title: title, Error: latchkey.ErrorMessage(err)})
		}
	})
}

// pageAuthed sends signed-out visitors to the sign-in page and back here afterwards.
func (s *Server) pageAuthed(f authedPageFunc) http.Handler {
	return s.page(func(w http.ResponseWriter, r *http.Request) error {
		tok := s.token(r)
		sess, u, err := s.login.Authenticate(r.Context(), tok)
		if latchkey.ErrorCode(err) == latchkey.EUnauthenticated {
			next := r.URL.Path
			if r.Method != http.MethodGet {
				next = "/settings/security"
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return nil
		} else if err != nil {
			return err
		}
		return f(w, r, &auth{session: sess, user: u, token: tok})
	})
}

// safeNext returns p if it is a local path on this server, else "". It is what keeps the
// "continue to" parameter from becoming an open redirect.
func safeNext(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return p
}

func nextOr(p, def string) string {
	if n := safeNext(p); n != "" {
		return n
	}
	return def
}

// repeatable names the form fields that a page sends more than once on purpose: the support
// desk's identity checklist sends one "check" per ticked box.
var repeatable = map[string]bool{"check": true}

// form reads an urlencoded form. A body over the limit is reported as such. A field given
// twice, in the body or in the query, is refused, as a JSON body's is (decode): no page of
// ours sends one, and which of two values a handler, a proxy or a log reads is a difference
// someone can use. Multipart bodies are refused: no page sends one, and their fields would be
// parsed later, past these checks.
func form(r *http.Request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		return latchkey.Errorf(latchkey.EUnsupportedMedia, "Send the form as application/x-www-form-urlencoded.")
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return latchkey.Errorf(latchkey.ETooLarge, "The form is too large.")
		}
		return latchkey.Errorf(latchkey.EInvalid, "The form could not be read.")
	}
	for _, vs := range []url.Values{r.PostForm, r.URL.Query()} {
		for k, v := range vs {
			if len(v) > 1 && !repeatable[k] {
				return latchkey.Errorf(latchkey.EInvalid, "The form has the field %.40q more than once.", k)
			}
		}
	}
	return nil
}

// fieldError returns a view that shows err next to field, or as a form error when it is not
// about the input (throttling, expiry).
func fieldError(v *view, field string, err error) *view {
	switch latchkey.ErrorCode(err) {
	case latchkey.EInvalid, latchkey.EInvalidCode, latchkey.EInvalidCredentials, latchkey.EWeakPassword:
		v.addField(field, latchkey.ErrorMessage(err))
	default:
		v.Error = latchkey.ErrorMessage(err)
	}
	return v
}

// flashes are fixed messages selected by a query parameter, so that nothing a link carries is
// reflected into the page.
var flashes = map[string]string{
	"totp-enabled":     "Two-factor authentication is on.",
	"totp-disabled":    "Two-factor authentication is off.",
	"password-changed": "Your password was changed. Other sessions were signed out.",
	"signed-out":       "You are signed out.",
	"saved":            "Your settings were saved.",
	"setup-done":       "Your administrator account is ready.",
	"device-renamed":   "The device was renamed.",
	"device-primary":   "Sign-in requests now go to that device first.",
	"device-removed":   "The device was removed. It can no longer approve sign-ins.",
	"key-added":        "The security key was added.",
	"key-renamed":      "The security key was renamed.",
	"key-removed":      "The security key was removed. It can no longer be used to sign in.",
	"primary":          "That sign-in method is now offered first.",
	"renamed":          "The name was saved.",
	"mfa-reset":        "Every second factor was removed, and your other sessions were signed out.",
	"activated":        "Your account is active. Protect it with a second factor below.",
	"session-ended":    "That session was signed out, in every application.",
	"signed-out-all":   "You are signed out everywhere: every browser and every application.",
	"time-zone":        "Your time zone was saved. Your next sign-in with a second factor lasts until the end of your workday there.",
}

func flash(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }

// pageNotFound answers a path that no route takes: the "Page not found" page, in the layout
// of every page, instead of ServeMux's plain text. A path that has routes for other methods
// gets ServeMux's own answer, 405 with an Allow header. Paths under /api/ never come here:
// apiNoRoute answers them in JSON.
func (s *Server) pageNotFound(mux *http.ServeMux) pageFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if allow := allowedMethods(mux, r, "/"); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return nil
		}
		return s.render(w, http.StatusNotFound, "notfound", &view{Title: "Page not found", User: s.signedInUser(r)})
	}
}

func (s *Server) pageHome(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.login.Authenticate(r.Context(), s.token(r)); err == nil {
		http.Redirect(w, r, "/settings/security", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func (s *Server) pageLogin(w http.ResponseWriter, r *http.Request) error {
	next := s.loginNext(r.URL.Query())
	if _, _, err := s.login.Authenticate(r.Context(), s.token(r)); err == nil {
		http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
		return nil
	}
	// An OpenID Connect client's login_hint fills in the username, and does nothing else.
	return s.render(w, http.StatusOK, "login", &view{Title: "Sign in", Next: next, Flash: flash(r), Data: map[string]string{"Username": cleanHint(r.URL.Query().Get("login_hint"))}})
}

func (s *Server) pageLoginPost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	username := r.PostFormValue("username")
	res, err := s.login.Login(r.Context(), client(r), s.token(r), username, r.PostFormValue("password"))
	if err != nil {
		code := latchkey.ErrorCode(err)
		if code == latchkey.EInternal {
			return err
		}
		// One message for the whole form: it must not say which of the two fields was wrong.
		writeRetryAfter(w, err)
		v := &view{Title: "Sign in", Next: next, Error: latchkey.ErrorMessage(err), Data: map[string]string{"Username": username}}
		return s.render(w, status(code), "login", v)
	}
	s.setSession(w, res)
	switch res.State {
	case latchkey.StateSecondFactor:
		http.Redirect(w, r, withNext("/login/code", next), http.StatusSeeOther)
	case latchkey.StateEnroll:
		http.Redirect(w, r, enrollURL(next), http.StatusSeeOther)
	default:
		http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
	}
	return nil
}

func writeRetryAfter(w http.ResponseWriter, err error) {
	var e *latchkey.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(e.RetryAfter.Seconds()))))
	}
}

func withNext(path, next string) string {
	if next == "" {
		return path
	}
	return path + "?next=" + url.QueryEscape(next)
}

// codeStep renders the second-factor pages, or sends the visitor back to sign in when there
// is no unfinished sign-in.
func (s *Server) codeStep(w http.ResponseWriter, r *http.Request, name, title string, code int, v *view) error {
	_, methods, err := s.login.Flow(r.Context(), s.token(r))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EFlowExpired {
			return s.render(w, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: latchkey.ErrorMessage(err), Next: v.Next, Data: map[string]string{}})
		}
		return err
	}
	v.Title = title
	v.Data = map[string]any{"Methods": methods, "Recovery": contains(methods, latchkey.MethodRecovery), "TOTP": contains(methods, latchkey.MethodTOTP), "Push": contains(methods, latchkey.MethodPush), "Key": contains(methods, latchkey.MethodWebAuthn)}
	return s.render(w, code, name, v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) pageCode(w http.ResponseWriter, r *http.Request) error {
	return s.codeStep(w, r, "code", "Two-factor authentication", http.StatusOK, &view{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) pageCodePost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	res, err := s.login.LoginTOTP(r.Context(), client(r), s.token(r), r.PostFormValue("code"))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		writeRetryAfter(w, err)
		return s.codeStep(w, r, "code", "Two-factor authentication", status(latchkey.ErrorCode(err)), fieldError(&view{Next: next}, "code", err))
	}
	s.setSession(w, res)
	http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
	return nil
}

func (s *Server) pageRecovery(w http.ResponseWriter, r *http.Request) error {
	return s.codeStep(w, r, "recovery", "Use a recovery code", http.StatusOK, &view{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) pageRecoveryPost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	res, err := s.login.LoginRecovery(r.Context(), client(r), s.token(r), r.PostFormValue("code"))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		writeRetryAfter(w, err)
		return s.codeStep(w, r, "recovery", "Use a recovery code", status(latchkey.ErrorCode(err)), fieldError(&view{Next: next}, "code", err))
	}
	s.setSession(w, res)
	http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
	return nil
}

func (s *Server) pageLogout(w http.ResponseWriter, r *http.Request) error {
	ended, err := s.login.EndSession(r.Context(), client(r), s.token(r))
	if err != nil {
		return err
	}
	s.endForApps(r, ended)
	s.clearSession(w)
	http.Redirect(w, r, "/login?done=signed-out", http.StatusSeeOther)
	return nil
}

func (s *Server) pageSetup(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("token")
	if !s.login.ValidSetupToken(r.Context(), tok) {
		return latchkey.Errorf(latchkey.ENotFound, "This setup link is not valid any more. An administrator account may exist already; otherwise restart the server to get a new link.")
	}
	return s.render(w, http.StatusOK, "setup", &view{Title: "Create the administrator account", Data: map[string]string{"Token": tok}})
}

func (s *Server) pageSetupPost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	tok := r.PostFormValue("token")
	nu := login.NewUser{Username: r.PostFormValue("username"), Email: r.PostFormValue("email"), Password: r.PostFormValue("password")}
	res, err := s.login.CompleteSetup(r.Context(), client(r), tok, nu)
	if err != nil {
		if c := latchkey.ErrorCode(err); c == latchkey.EInvalid || c == latchkey.EWeakPassword || c == latchkey.EConflict {
			field := "password"
			if c != latchkey.EWeakPassword {
				field = "username"
			}
			v := &view{Title: "Create the administrator account", Data: map[string]string{"Token": tok, "Username": nu.Username, "Email": nu.Email}}
			v.Fields = map[string]string{field: latchkey.ErrorMessage(err)}
			return s.render(w, http.StatusBadRequest, "setup", v)
		}
		return err
	}
	s.setSession(w, res)
	http.Redirect(w, r, "/settings/security?done=setup-done", http.StatusSeeOther)
	return nil
}

// reauthView says whether the re-authentication goes on to a second factor after the
// password (login.Reauthenticate), so that the page can say so before it is asked.
func (s *Server) reauthView(r *http.Request, a *auth, next string) (*view, error) {
	then := false
	if err := s.login.RecentMFA(r.Context(), a.session, a.user); err != nil {
		if latchkey.ErrorCode(err) != latchkey.EReauthenticate {
			return nil, err
		}
		then = true
	}
	return &view{Title: "Confirm your password", User: a.user, Next: next, Data: map[string]bool{"SecondFactor": then}}, nil
}

func (s *Server) pageReauth(w http.ResponseWriter, r *http.Request, a *auth) error {
	v, err := s.reauthView(r, a, safeNext(r.URL.Query().Get("next")))
	if err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "reauth", v)
}

// pageReauthPost checks the password; a user with a second factor who has not given one
// lately goes on to the second step of sign-in (/login/code), which comes back to next.
func (s *Server) pageReauthPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	res, err := s.login.Reauthenticate(r.Context(), client(r), a.token, r.PostFormValue("password"))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		writeRetryAfter(w, err)
		v, verr := s.reauthView(r, a, next)
		if verr != nil {
			return verr
		}
		return s.render(w, status(latchkey.ErrorCode(err)), "reauth", fieldError(v, "password", err))
	}
	s.setSession(w, res)
	if res.State == latchkey.StateSecondFactor {
		http.Redirect(w, r, withNext("/login/code", nextOr(next, "/settings/security")), http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
	return nil
}

// needsMFA sends the user to re-authenticate, and back to next, when the page's action needs
// a second factor given lately (login.RecentMFA) that the session lacks. It reports whether
// the request is answered (redirected, or failed with the error returned).
func (s *Server) needsMFA(w http.ResponseWriter, r *http.Request, a *auth, next string) (bool, error) {
	err := s.login.RecentMFA(r.Context(), a.session, a.user)
	if err != nil && latchkey.ErrorCode(err) != latchkey.EReauthenticate {
		return true, err
	}
	return reauthRedirect(w, r, err, next), nil
}

func (s *Server) pageSecurity(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.renderSecurity(w, r, a, http.StatusOK, "")
}

// reauthRedirect sends the user to confirm their password when err asks for it, returning
// to next afterwards. It reports whether it did.
func reauthRedirect(w http.ResponseWriter, r *http.Request, err error, next string) bool {
	if latchkey.ErrorCode(err) != latchkey.EReauthenticate {
		return false
	}
	http.Redirect(w, r, "/reauth?next="+url.QueryEscape(next), http.StatusSeeOther)
	return true
}

type totpView struct {
	Enrollment *login.Enrollment
	From       string // "account" when started from the plain settings form
}

func (s *Server) pageTOTP(w http.ResponseWriter, r *http.Request, a *auth) error {
	from := r.URL.Query().Get("from")
	if from != "account" {
		from = ""
	}
	en, err := s.login.PendingTOTP(r.Context(), a.user)
	if err != nil && latchkey.ErrorCode(err) != latchkey.ENotFound {
		return err
	}
	if err := s.login.Recent(r.Context(), a.session, a.user); err != nil {
		en = nil // the enrolment page asks for a fresh password before showing a secret
	}
	return s.render(w, http.StatusOK, "totp", &view{Title: "Set up two-factor authentication", User: a.user, Data: totpView{Enrollment: en, From: from}})
}

func (s *Server) pageTOTPStart(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	back := "/settings/security/totp"
	if r.PostFormValue("from") == "account" {
		back += "?from=account"
	}
	if _, err := s.login.BeginTOTP(r.Context(), client(r), a.session, a.user); err != nil {
		if reauthRedirect(w, r, err, back) {
			return nil
		}
		return err
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

func (s *Server) pageTOTPConfirm(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	from := r.PostFormValue("from")
	if from != "account" {
		from = ""
	}
	codes, err := s.login.ConfirmTOTP(r.Context(), client(r), a.session, a.user, r.PostFormValue("code"))
	if err != nil {
		if reauthRedirect(w, r, err, "/settings/security/totp") {
			return nil
		}
		c := latchkey.ErrorCode(err)
		if c != latchkey.EInvalid && c != latchkey.EInvalidCode {
			return err
		}
		en, perr := s.login.PendingTOTP(r.Context(), a.user)
		if perr != nil {
			return perr
		}
		v := fieldError(&view{Title: "Set up two-factor authentication", User: a.user, Data: totpView{Enrollment: en, From: from}}, "code", err)
		return s.render(w, http.StatusBadRequest, "totp", v)
	}
	done := "/settings/security?done=totp-enabled"
	if from == "account" {
		done = "/settings/account?done=saved"
	}
	return s.render(w, http.StatusOK, "codes", &view{Title: "Save your recovery codes", User: a.user, Next: done, Data: codes})
}

func (s *Server) pageTOTPDisable(w http.ResponseWriter, r *http.Request, a *auth) error {
	if done, err := s.needsMFA(w, r, a, withFrom("/settings/security/totp/disable", r.URL.Query().Get("from"))); done {
		return err
	}
	return s.render(w, http.StatusOK, "disable", &view{Title: "Turn off two-factor authentication", User: a.user, Data: map[string]string{"From": fromParam(r.URL.Query().Get("from"))}})
}

// withFrom is path with from=account when from says the form was opened from the account page.
func withFrom(path, from string) string {
	if fromParam(from) == "" {
		return path
	}
	return path + "?from=account"
}

func fromParam(s string) string {
	if s == "account" {
		return s
	}
	return ""
}

func (s *Server) pageTOTPDisablePost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	from := fromParam(r.PostFormValue("from"))
	if r.PostFormValue("confirm") != "yes" {
		v := &view{Title: "Turn off two-factor authentication", User: a.user, Data: map[string]string{"From": from}}
		v.Fields = map[string]string{"confirm": "Tick the box to confirm that you want to turn off two-factor authentication."}
		return s.render(w, http.StatusBadRequest, "disable", v)
	}
	err := s.login.DisableTOTP(r.Context(), client(r), a.session, a.user, r.PostFormValue("password"))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		if reauthRedirect(w, r, err, withFrom("/settings/security/totp/disable", from)) {
			return nil
		}
		writeRetryAfter(w, err)
		v := fieldError(&view{Title: "Turn off two-factor authentication", User: a.user, Data: map[string]string{"From": from}}, "password", err)
		return s.render(w, status(latchkey.ErrorCode(err)), "disable", v)
	}
	if from == "account" {
		http.Redirect(w, r, "/settings/account?done=saved", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/settings/security?done=totp-disabled", http.StatusSeeOther)
	return nil
}

func (s *Server) pageRecoveryCodes(w http.ResponseWriter, r *http.Request, a *auth) error {
	if done, err := s.needsMFA(w, r, a, "/settings/security/recovery-codes"); done {
		return err
	}
	return s.render(w, http.StatusOK, "regenerate", &view{Title: "New recovery codes", User: a.user})
}

func (s *Server) pageRecoveryCodesPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	codes, err := s.login.RegenerateRecoveryCodes(r.Context(), client(r), a.session, a.user, r.PostFormValue("password"))
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		if reauthRedirect(w, r, err, "/settings/security/recovery-codes") {
			return nil
		}
		writeRetryAfter(w, err)
		return s.render(w, status(latchkey.ErrorCode(err)), "regenerate", fieldError(&view{Title: "New recovery codes", User: a.user}, "password", err))
	}
	return s.render(w, http.StatusOK, "codes", &view{Title: "Save your recovery codes", User: a.user, Next: "/settings/security", Data: codes})
}

func (s *Server) pagePassword(w http.ResponseWriter, r *http.Request, a *auth) error {
	if done, err := s.needsMFA(w, r, a, "/settings/password"); done {
		return err
	}
	return s.render(w, http.StatusOK, "password", &view{Title: "Change password", User: a.user})
}

func (s *Server) pagePasswordPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	res, err := s.login.ChangePassword(r.Context(), client(r), a.token, r.PostFormValue("current_password"), r.PostFormValue("new_password"))
	if err != nil {
		c := latchkey.ErrorCode(err)
		if c == latchkey.EInternal {
			return err
		}
		if reauthRedirect(w, r, err, "/settings/password") {
			return nil
		}
		writeRetryAfter(w, err)
		field := "current_password"
		if c == latchkey.EWeakPassword || (c == latchkey.EInvalid && r.PostFormValue("new_password") == "") {
			field = "new_password"
		}
		return s.render(w, status(c), "password", fieldError(&view{Title: "Change password", User: a.user}, field, err))
	}
	s.setSession(w, res)
	http.Redirect(w, r, "/settings/security?done=password-changed", http.StatusSeeOther)
	return nil
}

func (s *Server) pageAccount(w http.ResponseWriter, r *http.Request, a *auth) error {
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "account", &view{Title: "Account settings", User: a.user, Flash: flash(r), Data: accountView{Status: st, Zone: s.accountZone(a.user)}})
}

// pageAccountPost is the plain settings form: one checkbox, Save. Turning it on continues to
// the enrolment step (scan and confirm); turning it off continues to the confirmation with
// the password.
func (s *Server) pageAccountPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return err
	}
	want := r.PostFormValue("totp") == "on"
	switch {
	case want && !st.TOTPEnabled:
		if _, err := s.login.BeginTOTP(r.Context(), client(r), a.session, a.user); err != nil {
			if reauthRedirect(w, r, err, "/settings/security/totp?from=account") {
				return nil
			}
			return err
		}
		http.Redirect(w, r, "/settings/security/totp?from=account", http.StatusSeeOther)
	case !want && st.TOTPEnabled:
		http.Redirect(w, r, "/settings/security/totp/disable?from=account", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/settings/account?done=saved", http.StatusSeeOther)
	}
	return nil
}
