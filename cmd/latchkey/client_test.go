package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestClientCreateContract: `latchkey client create --name NAME --redirect-uri URI
// [--public]` prints {"client_id","client_secret"} as JSON on standard output and nothing
// else there (SPEC.md); without --id the ID is generated.
func TestClientCreateContract(t *testing.T) {
	data := t.TempDir()
	create := func(args ...string) (map[string]string, string) {
		t.Helper()
		var out, errb strings.Builder
		if err := run(context.Background(), append([]string{"client", "create", "--data", data}, args...), env(nil), nil, &out, &errb); err != nil {
			t.Fatalf("client create %v: %v\n%s", args, err, errb.String())
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
			t.Fatalf("standard output is not one JSON object: %v\n%q", err, out.String())
		}
		return m, errb.String()
	}
	conf, _ := create("--name", "Team wiki", "--redirect-uri", "https://wiki.example.com/cb", "--redirect-uri", "https://wiki.example.com/cb2")
	if len(conf["client_id"]) < 16 || len(conf["client_secret"]) < 40 {
		t.Errorf("confidential client: %v", conf)
	}
	pub, msg := create("--name", "SPA", "--redirect-uri", "https://spa.example.com/cb", "--public")
	if pub["client_id"] == "" || pub["client_id"] == conf["client_id"] || pub["client_secret"] != "" {
		t.Errorf("public client: %v", pub)
	}
	if !strings.Contains(msg, "PKCE") {
		t.Errorf("standard error for a public client: %q", msg)
	}
	named, _ := create("--id", "wiki", "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb")
	if named["client_id"] != "wiki" {
		t.Errorf("--id wiki gave %v", named)
	}
	// The issuer printed is the public URL, from --public-url or LATCHKEY_PUBLIC_URL as for
	// serve (it was the default listen address whatever they said).
	if m, _ := create("--name", "A", "--redirect-uri", "https://a.example.com/cb", "--public-url", "https://id.example.com/"); m["issuer"] != "https://id.example.com" {
		t.Errorf("--public-url: issuer %q", m["issuer"])
	}
	var eo, ee strings.Builder
	if err := run(context.Background(), []string{"client", "create", "--data", data, "--name", "B", "--redirect-uri", "https://b.example.com/cb"},
		env(map[string]string{"LATCHKEY_PUBLIC_URL": "https://login.example.org"}), nil, &eo, &ee); err != nil || !strings.Contains(eo.String(), `"issuer":"https://login.example.org"`) {
		t.Errorf("LATCHKEY_PUBLIC_URL: %v, %s", err, eo.String())
	}
	var out, errb strings.Builder
	err := run(context.Background(), []string{"client", "create", "--data", data, "--redirect-uri", "https://x.example.com/cb"}, env(nil), nil, &out, &errb)
	if exitCode(err) != 2 || out.Len() != 0 {
		t.Errorf("without --name: err %v (exit %d), output %q", err, exitCode(err), out.String())
	}
}
