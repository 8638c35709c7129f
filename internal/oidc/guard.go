package oidc

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/op"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// pathDeviceAuthorization is where the library serves the device authorization endpoint,
// which Latchkey does not offer: guard answers it with a 404.
const pathDeviceAuthorization = "/oidc/device_authorization"

// guard puts Latchkey's answers in front of the library's (lib) where the library's are
// not what Latchkey offers:
//   - discovery lists only what Latchkey serves: the authorization code flow with PKCE and
//     refresh tokens, no implicit flow, no JWT bearer or device grant, no private_key_jwt
//     algorithms (the library advertises all of them whatever the configuration);
//   - the device authorization path is a 404 (the library answered a 500 with the store's
//     error in its description);
//   - a JWT bearer grant at the token endpoint is unsupported_grant_type (the library
//     parsed the assertion and then refused it as a malformed request);
//   - a refused client at the introspection endpoint gets invalid_client in JSON (RFC 7662
//     §2.3, RFC 6749 §5.2), not the library's plain text carrying the store's error.
func (p *Provider) guard(lib http.Handler) http.Handler {
	discovery := cors.New(corsOptions).Handler(http.HandlerFunc(p.discover))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathDiscovery:
			discovery.ServeHTTP(w, r)
			return
		case pathDeviceAuthorization:
			oauthError(w, http.StatusNotFound, "invalid_request", "Latchkey does not offer the device authorization grant.")
			return
		case PathToken:
			if r.Method == http.MethodPost && r.PostFormValue("grant_type") == string(zoidc.GrantTypeBearer) {
				oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Latchkey does not offer the JWT bearer grant.")
				return
			}
		case PathIntrospect:
			lib.ServeHTTP(&introspectionWriter{ResponseWriter: w}, r)
			return
		}
		lib.ServeHTTP(w, r)
	})
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
	op.Discover(w, c)
}

// oauthError writes an OAuth 2.0 error answer (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// introspectionWriter replaces the library's plain-text 401 of the introspection endpoint
// (a refused client) with an invalid_client error in JSON; everything else passes.
type introspectionWriter struct {
	http.ResponseWriter
	refused bool
}

func (w *introspectionWriter) WriteHeader(status int) {
	if status == http.StatusUnauthorized && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.refused = true
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey"`)
		oauthError(w.ResponseWriter, status, "invalid_client", "The client credentials are not valid.")
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *introspectionWriter) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil // the library's text, replaced
	}
	return w.ResponseWriter.Write(b)
}
