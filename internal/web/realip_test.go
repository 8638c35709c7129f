package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRealIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	h := realIP(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(clientIP(r))) }))
	for _, c := range []struct{ name, peer, xff, want string }{
		{"untrusted peer: header ignored", "203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},
		{"trusted peer, one hop", "127.0.0.1:5000", "198.51.100.1", "198.51.100.1"},
		{"trusted peer, spoofed left entries", "10.1.2.3:5000", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"two trusted proxies", "10.1.2.3:5000", "1.2.3.4, 198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"trusted peer, no header", "10.1.2.3:5000", "", "10.1.2.3"},
		{"trusted peer, garbage", "10.1.2.3:5000", "not-an-ip", "10.1.2.3"},
		{"garbage left of a good hop", "10.1.2.3:5000", "x, 198.51.100.7", "198.51.100.7"},
		{"all trusted", "10.1.2.3:5000", "10.4.4.4", "10.4.4.4"},
		{"IPv6 proxy", "[::1]:5000", "2001:db8::5", "2001:db8::5"},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:5000", "198.51.100.2", "198.51.100.2"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Body.String(); got != c.want {
			t.Errorf("%s: client %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("an invalid prefix was accepted")
	}
	if p, _ := ParseTrustedProxies(nil); realIP(p, http.NotFoundHandler()) == nil {
		t.Error("no handler without trusted proxies")
	}
}
