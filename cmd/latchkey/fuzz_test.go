package main

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzConfigFile feeds arbitrary configuration files to the loader that `latchkey serve`
// runs (parse with --config): it never panics; a refused file is a usage error (exit code 2)
// that lists the problems and never quotes a database or SMTP password; an accepted file
// gives a configuration that validates and loads the same way twice.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"addr: 127.0.0.1:7000\nmfa: required\nsmtp: smtp://file.example:25\n",
		"mfa: sometimes\nlog:\n  level: loud\n",
		"database: postgres://latchkey:s3cret-pass@db.example/latchkey\nkeys:\n  session: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n  secrets: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		"database: mysql://root:hunter2-pw@db/x\n",
		"smtp: http://user:p4ssw0rd-xyz@mail.example\n",
		"session:\n  max_age: 12h\n  idle_timeout: 90m\n  reauthenticate_after: -1s\n",
		"push:\n  number_length: 7\n  expiry: 11m\n  fraud_pause: 1h\n  max_pushes: 0\n",
		"webauthn:\n  rp_id: example.com\n  origins: [https://login.example.com, ftp://x]\n  attestation: direct\n  passkeys: true\n",
		"mfa_methods: [totp, sms]\n",
		"public_url: https://login.example.com/\nissuer: ACME\n",
		"unknown: 1\n",
		"addr: [1, 2]\n",
		"session:\n  max_age: [12h]\n",
		"&a [*a]\n",
		"a: &a [*a, *a, *a, *a]\nb: &b [*a, *a, *a, *a]\n",
		"---\n---\n",
		"",
		"\t",
		"%YAML 1.1\n---\nmfa: optional\n",
	} {
		f.Add([]byte(s))
	}
	noEnv := func(string) string { return "" }
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "latchkey.yaml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--config", file}
		cfg, _, err := parse("serve", args, noEnv, &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
		if err != nil {
			if cfg != nil {
				t.Fatalf("parse returned a configuration with error %v", err)
			}
			if exitCode(err) != 2 || !strings.Contains(err.Error(), "invalid configuration") {
				t.Fatalf("a bad file is a usage error listing the problems, got exit code %d: %v", exitCode(err), err)
			}
			// Passwords in URLs stay out of the message (unless the file repeats them elsewhere).
			var raw Config
			_ = yaml.Unmarshal(data, &raw)
			for _, s := range []string{raw.Database, raw.SMTP} {
				u, perr := url.Parse(s)
				if perr != nil || u.User == nil {
					continue
				}
				if pw, ok := u.User.Password(); ok && len(pw) >= 6 && bytes.Count(data, []byte(pw)) == 1 && strings.Contains(err.Error(), pw) {
					t.Fatalf("the error quotes the password %q:\n%v", pw, err)
				}
			}
			return
		}
		if p := cfg.validate(); len(p) != 0 {
			t.Fatalf("parse accepted a configuration that does not validate: %v", p)
		}
		if cfg.configFile != file {
			t.Fatalf("configFile = %q, want %q", cfg.configFile, file)
		}
		again, _, err := parse("serve", args, noEnv, &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("the same file loaded twice: %+v, %v\nthen %+v", cfg, err, again)
		}
	})
}
