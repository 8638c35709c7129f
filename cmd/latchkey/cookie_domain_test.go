package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCookieDomain(t *testing.T) {
	for _, tt := range []struct {
		name, public, domain, wantErr, want string
	}{
		{"parent", "https://auth.example.com", "example.com", "", "example.com"},
		{"leading dot, upper case", "https://auth.example.com", ".Example.COM", "", "example.com"},
		{"the host itself", "https://auth.example.com", "auth.example.com", "", "auth.example.com"},
		{"unset", "https://auth.example.com", "", "", ""},
		{"another domain", "https://auth.example.com", "example.org", "must cover the public URL's host", ""},
		{"a suffix that is not a parent", "https://auth.myexample.com", "example.com", "must cover", ""},
		{"a URL", "https://auth.example.com", "https://example.com", "must be a domain name", ""},
		{"a port", "https://auth.example.com", "example.com:443", "must be a domain name", ""},
		{"an IP", "http://127.0.0.1:8080", "127.0.0.1", "must be a domain name", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(file, []byte("session:\n  cookie_domain: \""+tt.domain+"\"\n"), 0o600)
			cfg, _, err := parse("serve", []string{"--config", file, "--public-url", tt.public}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "session.cookie_domain") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("cookie_domain %q with %s: err = %v, want one about %q", tt.domain, tt.public, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.cookieDomain(); got != tt.want {
				t.Errorf("cookieDomain() = %q, want %q", got, tt.want)
			}
		})
	}
}
