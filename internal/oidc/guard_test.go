package oidc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/oidc"
)

// TestDiscoveryListsWhatIsOffered: discovery advertises the authorization code flow (PKCE
// S256) with refresh tokens and nothing Latchkey does not serve: no implicit flow or ID token
// response types, no JWT bearer or device grant, no device authorization endpoint, no
// private_key_jwt algorithms; and any origin may read it.
func TestDiscoveryListsWhatIsOffered(t *testing.T) {
	f := setup(t)
	req := httptest.NewRequest("GET", "http://id.test/.well-known/openid-configuration", nil)
	req.Header.Set("Origin", "https://spa.example")
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, req)
	var disc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &disc); err != nil || rec.Code != 200 {
		t.Fatalf("discovery: %d %s", rec.Code, rec.Body)
	}
	list := func(k string) []string {
		var out []string
		for _, v := range disc[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := list("response_types_supported"); !slices.Equal(got, []string{"code"}) {
		t.Errorf("response_types_supported = %v, want [code]", got)
	}
	if got := list("grant_types_supported"); !slices.Equal(got, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("grant_types_supported = %v, want [authorization_code refresh_token]", got)
	}
	if got := list("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v, want [S256]", got)
	}
	for _, k := range []string{"device_authorization_endpoint", "revocation_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_signing_alg_values_supported", "token_endpoint_auth_signing_alg_values_supported", "request_object_signing_alg_values_supported"} {
		if v, ok := disc[k]; ok {
			t.Errorf("discovery advertises %s = %v", k, v)
		}
	}
	if disc["issuer"] != "http://id.test" || disc["token_endpoint"] != "http://id.test/oidc/token" || disc["jwks_uri"] != "http://id.test/oidc/keys" {
		t.Errorf("discovery endpoints: %v", disc)
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("discovery's CORS headers: %v", rec.Header())
	}
}

// TestUnofferedEndpointsAnswerClearly: the device authorization path is a 404, a JWT bearer
// grant is unsupported_grant_type, and a refused client at the introspection endpoint gets
// invalid_client: each in OAuth's JSON error form, none carrying the store's error text.
func TestUnofferedEndpointsAnswerClearly(t *testing.T) {
	f := setup(t)
	post := func(path string, form url.Values, user, pass string) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest("POST", "http://id.test"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("POST %s: %d, not JSON: %q", path, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "latchkey error") || strings.Contains(rec.Body.String(), "Parent=") {
			t.Errorf("POST %s carries an internal error: %s", path, rec.Body)
		}
		return rec, body
	}
	for _, path := range []string{"/oidc/nope", "/oidc/authorize/callback", "/oidc/"} {
		if rec, body := post(path, nil, "", ""); rec.Code != 404 || body["error"] != "invalid_request" || !strings.Contains(body["error_description"].(string), "discovery") {
			t.Errorf("POST %s = %d %v, want 404 invalid_request in JSON", path, rec.Code, body)
		}
	}
	for _, client := range []string{"app", "nope"} {
		if rec, body := post("/oidc/device_authorization", url.Values{"client_id": {client}, "scope": {"openid"}}, "", ""); rec.Code != 404 || body["error"] != "invalid_request" {
			t.Errorf("device authorization (%s) = %d %v, want 404 invalid_request", client, rec.Code, body)
		}
	}
	bearer := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b.c"}}
	if rec, body := post("/oidc/token", bearer, "app", f.secrets["app"]); rec.Code != 400 || body["error"] != "unsupported_grant_type" {
		t.Errorf("JWT bearer grant = %d %v, want 400 unsupported_grant_type", rec.Code, body)
	}
	for _, creds := range [][2]string{{"nope", "secret"}, {"app", "wrong secret"}} {
		rec, body := post("/oidc/introspect", url.Values{"token": {"abc"}}, creds[0], creds[1])
		if rec.Code != http.StatusUnauthorized || body["error"] != "invalid_client" || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("introspection by %s = %d %v (%s), want 401 invalid_client in JSON", creds[0], rec.Code, body, rec.Header().Get("Content-Type"))
		}
	}
	// A refresh by a client that is not registered: invalid_client, with or without a secret.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"abc"}, "client_id": {"nope"}}
	if rec, body := post("/oidc/token", refresh, "", ""); rec.Code != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("refresh by an unknown public client = %d %v, want 401 invalid_client", rec.Code, body)
	}
	refresh.Del("client_id")
	if rec, body := post("/oidc/token", refresh, "nope", "x"); rec.Code != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("refresh by an unknown confidential client = %d %v, want 401 invalid_client", rec.Code, body)
	}
	// The right client still introspects (an unknown token: inactive).
	if rec, _ := post("/oidc/introspect", url.Values{"token": {"abc"}}, "app", f.secrets["app"]); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"active":false`) {
		t.Errorf("introspection by the client = %d %s", rec.Code, rec.Body)
	}
	// The code flow's token endpoint is untouched: a made-up code is invalid_grant.
	code := url.Values{"grant_type": {"authorization_code"}, "code": {"made-up"}, "redirect_uri": {"https://app.test/cb"}, "code_verifier": {verifier}}
	if rec, body := post("/oidc/token", code, "app", f.secrets["app"]); rec.Code != 400 || body["error"] != "invalid_grant" {
		t.Errorf("made-up code = %d %v, want 400 invalid_grant", rec.Code, body)
	}
}

// TestUserinfoChallenge: the userinfo endpoint refuses a missing or unknown access token with
// RFC 6750's Bearer challenge (naming invalid_token only when a token came) and a JSON error.
func TestUserinfoChallenge(t *testing.T) {
	f := setup(t)
	for _, tt := range []struct{ auth, challenge, code string }{
		{"Bearer not-a-token", `Bearer error="invalid_token"`, "invalid_token"},
		{"", "Bearer", "invalid_request"},
	} {
		req := httptest.NewRequest("GET", "http://id.test/oidc/userinfo", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != tt.challenge || body["error"] != tt.code {
			t.Errorf("userinfo with %q = %d, challenge %q, body %s; want 401, %q, %s", tt.auth, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body, tt.challenge, tt.code)
		}
	}
}

// TestTokenRefusalsSayWhy: a revoked access token at the userinfo endpoint is a 401 with the
// Bearer challenge (the library answered 403 with the store's error in JSON); a client that
// authenticated with HTTP Basic and is refused gets the Basic challenge (RFC 6749 §5.2) at the
// token and revocation endpoints; token responses say Pragma: no-cache beside no-store.
func TestTokenRefusalsSayWhy(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", f.code(t, id)))
	if rec.Code != 200 || rec.Header().Get("Pragma") != "no-cache" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d, Pragma %q, Cache-Control %q", rec.Code, rec.Header().Get("Pragma"), rec.Header().Get("Cache-Control"))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(rec.Body.Bytes(), &tok)
	userinfo := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://id.test/oidc/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := userinfo(); rec.Code != 200 {
		t.Fatalf("userinfo: %d %s", rec.Code, rec.Body)
	}
	if _, err := f.db.DeleteOIDCUserTokens(ctx, f.user.ID, "", ""); err != nil {
		t.Fatal(err)
	}
	rec = userinfo()
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` || body["error"] != "invalid_token" || strings.Contains(rec.Body.String(), "not_found") {
		t.Errorf("userinfo with a revoked token: %d, challenge %q, %s", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
	for _, path := range []string{"/oidc/token", "/oidc/revoke"} {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "token": {"x"}}
		req := httptest.NewRequest("POST", "http://id.test"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", "wrong secret")
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Basic realm="latchkey"` || !strings.Contains(rec.Body.String(), "invalid_client") {
			t.Errorf("%s with a wrong secret: %d, challenge %q, %s", path, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
	}
}

// TestAuthorizeRefusesWhatItCannotHonour: a redirect URI that matches a registered one only
// after percent-decoding is refused without a redirect; form_post, request_uri and a
// code_challenge that is not an S256 value are refused at the client's redirect URI (in the
// query); an access token in the userinfo URL is refused.
func TestAuthorizeRefusesWhatItCannotHonour(t *testing.T) {
	f := setup(t)
	authorize := func(params url.Values) *httptest.ResponseRecorder { return f.authorizeRequest("st", params) }
	for _, uri := range []string{"https://app.test/c%62", "https://app.test/%63b", "https://app.test/cb/"} {
		if rec := authorize(url.Values{"redirect_uri": {uri}, "max_age": {"soon"}}); rec.Code != 400 || rec.Header().Get("Location") != "" {
			t.Errorf("redirect_uri %q with a bad max_age = %d to %q, want 400 without a redirect", uri, rec.Code, rec.Header().Get("Location"))
		}
		if rec := authorize(url.Values{"redirect_uri": {uri}}); rec.Code != 400 || rec.Header().Get("Location") != "" {
			t.Errorf("redirect_uri %q = %d to %q, want 400 without a redirect", uri, rec.Code, rec.Header().Get("Location"))
		}
	}
	for _, tt := range []struct {
		name   string
		params url.Values
		err    string
	}{
		{"form_post", url.Values{"response_mode": {"form_post"}}, "invalid_request"},
		{"query.jwt", url.Values{"response_mode": {"query.jwt"}}, "invalid_request"},
		{"request_uri", url.Values{"request_uri": {"https://app.test/req.jwt"}}, "request_uri_not_supported"},
		{"short code_challenge", url.Values{"code_challenge": {"abc"}}, "invalid_request"},
		{"code_challenge not base64url", url.Values{"code_challenge": {strings.Repeat("+", 43)}}, "invalid_request"},
		{"max_age not a number", url.Values{"max_age": {"soon"}}, "invalid_request"},
		{"max_age negative", url.Values{"max_age": {"-5"}}, "invalid_request"},
	} {
		rec := authorize(tt.params)
		loc, _ := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || loc == nil || loc.Host != "app.test" || loc.Query().Get("error") != tt.err || loc.Query().Get("state") != "st" {
			t.Errorf("%s = %d to %q, want %s at the redirect URI (in the query)\n%s", tt.name, rec.Code, rec.Header().Get("Location"), tt.err, rec.Body)
		}
	}
	// The response modes Latchkey answers in still work.
	for _, mode := range []string{"query", "fragment"} {
		if loc, _ := url.Parse(authorize(url.Values{"response_mode": {mode}}).Header().Get("Location")); loc == nil || loc.Path != "/oidc/login" {
			t.Errorf("response_mode=%s: sent to %v, want the sign-in", mode, loc)
		}
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/userinfo?access_token=abc", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "invalid_request") {
		t.Errorf("access token in the userinfo URL = %d %s, want 400 invalid_request", rec.Code, rec.Body)
	}
}

// TestErrorsNeverGoToAnUnregisteredRedirect: a redirect_uri that only percent-decodes to a
// registered one (https://app.test/%63b for https://app.test/cb) is refused with a 400 and no
// redirect, also when the request has another error that the library would have redirected
// there with the state; with the registered URI, that error goes to the client.
func TestErrorsNeverGoToAnUnregisteredRedirect(t *testing.T) {
	f := setup(t)
	authorize := func(params url.Values) *httptest.ResponseRecorder { return f.authorizeRequest("S", params) }
	for _, tt := range []struct {
		name   string
		params url.Values
	}{
		{"prompt none and login", url.Values{"prompt": {"none login"}}},
		{"response_type token", url.Values{"response_type": {"token"}}},
		{"bad id_token_hint", url.Values{"id_token_hint": {"not.a.token"}}},
	} {
		rec := authorize(tt.params)
		if loc, _ := url.Parse(rec.Header().Get("Location")); rec.Code != http.StatusFound || loc == nil || loc.Host != "app.test" || loc.Query().Get("error") == "" {
			t.Errorf("%s with the registered redirect_uri = %d to %q, want an error at it", tt.name, rec.Code, rec.Header().Get("Location"))
		}
		for _, uri := range []string{"https://app.test/%63b", "https://app.test/c%62", "https://%61pp.test/cb"} {
			params := url.Values{"redirect_uri": {uri}}
			for k, v := range tt.params {
				params[k] = v
			}
			if rec := authorize(params); rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
				t.Errorf("%s with redirect_uri %q = %d to %q, want 400 without a redirect", tt.name, uri, rec.Code, rec.Header().Get("Location"))
			}
		}
	}
}

// TestAuthorizationResponsesNameTheIssuer: RFC 9207. Discovery says so, and every answer at
// the client's redirect URI carries iss: the code, the library's errors, Latchkey's own, in
// the fragment for response_mode=fragment; the redirect to Latchkey's sign-in does not.
func TestAuthorizationResponsesNameTheIssuer(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/.well-known/openid-configuration", nil))
	var disc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &disc); err != nil || disc["authorization_response_iss_parameter_supported"] != true || disc["issuer"] != "http://id.test" {
		t.Errorf("discovery = %v, %v; want authorization_response_iss_parameter_supported true", disc, err)
	}
	authorize := func(params url.Values) *url.URL {
		q := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid"},
			"code_challenge": {challenge()}, "code_challenge_method": {"S256"}, "state": {"S"}}
		for k, v := range params {
			q[k] = v
		}
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/authorize?"+q.Encode(), nil))
		loc, _ := url.Parse(rec.Header().Get("Location"))
		if loc == nil {
			t.Fatalf("authorize %v: %d without a redirect", params, rec.Code)
		}
		return loc
	}
	for _, tt := range []struct {
		name   string
		params url.Values
	}{
		{"library's error", url.Values{"prompt": {"none login"}}},
		{"bad max_age", url.Values{"max_age": {"soon"}}},
		{"login_required", url.Values{"prompt": {"none"}}},
	} {
		loc := authorize(tt.params)
		if tt.name == "login_required" {
			// prompt=none without a session: Latchkey's decision, answered by Respond.
			id := loc.Query().Get("id")
			d, err := f.p.Authorize(ctx, id, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			f.p.Respond(rec, httptest.NewRequest("GET", "http://id.test/oidc/login?id="+id, nil), id, d.Err)
			loc, _ = url.Parse(rec.Header().Get("Location"))
		}
		if q := loc.Query(); loc.Host != "app.test" || q.Get("error") == "" || q.Get("iss") != "http://id.test" || q.Get("state") != "S" {
			t.Errorf("%s: redirected to %s, want an error with iss=http://id.test", tt.name, loc)
		}
	}
	frag := authorize(url.Values{"response_mode": {"fragment"}, "prompt": {"none login"}})
	if fq, _ := url.ParseQuery(frag.Fragment); fq.Get("error") == "" || fq.Get("iss") != "http://id.test" || frag.Query().Has("iss") {
		t.Errorf("fragment error: redirected to %s, want iss in the fragment", frag)
	}
	if login := authorize(nil); login.Path != "/oidc/login" || login.Query().Has("iss") {
		t.Errorf("sign-in redirect = %s, want /oidc/login without iss", login)
	}
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	f.p.Respond(rec, httptest.NewRequest("GET", "http://id.test/oidc/login?id="+id, nil), id, nil)
	if loc, _ := url.Parse(rec.Header().Get("Location")); loc == nil || loc.Query().Get("code") == "" || loc.Query().Get("iss") != "http://id.test" {
		t.Errorf("code response = %q, want a code with iss=http://id.test", rec.Header().Get("Location"))
	}
}

// TestDuplicatedParametersAreRefused: RFC 6749 §3.1 and §3.2, request parameters MUST NOT be
// included more than once. A parameter twice in the query, twice in the body, once in each,
// or spelled in another case (the library reads names without regard to case) is refused
// before anything reads one of its values: at the authorize endpoint with a 400 and no
// redirect, naming the parameter; at the token, revocation, introspection and userinfo
// endpoints with invalid_request in JSON, never cached. A refused exchange leaves the code
// usable. Without the check, a redirect_uri given twice passed the guard with the registered
// URI and the library sent its error, with the state, to the other.
func TestDuplicatedParametersAreRefused(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	base := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid"},
		"code_challenge": {challenge()}, "code_challenge_method": {"S256"}, "state": {"S"}}
	for _, tt := range []struct {
		name, method, query, body, param string
	}{
		{"redirect_uri twice in the query", "GET", base.Encode() + "&prompt=none+login&redirect_uri=" + url.QueryEscape("https://app.test/%63b"), "", `"redirect_uri"`},
		{"redirect_uri in another case", "GET", base.Encode() + "&prompt=none+login&Redirect_URI=" + url.QueryEscape("https://app.test/%63b"), "", `"Redirect_URI"`},
		{"state twice", "GET", base.Encode() + "&state=T", "", `"state"`},
		{"state twice, one empty", "GET", base.Encode() + "&state=", "", `"state"`},
		{"scope in the query and the body", "POST", "scope=openid+email", base.Encode(), `"scope"`},
		{"client_id twice in the body", "POST", "", base.Encode() + "&client_id=third", `"client_id"`},
	} {
		t.Run("authorize, "+tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://id.test/oidc/authorize?"+tt.query, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			f.p.Handler().ServeHTTP(rec, req)
			reason, ok := oidc.RefusalReason(rec.Body.String())
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" || !ok || !strings.Contains(reason, tt.param) || !strings.Contains(reason, "more than once") {
				t.Fatalf("%s: %d to %q, %q (reason %q); want 400 without a redirect, naming %s", tt.name, rec.Code, rec.Header().Get("Location"), rec.Body, reason, tt.param)
			}
		})
	}
	// Each parameter once: to the sign-in, as before.
	f.start(t, "app", nil)

	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	code := f.code(t, id)
	good := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}, "code_verifier": {verifier}}.Encode()
	for _, tt := range []struct {
		name, path, query, body, param string
	}{
		{"token, code twice", "/oidc/token", "", good + "&code=other", `"code"`},
		{"token, code_verifier in the query and the body", "/oidc/token", "code_verifier=" + verifier, good, `"code_verifier"`},
		{"token, grant_type in another case", "/oidc/token", "", good + "&Grant_Type=refresh_token", `"Grant_Type"`},
		{"token, redirect_uri twice in the query", "/oidc/token", "redirect_uri=a&redirect_uri=b", good, `"redirect_uri"`},
		{"revoke, token twice", "/oidc/revoke", "", "token=a&token=b", `"token"`},
		{"introspect, token in the query and the body", "/oidc/introspect", "token=a", "token=b", `"token"`},
		{"userinfo, access_token twice", "/oidc/userinfo", "", "access_token=a&access_token=b", `"access_token"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := "http://id.test" + tt.path
			if tt.query != "" {
				target += "?" + tt.query
			}
			req := httptest.NewRequest("POST", target, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("app", f.secrets["app"])
			rec := httptest.NewRecorder()
			f.p.Handler().ServeHTTP(rec, req)
			var body map[string]string
			err := json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != http.StatusBadRequest || err != nil || len(body) != 2 || body["error"] != "invalid_request" ||
				!strings.Contains(body["error_description"], tt.param) || !strings.Contains(body["error_description"], "more than once") {
				t.Errorf("%d %s; want 400 invalid_request naming %s", rec.Code, rec.Body, tt.param)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if tt.path == "/oidc/userinfo" && rec.Header().Get("WWW-Authenticate") != `Bearer error="invalid_request"` {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// Nothing changed: the code was not used up, and its exchange works.
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, f.tokenRequest("app", code))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "access_token") {
		t.Fatalf("the exchange after the refused ones: %d %s", rec.Code, rec.Body)
	}
	if a := f.actions(t); slices.Contains(a, latchkey.ActionOIDCCodeReused) {
		t.Errorf("refused exchanges recorded a reuse: %v", a)
	}
}

// TestUnreadableParameters: a body over the server's limit is a 413, a multipart body (whose
// fields the library would never read) a 415, each as invalid_request in JSON at the token
// endpoint.
func TestUnreadableParameters(t *testing.T) {
	f := setup(t)
	for _, tt := range []struct {
		name, ctype, body string
		limit             int64
		code              int
		msg               string
	}{
		{"too large", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=" + strings.Repeat("x", 200), 100, http.StatusRequestEntityTooLarge, "too large"},
		{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--x--\r\n", 1 << 20, http.StatusUnsupportedMediaType, "application/x-www-form-urlencoded"},
		{"bad escape", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=%zz", 1 << 20, http.StatusBadRequest, "cannot be read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			req.Body = http.MaxBytesReader(rec, req.Body, tt.limit)
			req.SetBasicAuth("app", f.secrets["app"])
			f.p.Handler().ServeHTTP(rec, req)
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != tt.code || body["error"] != "invalid_request" || !strings.Contains(body["error_description"], tt.msg) {
				t.Errorf("%d %s; want %d invalid_request saying %q", rec.Code, rec.Body, tt.code, tt.msg)
			}
		})
	}
}

// TestEndSessionParameterTwice: an RP-initiated logout request with a parameter once in the
// query and once in the body (which the pages' form check, looking at each alone, lets by)
// is refused naming it.
func TestEndSessionParameterTwice(t *testing.T) {
	f := setup(t)
	req := httptest.NewRequest("POST", "http://id.test/oidc/end_session?state=a", strings.NewReader("client_id=app&state=b"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err := f.p.ParseEndSession(req)
	if latchkey.ErrorCode(err) != latchkey.EInvalid || !strings.Contains(latchkey.ErrorMessage(err), `"state" more than once`) {
		t.Errorf("ParseEndSession = %v, want invalid_request naming state", err)
	}
}

// TestGuardReadsNamesAsTheLibraryDoes: the library reads a parameter whatever the case of its
// name (Redirect_URI is redirect_uri to it), so the checks in front of it do too: a
// redirect_uri that only percent-decodes to a registered one is refused without a redirect
// also when spelled Redirect_URI, request_uri and a bad max_age in another case are refused
// at the client's redirect URI as in lower case, and an access token in the userinfo URL
// is refused whatever its name's case.
func TestGuardReadsNamesAsTheLibraryDoes(t *testing.T) {
	f := setup(t)
	q := func(extra string) string {
		return "client_id=app&response_type=code&scope=openid&state=S&code_challenge=" + challenge() + "&code_challenge_method=S256&" + extra
	}
	authorize := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/authorize?"+query, nil))
		return rec
	}
	for _, extra := range []string{"prompt=none+login", "id_token_hint=not.a.token"} {
		for _, name := range []string{"Redirect_URI", "REDIRECT_URI"} {
			query := q(name + "=" + url.QueryEscape("https://app.test/%63b") + "&" + extra)
			if rec := authorize(query); rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
				t.Errorf("%s=https://app.test/%%63b with %s = %d to %q, want 400 without a redirect", name, extra, rec.Code, rec.Header().Get("Location"))
			}
		}
	}
	for _, tt := range []struct{ name, extra, err string }{
		{"Request_URI", "Request_URI=" + url.QueryEscape("https://app.test/req.jwt"), "request_uri_not_supported"},
		{"Max_Age", "Max_Age=soon", "invalid_request"},
	} {
		rec := authorize(q("redirect_uri=" + url.QueryEscape("https://app.test/cb") + "&" + tt.extra))
		loc, _ := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || loc == nil || loc.Host != "app.test" || loc.Query().Get("error") != tt.err || loc.Query().Get("state") != "S" {
			t.Errorf("%s = %d to %q, want %s at the redirect URI\n%s", tt.name, rec.Code, rec.Header().Get("Location"), tt.err, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/userinfo?Access_Token=abc", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "invalid_request") || !strings.Contains(rec.Body.String(), "not in the URL") {
		t.Errorf("Access_Token in the userinfo URL = %d %s, want 400 invalid_request", rec.Code, rec.Body)
	}
}

// TestEndSessionTakesGetAndPost: the provider's end_session endpoint answers a method other
// than GET and POST, even with a valid id_token_hint (and a parameter twice in a body, which
// it does not read), with a 405 naming them, and touches nothing: the library's handler
// revoked the user's tokens for the client, with no back-channel logout.
func TestEndSessionTakesGetAndPost(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", nil)
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("token response: %v", err)
	}
	q := url.Values{"id_token_hint": {tok.IDToken}, "client_id": {"app"}}.Encode()
	for _, method := range []string{"PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE"} {
		req := httptest.NewRequest(method, "http://id.test/oidc/end_session?"+q, strings.NewReader("state=a&state=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, POST" || rec.Header().Get("Location") != "" {
			t.Errorf("%s end_session: %d, Allow %q, Location %q, %s", method, rec.Code, rec.Header().Get("Allow"), rec.Header().Get("Location"), rec.Body)
		}
	}
	req := httptest.NewRequest("GET", "http://id.test/oidc/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("userinfo after the refused end_session requests: %d %s", rec.Code, rec.Body)
	}
}

// TestHandlerNeverServesEndSession: the provider's handler, mounted alone, answers GET and POST
// at end_session with a 404 and no redirect, even with a valid id_token_hint, and touches
// nothing: the library's end_session revoked the user's tokens for the client with no
// back-channel logout. RP-initiated logout is the server's page, in front of the handler.
func TestHandlerNeverServesEndSession(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	id := f.start(t, "app", url.Values{"scope": {"openid offline_access"}})
	if _, err := f.p.Authorize(ctx, id, &latchkey.Session{AMR: []string{"pwd"}, PasswordAt: t0}, f.user); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(f.exchange(t, "app", id)), &tok); err != nil || tok.IDToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token response: %v", err)
	}
	q := url.Values{"id_token_hint": {tok.IDToken}, "client_id": {"app"}, "state": {"bye"}}.Encode()
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "http://id.test/oidc/end_session?"+q, nil),
		httptest.NewRequest("POST", "http://id.test/oidc/end_session", strings.NewReader(q)),
	} {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || rec.Header().Get("Location") != "" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s end_session: %d, Location %q, Cache-Control %q, %s; want 404 without a redirect", req.Method, rec.Code,
				rec.Header().Get("Location"), rec.Header().Get("Cache-Control"), rec.Body)
		}
		info := httptest.NewRequest("GET", "http://id.test/oidc/userinfo", nil)
		info.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		rec = httptest.NewRecorder()
		f.p.Handler().ServeHTTP(rec, info)
		if rec.Code != http.StatusOK {
			t.Errorf("userinfo after %s end_session: %d %s", req.Method, rec.Code, rec.Body)
		}
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	req := httptest.NewRequest("POST", "http://id.test/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", f.secrets["app"])
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("refresh after the end_session requests: %d %s", rec.Code, rec.Body)
	}
}

// authorizeRequest sends the app's authorization request, state and PKCE included, with
// params put in place of or beside its parameters, to the provider's handler.
func (f *fixture) authorizeRequest(state string, params url.Values) *httptest.ResponseRecorder {
	q := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid"},
		"code_challenge": {challenge()}, "code_challenge_method": {"S256"}, "state": {state}}
	for k, v := range params {
		q[k] = v
	}
	rec := httptest.NewRecorder()
	f.p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://id.test/oidc/authorize?"+q.Encode(), nil))
	return rec
}
