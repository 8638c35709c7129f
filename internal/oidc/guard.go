package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/cors"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/latchkey/latchkey"
)

// pathDeviceAuthorization is where the library serves the device authorization endpoint,
// which Latchkey does not offer: guard answers it with a 404.
const pathDeviceAuthorization = "/oidc/device_authorization"

// guard puts Latchkey's answers in front of the library's (lib) where the library's are
// not what Latchkey offers:
//   - discovery lists only what Latchkey serves: the authorization code flow with PKCE and
//     refresh tokens, no implicit flow, no JWT bearer or device grant, no private_key_jwt
//     algorithms (the library advertises all of them whatever the configuration);
//   - an authorization request whose redirect_uri is not, as a string, one its client
//     registered gets a 400 without a redirect: the library compares the URI after
//     percent-decoding it, and would send its own validation errors (and the state) to
//     https://app.test/%63b for a registered https://app.test/cb;
//   - an authorization request's request_uri is noted for CreateAuthRequest, which refuses
//     it, and an access token in the userinfo URL is refused (RFC 6750 §2.3);
//   - a path under /oidc/ that is no endpoint is a 404 in JSON (the library's was plain text);
//   - the device authorization path is a 404 (the library answered a 500 with the store's
//     error in its description);
//   - a JWT bearer grant at the token endpoint is unsupported_grant_type (the library
//     parsed the assertion and then refused it as a malformed request);
//   - a refused client at the introspection endpoint gets invalid_client in JSON (RFC 7662
//     §2.3, RFC 6749 §5.2), and a missing or refused token at the userinfo endpoint the
//     Bearer challenge of RFC 6750 §3, not the library's plain text (or, for a revoked or
//     expired token, its 403 carrying the store's error);
//   - a client refused at the token or revocation endpoint after HTTP Basic authentication
//     gets the Basic challenge (RFC 6749 §5.2), and token responses are never cached
//     (Cache-Control: no-store, Pragma: no-cache, RFC 6749 §5.1);
//   - a request that gives a parameter more than once is refused before anything reads it
//     (checkParams): at the authorize endpoint with a 400 and no redirect, elsewhere with
//     invalid_request in JSON;
//   - the end_session endpoint never reaches the library, whose handler took every method
//     and revoked the user's tokens for the client without a back-channel logout. Latchkey's
//     RP-initiated logout is web's pageEndSession, which the server routes GET and POST to
//     in front of this handler. Here, before anything reads the request, a method other
//     than GET and POST is a 405 with Allow: GET, POST (RP-Initiated Logout 1.0 §2; the
//     server sends HEAD here for this answer), and GET and POST, which reach this handler
//     only when it is mounted without that page, are a 404.
func (p *Provider) guard(lib http.Handler) http.Handler {
	discovery := cors.New(corsOptions).Handler(http.HandlerFunc(p.discover))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathEndSession {
			w.Header().Set("Cache-Control", "no-store")
			if r.Method != http.MethodGet && r.Method != http.MethodPost {
				w.Header().Set("Allow", "GET, POST")
				http.Error(w, "The sign-out endpoint takes GET and POST only.", http.StatusMethodNotAllowed)
				return
			}
			http.Error(w, "The sign-out endpoint is not served here.", http.StatusNotFound)
			return
		}
		switch r.URL.Path {
		case PathAuthorize, PathToken, PathRevoke, PathIntrospect, PathUserinfo:
			if err := checkParams(r); err != nil {
				refuseParams(w, r, err)
				return
			}
		}
		switch r.URL.Path {
		case PathDiscovery:
			discovery.ServeHTTP(w, r)
			return
		case PathAuthorize:
			if p.unregisteredRedirect(w, r) {
				return
			}
			w = p.withIss(w)
			if p.badMaxAge(w, r) {
				return
			}
			// The library reads only the parameters it knows; CreateAuthRequest refuses a
			// request_uri, which it would ignore.
			if v, _ := param(r.Form, "request_uri"); v != "" {
				r = r.WithContext(context.WithValue(r.Context(), requestURIKey{}, true))
			}
		case pathDeviceAuthorization:
			oauthError(w, http.StatusNotFound, "invalid_request", "Latchkey does not offer the device authorization grant.")
			return
		case PathToken:
			if v, _ := param(r.Form, "grant_type"); r.Method == http.MethodPost && v == string(zoidc.GrantTypeBearer) {
				oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Latchkey does not offer the JWT bearer grant.")
				return
			}
			w.Header().Set("Cache-Control", "no-store") // RFC 6749 §5.1: no token response is cached
			w.Header().Set("Pragma", "no-cache")
			lib.ServeHTTP(basicChallenge(w, r), r)
			return
		case PathRevoke:
			lib.ServeHTTP(basicChallenge(w, r), r)
			return
		case PathIntrospect:
			lib.ServeHTTP(&refusalWriter{ResponseWriter: w, status: http.StatusUnauthorized, challenge: `Basic realm="latchkey"`,
				code: "invalid_client", description: "The client credentials are not valid."}, r)
			return
		case PathUserinfo:
			if _, ok := param(r.URL.Query(), "access_token"); ok {
				// RFC 6750 §2.3: a token in the URL ends up in logs and the browser's history.
				oauthError(w, http.StatusBadRequest, "invalid_request", "Send the access token in the Authorization header (Bearer), not in the URL.")
				return
			}
			// RFC 6750 §3: the challenge names the error only when a token came.
			rw := &refusalWriter{ResponseWriter: w, status: http.StatusUnauthorized, challenge: `Bearer error="invalid_token"`,
				code: "invalid_token", description: "The access token is not valid or has expired."}
			if v, _ := param(r.PostForm, "access_token"); r.Header.Get("Authorization") == "" && v == "" {
				rw.challenge, rw.code, rw.description = "Bearer", "invalid_request", "Send the access token: Authorization: Bearer TOKEN."
			}
			// A token the store refuses (revoked, expired, its user disabled) comes back from
			// the library as a 403 carrying the store's error: it is a 401 with the challenge
			// too, and a store that failed is a 503, neither with the store's text.
			out := &userinfoOutcome{}
			rw.forbidden = out
			lib.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), userinfoOutcomeKey{}, out)))
			return
		}
		switch r.URL.Path {
		case PathAuthorize, PathKeys:
		default:
			// Not an endpoint of the provider: the library's plain-text 404 becomes an
			// OAuth error in JSON, like its other answers.
			oauthError(w, http.StatusNotFound, "invalid_request", "There is no OpenID Connect endpoint at "+r.URL.Path+"; discovery ("+PathDiscovery+") lists them.")
			return
		}
		lib.ServeHTTP(w, r)
	})
}

// checkParams reads the parameters of a request to a protocol endpoint (its query and an
// application/x-www-form-urlencoded body, parsed once: the library then reads the same
// values from r.Form, since http.Request.ParseForm does nothing the second time) and refuses
// a request that gives one more than once, as RFC 6749 §3.1 and §3.2 forbid: twice in the
// query, twice in the body, once in each, or spelled in another case, which the library
// reads as the same parameter. Of two values, the guard's checks read the first and the
// library the last (or, of two spellings, either one): a redirect_uri given twice would
// pass the guard with the registered URI and be used by the library with the other. The
// error (EInvalid) names the parameter. A body over the server's limit is ETooLarge, one
// that cannot be parsed EInvalid, and a multipart body, whose parameters some readers see
// (FormValue) and others not (ParseForm), EUnsupportedMedia.
func checkParams(r *http.Request) error {
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			return latchkey.Errorf(latchkey.EUnsupportedMedia, "The request's parameters must be sent as application/x-www-form-urlencoded.")
		}
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return latchkey.Errorf(latchkey.ETooLarge, "The request is too large (at most %d bytes).", mbe.Limit)
		}
		return latchkey.Errorf(latchkey.EInvalid, "The request's parameters cannot be read.")
	}
	// Sorted, so that the same request is always refused naming the same parameter.
	names := slices.Sorted(maps.Keys(r.Form))
	folded := make(map[string]string, len(names))
	for _, k := range names {
		if len(r.Form[k]) > 1 {
			return latchkey.Errorf(latchkey.EInvalid, "The request has the parameter %.40q more than once.", k)
		}
		// The library matches names with strings.EqualFold; upper then lower case folds
		// each name the same way (or a few more together, which only refuses more).
		f := strings.ToLower(strings.ToUpper(k))
		if other, ok := folded[f]; ok {
			return latchkey.Errorf(latchkey.EInvalid, "The request has the parameter %.40q more than once (also as %.40q).", other, k)
		}
		folded[f] = k
	}
	return nil
}

// param returns the value of the parameter name in v as the library reads it: the name
// matched without regard to case (its decoder uses strings.EqualFold), so that a check here
// cannot be passed by spelling a name in another case (Redirect_URI) for the library to read
// alone; checkParams has refused a request with two spellings of one name. ok says whether
// the parameter is there at all.
func param(v url.Values, name string) (value string, ok bool) {
	if x, ok := v[name]; ok && len(x) > 0 {
		return x[0], true
	}
	for k, x := range v {
		if len(x) > 0 && strings.EqualFold(k, name) {
			return x[0], true
		}
	}
	return "", false
}

// refusalPrefix starts the plain-text answer of an authorization request that checkParams
// refused, which RefusalReason recognises.
const refusalPrefix = "invalid_request: "

// refuseParams answers a request that checkParams refused with err: an authorization request
// with plain text and no redirect (which of two redirect_uri or state values would be the
// client's?), which the page in front shows (RefusalReason); the other endpoints with an
// OAuth error in JSON, never cached (and at userinfo with RFC 6750's challenge).
func refuseParams(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	switch latchkey.ErrorCode(err) {
	case latchkey.ETooLarge:
		status = http.StatusRequestEntityTooLarge
	case latchkey.EUnsupportedMedia:
		status = http.StatusUnsupportedMediaType
	}
	msg := latchkey.ErrorMessage(err)
	switch r.URL.Path {
	case PathAuthorize:
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, refusalPrefix+msg, status)
		return
	case PathUserinfo:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request"`)
	}
	oauthError(w, status, "invalid_request", msg)
}

// RefusalReason returns the reason, in plain words, of a plain-text refusal of an
// authorization request that the provider wrote before the library (a parameter given more
// than once, a body that cannot be read), and false for any other text: the library's,
// which may carry a store's error, is not for the user's eyes.
func RefusalReason(text string) (string, bool) {
	reason, ok := strings.CutPrefix(text, refusalPrefix)
	return strings.TrimSpace(reason), ok
}

// unregisteredRedirect refuses, without redirecting, an authorization request of a known
// client whose redirect_uri is not exactly (byte for byte) one the client registered
// (RFC 6749 §4.1.2.1: an invalid redirect URI is never redirected to). Errors found later,
// by the library or by Latchkey, are then only sent to a registered URI. A request of an
// unknown client or without redirect_uri is left to the library, which refuses it without
// redirecting too. It reports whether it answered.
func (p *Provider) unregisteredRedirect(w http.ResponseWriter, r *http.Request) bool {
	id, _ := param(r.Form, "client_id")
	redirect, _ := param(r.Form, "redirect_uri")
	if id == "" || redirect == "" {
		return false
	}
	c, err := p.opt.Store.FindOIDCClientByID(r.Context(), id)
	if err != nil || slices.Contains(c.RedirectURIs, redirect) {
		return false
	}
	op.AuthRequestError(w, r, nil, zoidc.ErrInvalidRequestRedirectURI().WithDescription("The redirect_uri is not registered for this client."), p.op)
	return true
}

// badMaxAge answers an authorization request whose max_age is not a number of seconds with
// invalid_request at the client's redirect URI, as RFC 6749 §4.1.2.1 asks of every error but
// a bad client or redirect URI. The library fails to parse such a request before it knows the
// client, and could only show a page. It reports whether it answered.
func (p *Provider) badMaxAge(w http.ResponseWriter, r *http.Request) bool {
	v, _ := param(r.Form, "max_age")
	if v == "" {
		return false
	}
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return false
	}
	redirect, _ := param(r.Form, "redirect_uri")
	id, _ := param(r.Form, "client_id")
	c, err := p.opt.Store.FindOIDCClientByID(r.Context(), id)
	if err != nil || !slices.Contains(c.RedirectURIs, redirect) {
		return false // the library refuses the request on a page, never redirecting
	}
	u, err := url.Parse(redirect)
	if err != nil {
		return false
	}
	q := u.Query()
	q.Set("error", "invalid_request")
	q.Set("error_description", "max_age must be a whole number of seconds.")
	if st, _ := param(r.Form, "state"); st != "" {
		q.Set("state", st)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
	return true
}

// requestURIKey marks an authorization request that came with request_uri.
type requestURIKey struct{}

func requestURI(ctx context.Context) bool {
	v, _ := ctx.Value(requestURIKey{}).(bool)
	return v
}

// discover serves the discovery document: the library's, less what Latchkey does not offer.
func (p *Provider) discover(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "Discovery answers GET.")
		return
	}
	ctx := op.ContextWithIssuer(r.Context(), strings.TrimSuffix(p.opt.Issuer, "/"))
	c := op.CreateDiscoveryConfig(ctx, p.op, p.st)
	c.ResponseTypesSupported = []string{string(zoidc.ResponseTypeCode)}
	c.GrantTypesSupported = []zoidc.GrantType{zoidc.GrantTypeCode, zoidc.GrantTypeRefreshToken}
	c.DeviceAuthorizationEndpoint = ""
	c.TokenEndpointAuthSigningAlgValuesSupported = nil
	c.RevocationEndpointAuthSigningAlgValuesSupported = nil
	c.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	c.RequestObjectSigningAlgValuesSupported = nil
	httphelper.MarshalJSON(w, struct {
		*zoidc.DiscoveryConfiguration
		// RFC 9207 §3: every authorization response carries iss (withIss).
		IssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
	}{c, true})
}

// withIss returns w adding RFC 9207's iss, the issuer, to every authorization response it
// redirects to a client (a code or an error, in the query or, for response_mode=fragment, in
// the fragment), so that a client talking to several providers can tell which one answered
// (mix-up attacks).
func (p *Provider) withIss(w http.ResponseWriter) http.ResponseWriter {
	return &issWriter{ResponseWriter: w, iss: strings.TrimSuffix(p.opt.Issuer, "/")}
}

type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w *issWriter) WriteHeader(status int) {
	if status/100 == 3 {
		if loc := w.Header().Get("Location"); loc != "" {
			w.Header().Set("Location", addIss(loc, w.iss))
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *issWriter) Write(b []byte) (int, error) { return w.ResponseWriter.Write(b) }

// addIss adds iss to loc when loc is an authorization response (an absolute URL whose query
// or fragment has code or error); anything else, such as the redirect to Latchkey's own
// sign-in, is returned as it is.
func addIss(loc, iss string) string {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() {
		return loc
	}
	param := "iss=" + url.QueryEscape(iss)
	if u.Fragment != "" {
		if f, err := url.ParseQuery(u.Fragment); err == nil && (f.Has("code") || f.Has("error")) && !f.Has("iss") {
			return loc + "&" + param
		}
		return loc
	}
	if q := u.Query(); (q.Has("code") || q.Has("error")) && !q.Has("iss") {
		u.RawQuery += "&" + param
		return u.String()
	}
	return loc
}

// basicChallenge adds RFC 6749 §5.2's WWW-Authenticate challenge to a 401 answer (invalid_client)
// of a request that authenticated its client with HTTP Basic.
func basicChallenge(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if _, _, ok := r.BasicAuth(); !ok {
		return w
	}
	return &challengeWriter{ResponseWriter: w}
}

type challengeWriter struct{ http.ResponseWriter }

func (w *challengeWriter) WriteHeader(status int) {
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey"`)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *challengeWriter) Write(b []byte) (int, error) { return w.ResponseWriter.Write(b) }

// oauthError writes an OAuth 2.0 error answer (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// refusalWriter replaces the library's plain-text refusal with status (the introspection
// endpoint's refused client, the userinfo endpoint's missing or refused token, whose text
// may carry the store's error) with an OAuth error in JSON and the WWW-Authenticate challenge;
// every other answer passes.
type refusalWriter struct {
	http.ResponseWriter
	status                       int
	challenge, code, description string
	replaced                     bool
	// forbidden, when not nil, makes a 403 a refusal too (userinfo), or a 503 when the store
	// failed.
	forbidden *userinfoOutcome
}

// userinfoOutcome is what the storage tells the guard of a userinfo request it refused:
// whether the store failed (rather than the token being refused).
type userinfoOutcome struct{ storeFailed bool }

type userinfoOutcomeKey struct{}

// storeFailed marks the userinfo request of ctx as refused because the store failed.
func storeFailed(ctx context.Context) {
	if o, ok := ctx.Value(userinfoOutcomeKey{}).(*userinfoOutcome); ok {
		o.storeFailed = true
	}
}

func (w *refusalWriter) WriteHeader(status int) {
	if status == http.StatusForbidden && w.forbidden != nil {
		w.replaced = true
		w.Header().Del("Content-Type")
		if w.forbidden.storeFailed {
			oauthError(w.ResponseWriter, http.StatusServiceUnavailable, "server_error", "The user information cannot be read now; try again in a few seconds.")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w.ResponseWriter, http.StatusUnauthorized, "invalid_token", "The access token is not valid or has expired.")
		return
	}
	if status == w.status && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.replaced = true
		w.Header().Set("WWW-Authenticate", w.challenge)
		oauthError(w.ResponseWriter, status, w.code, w.description)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil // the library's text, replaced
	}
	return w.ResponseWriter.Write(b)
}
