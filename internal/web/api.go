package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// status maps an error code to its HTTP status. It is the only such mapping in Latchkey.
func status(code string) int {
	switch code {
	case latchkey.EInvalid, latchkey.EWeakPassword:
		return http.StatusBadRequest
	case latchkey.EInvalidCredentials, latchkey.EInvalidCode, latchkey.EUnauthenticated, latchkey.EFlowExpired, latchkey.EDeviceSignature:
		return http.StatusUnauthorized
	case latchkey.EForbidden, latchkey.EReauthenticate:
		return http.StatusForbidden
	case latchkey.ENotFound:
		return http.StatusNotFound
	case latchkey.EExpired:
		return http.StatusGone
	case latchkey.EConflict:
		return http.StatusConflict
	case latchkey.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case latchkey.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case latchkey.EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case latchkey.EThrottled:
		return http.StatusTooManyRequests
	case latchkey.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSONError(w http.ResponseWriter, err error) {
	err = unavailable(err)
	var e *latchkey.Error
	if errors.As(err, &e) && (e.Code == latchkey.EThrottled || e.Code == latchkey.EUnavailable) {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter/time.Second)))
	}
	var b errorBody
	b.Error.Code, b.Error.Message = latchkey.ErrorCode(err), latchkey.ErrorMessage(err)
	writeJSON(w, status(b.Error.Code), b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiFunc is a JSON handler: it returns a value to encode with 200, or an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// api adapts an apiFunc: domain errors become {"error":{code,message}} with their status;
// other errors are logged and answered as a generic 500.
func (s *Server) api(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(w, r)
		if err == errWritten {
			return
		}
		if err != nil {
			if clientGone(w, r, err) {
				return
			}
			err = unavailable(err)
			if latchkey.ErrorCode(err) == latchkey.EInternal {
				s.log.ErrorContext(r.Context(), "api error", "path", redactPath(r.URL.Path), "err", err)
			}
			s.logUnavailable(r, err)
			writeJSONError(w, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// statusClientClosed is the status the access log records for a request its client gave up
// on before the answer (nginx's 499): nothing is sent, since nobody is there to read it.
const statusClientClosed = 499

// clientGone reports whether err comes of the request's client going away (a closed tab, a
// cancelled request: the request's context ended, and err is its cancellation), and if so
// answers statusClientClosed, which only the access line sees. It is not the server's error:
// under a flood of sign-ins that clients gave up on, one error line each buried real ones.
func clientGone(w http.ResponseWriter, r *http.Request, err error) bool {
	if r.Context().Err() == nil || !errors.Is(err, context.Canceled) {
		return false
	}
	w.WriteHeader(statusClientClosed)
	return true
}

type authedAPIFunc func(w http.ResponseWriter, r *http.Request, a *auth) (any, error)

// auth is the signed-in caller of a request.
type auth struct {
	session *latchkey.Session
	user    *latchkey.User
	token   string
	// enrolling is true for a sign-in under mfa: required that is setting up its first
	// factor (apiEnrollable).
	enrolling bool
}

func (s *Server) apiAuthed(f authedAPIFunc) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) (any, error) {
		tok := s.token(r)
		sess, u, err := s.login.Authenticate(r.Context(), tok)
		if err != nil {
			return nil, err
		}
		return f(w, r, &auth{session: sess, user: u, token: tok})
	})
}

// decode reads a JSON object into v. It refuses other media types, bodies over the limit,
// unknown fields, a field given twice, wrong types and trailing data, each with a message a
// person understands.
func decode(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return latchkey.Errorf(latchkey.EUnsupportedMedia, "Send the request body as JSON with Content-Type: application/json.")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	if k, ok := duplicateKey(b); ok {
		return latchkey.Errorf(latchkey.EInvalid, "The field %q appears more than once; send each field once.", k)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return latchkey.Errorf(latchkey.EInvalid, "The request body must hold a single JSON object.")
	}
	return nil
}

// duplicateKey returns the first key that appears twice in one object of the JSON text b,
// at any depth. encoding/json keeps the last of them and matches keys to fields without
// regard to case, where another parser in front of Latchkey (a proxy, a firewall, the client
// that signed the body) may keep the first: a body that reads two ways is refused, keys
// compared as encoding/json compares them (Unicode simple case folding). Text that is not
// valid JSON is left to the decoder to report.
func duplicateKey(b []byte) (string, bool) {
	type frame struct {
		object, wantKey bool
		keys            []string
		seen            map[string]struct{} // the folded keys, once an object has many
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return "", false
			}
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			f := &stack[n-1]
			if f.wantKey {
				k := tok.(string)
				if f.seen != nil {
					if _, dup := f.seen[fold(k)]; dup {
						return k, true
					}
					f.seen[fold(k)] = struct{}{}
				} else {
					for _, o := range f.keys {
						if strings.EqualFold(o, k) {
							return k, true
						}
					}
					// A linear search is cheapest for the few keys of a request; past 16
					// a set keeps a body of many keys linear in its size.
					if f.keys = append(f.keys, k); len(f.keys) > 16 {
						f.seen = make(map[string]struct{}, 2*len(f.keys))
						for _, o := range f.keys {
							f.seen[fold(o)] = struct{}{}
						}
					}
				}
				f.wantKey = false
				continue
			}
			f.wantKey = true
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{object: d == '{', wantKey: d == '{'})
		} else if len(stack) == 0 {
			return "", false
		}
	}
}

// fold maps s to one representative of the strings strings.EqualFold holds equal to it:
// each rune the least of its simple case-folding orbit.
func fold(s string) string {
	var sb strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		sb.WriteRune(m)
	}
	return sb.String()
}

func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return latchkey.Errorf(latchkey.EInvalid, "The request body is empty; send a JSON object.")
	case errors.As(err, &mbe):
		return latchkey.Errorf(latchkey.ETooLarge, "The request body is too large (at most %d bytes).", mbe.Limit)
	case errors.As(err, &syn):
		return latchkey.Errorf(latchkey.EInvalid, "The request body is not valid JSON (error at byte %d).", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return latchkey.Errorf(latchkey.EInvalid, "The request body is not valid JSON (it ends too early).")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return latchkey.Errorf(latchkey.EInvalid, "The request body must be a JSON object.")
		}
		return latchkey.Errorf(latchkey.EInvalid, "The field %q must be %s.", typ.Field, jsonKind(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return latchkey.Errorf(latchkey.EInvalid, "The field %s is not known.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return latchkey.Errorf(latchkey.EInvalid, "The request body could not be read: %s.", err.Error())
}

// jsonKind names what a field of Go type t takes, in JSON's words (not "int64" or "bool").
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

// required returns an EInvalid error naming the empty fields, or nil.
func required(fields ...[2]string) error {
	var missing []string
	for _, f := range fields {
		if strings.TrimSpace(f[1]) == "" {
			missing = append(missing, fmt.Sprintf("%q", f[0]))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return latchkey.Errorf(latchkey.EInvalid, "Missing required field %s.", strings.Join(missing, ", "))
}

type loginResponse struct {
	State   latchkey.SessionState `json:"state"`
	Methods []string              `json:"methods,omitempty"`
	// RecoveryCodes are new recovery codes, shown this once (a rollout finished with a Latch
	// device, the user's first factor without codes of its own).
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

func (s *Server) signedIn(w http.ResponseWriter, res *login.Result) loginResponse {
	s.setSession(w, res)
	return loginResponse{State: res.State, Methods: res.Methods, RecoveryCodes: res.RecoveryCodes}
}

func (s *Server) apiLogin(w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"username", req.Username}, [2]string{"password", req.Password}); err != nil {
		return nil, err
	}
	res, err := s.login.Login(r.Context(), client(r), s.token(r), req.Username, req.Password)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

type codeRequest struct {
	Code string `json:"code"`
}

func (s *Server) apiLoginTOTP(w http.ResponseWriter, r *http.Request) (any, error) {
	var req codeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"code", req.Code}); err != nil {
		return nil, err
	}
	res, err := s.login.LoginTOTP(r.Context(), client(r), s.token(r), req.Code)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

func (s *Server) apiLoginRecovery(w http.ResponseWriter, r *http.Request) (any, error) {
	var req codeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"code", req.Code}); err != nil {
		return nil, err
	}
	res, err := s.login.LoginRecovery(r.Context(), client(r), s.token(r), req.Code)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

type sessionResponse struct {
	User struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
		Email    string `json:"email"`
		Role     string `json:"role"`
	} `json:"user"`
	State     latchkey.SessionState `json:"state"`
	AMR       []string              `json:"amr"`
	MFA       bool                  `json:"mfa"`
	AuthTime  time.Time             `json:"auth_time"`
	MFATime   *time.Time            `json:"mfa_time,omitempty"`
	ExpiresAt time.Time             `json:"expires_at"`
}

func (s *Server) apiSession(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var resp sessionResponse
	resp.User.ID, resp.User.Username, resp.User.Email, resp.User.Role = int64(a.user.ID), a.user.Username, a.user.Email, string(a.user.Role)
	resp.State, resp.AMR, resp.AuthTime, resp.MFATime, resp.ExpiresAt = a.session.State, a.session.AMR, a.session.PasswordAt, a.session.MFAAt, a.session.ExpiresAt
	resp.MFA = a.session.MFAAt != nil
	return resp, nil
}

func (s *Server) apiLogout(w http.ResponseWriter, r *http.Request) (any, error) {
	ended, err := s.login.EndSession(r.Context(), client(r), s.token(r))
	if err != nil {
		return nil, err
	}
	s.endForApps(r, ended)
	s.clearSession(w)
	return map[string]string{"state": "signed_out"}, nil
}

func (s *Server) apiSecurity(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"totp_enabled":        st.TOTPEnabled,
		"recovery_codes_left": st.RecoveryCodesLeft,
		"mfa_required":        st.MFARequired,
	}, nil
}

type passwordRequest struct {
	Password string `json:"password"`
}

// apiReauthenticate and apiChangePassword are authed (a signed-out caller gets 401 before
// anything is said about the body); the login service checks the session again with the
// password.
func (s *Server) apiReauthenticate(w http.ResponseWriter, r *http.Request, _ *auth) (any, error) {
	var req passwordRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"password", req.Password}); err != nil {
		return nil, err
	}
	res, err := s.login.Reauthenticate(r.Context(), client(r), s.token(r), req.Password)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

func (s *Server) apiChangePassword(w http.ResponseWriter, r *http.Request, _ *auth) (any, error) {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"current_password", req.Current}, [2]string{"new_password", req.New}); err != nil {
		return nil, err
	}
	res, err := s.login.ChangePassword(r.Context(), client(r), s.token(r), req.Current, req.New)
	if err != nil {
		return nil, err
	}
	s.setSession(w, res)
	return map[string]bool{"changed": true}, nil
}

func (s *Server) apiBeginTOTP(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	en, err := s.login.BeginTOTP(r.Context(), client(r), a.session, a.user)
	if err != nil {
		return nil, err
	}
	return map[string]string{"secret": en.Secret, "otpauth_uri": en.URI, "qr_png": en.QRDataURL}, nil
}

func (s *Server) apiConfirmTOTP(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req codeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"code", req.Code}); err != nil {
		return nil, err
	}
	codes, err := s.login.ConfirmTOTP(r.Context(), client(r), a.session, a.user, req.Code)
	if err != nil {
		return nil, err
	}
	// Under mfa: required, the first factor ends the rollout: the session is signed in (with
	// the code just given as its second factor), as the page's form and a security key's
	// registration do; POST /api/v1/login/enroll/complete is not needed after it.
	if err := s.finishEnrollment(w, r, a, latchkey.AMROTP); err != nil {
		return nil, err
	}
	if a.enrolling {
		return map[string]any{"enabled": true, "recovery_codes": codes, "state": latchkey.StateAuthenticated}, nil
	}
	return map[string]any{"enabled": true, "recovery_codes": codes}, nil
}

func (s *Server) apiDisableTOTP(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req passwordRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"password", req.Password}); err != nil {
		return nil, err
	}
	if err := s.login.DisableTOTP(r.Context(), client(r), a.session, a.user, req.Password); err != nil {
		return nil, err
	}
	return map[string]bool{"enabled": false}, nil
}

func (s *Server) apiRegenerateRecovery(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req passwordRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"password", req.Password}); err != nil {
		return nil, err
	}
	codes, err := s.login.RegenerateRecoveryCodes(r.Context(), client(r), a.session, a.user, req.Password)
	if err != nil {
		return nil, err
	}
	return map[string]any{"recovery_codes": codes}, nil
}

// apiNoRoute answers a request under /api/ that no route of mux takes: 405 with an Allow
// header when the path has routes for other methods (what ServeMux answers by itself where
// no catch-all pattern covers the path, as "/api/" does here), else 404. Both in JSON.
func apiNoRoute(mux *http.ServeMux) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		allow := allowedMethods(mux, r, apiPrefix)
		if len(allow) == 0 {
			return nil, latchkey.Errorf(latchkey.ENotFound, "There is no API endpoint %s %s.", r.Method, r.URL.Path)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		use := slices.DeleteFunc(slices.Clone(allow), func(m string) bool { return m == http.MethodHead })
		return nil, latchkey.Errorf(latchkey.EMethodNotAllowed, "%s does not take %s; use %s.", r.URL.Path, r.Method, orList(use))
	}
}

// allowedMethods returns the methods other than r's that mux routes r's path to, through a
// pattern other than catchAll (the pattern that answers "no such route"): the Allow header of
// a 405, or none for a 404.
func allowedMethods(mux *http.ServeMux, r *http.Request, catchAll string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != catchAll {
			allow = append(allow, m)
		}
	}
	return allow
}

// orList joins words as "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
