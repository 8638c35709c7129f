package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "latchkey.yaml")
	if err := os.WriteFile(file, []byte("addr: 127.0.0.1:7000\nmfa: required\nsmtp: smtp://file.example:25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	smtpFile := filepath.Join(dir, "smtp-url")
	os.WriteFile(smtpFile, []byte("smtp://user:secret@fromfile.example:587\n"), 0o600)
	cfg, _, err := parse("serve", []string{"--config", file, "--addr", "127.0.0.1:9000"},
		env(map[string]string{"LATCHKEY_ADDR": "127.0.0.1:8000", "LATCHKEY_DATA": "/tmp/env-data", "LATCHKEY_SMTP_FILE": smtpFile}),
		&bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9000" {
		t.Errorf("Addr = %q, want the flag's value", cfg.Addr)
	}
	if cfg.Data != "/tmp/env-data" {
		t.Errorf("Data = %q, want the environment's value", cfg.Data)
	}
	if cfg.MFA != "required" {
		t.Errorf("MFA = %q, want the file's value", cfg.MFA)
	}
	if cfg.SMTP != "smtp://user:secret@fromfile.example:587" {
		t.Errorf("SMTP = %q, want the _FILE value", cfg.SMTP)
	}
	if cfg.Issuer != "Latchkey" {
		t.Errorf("Issuer = %q, want the default", cfg.Issuer)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("mfa: sometimes\nlog:\n  level: loud\nforward_auth:\n  rules:\n    - hosts: [\"https://app.example.com\"]\n      policy: mfa\ntrusted_proxies: [\"10.0.0.0/8\", \"proxy.local\"]\n"), 0o600)
	_, _, err := parse("serve", []string{"--config", file, "--addr", "nonsense", "--public-url", "ftp://x", "--smtp", "http://mail", "--database", "mysql://db"},
		env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"addr", "public-url", "smtp", "mfa", "log.level", "database", "forward-auth rule 1: host", "trusted_proxies: trusted proxy \"proxy.local\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if exitCode(err) != 2 {
		t.Errorf("exit code %d, want 2", exitCode(err))
	}
}

func TestConfigUnknownKeyInFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(file, []byte("adress: 127.0.0.1:1\n"), 0o600)
	_, _, err := parse("serve", []string{"--config", file}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestPostgresNeedsKeys(t *testing.T) {
	_, _, err := parse("serve", []string{"--database", "postgres://u@localhost/db"}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil || !strings.Contains(err.Error(), "keys.session") || !strings.Contains(err.Error(), "keys.secrets") {
		t.Fatalf("postgres without keys: %v", err)
	}
	k := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	_, _, err = parse("serve", []string{"--database", "postgres://u@localhost/db"},
		env(map[string]string{"LATCHKEY_SESSION_KEY": k, "LATCHKEY_SECRETS_KEY": "dG9vIHNob3J0"}), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil || !strings.Contains(err.Error(), "keys.secrets: must be 32 bytes") {
		t.Fatalf("short key: %v", err)
	}
}

func TestKeysGeneratedWithMode0600(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Data = filepath.Join(dir, "data")
	s1, k1, err := cfg.keys()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"session.key", "secrets.key"} {
		fi, err := os.Stat(filepath.Join(cfg.Data, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}
	s2, k2, _ := cfg.keys()
	if !bytes.Equal(s1, s2) || !bytes.Equal(k1, k2) || bytes.Equal(s1, k1) {
		t.Error("keys are not stable across starts, or the two keys are equal")
	}
}

func TestUserCreateAndAuditVerify(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	var out, errb bytes.Buffer
	err := run(ctx, []string{"user", "create", "--data", data, "--username", "Alice", "--email", "alice@example.com", "--role", "admin", "--password-stdin"},
		env(nil), strings.NewReader("a long enough passphrase\n"), &out, &errb)
	if err != nil {
		t.Fatalf("user create: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), `created admin user "alice"`) {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"user", "create", "--data", data, "--username", "carol", "--email", "carol@example.com", "--password-stdin"},
		env(nil), strings.NewReader("a long enough passphrase\n"), &out, &errb); err != nil {
		t.Fatalf("user create: %v\n%s", err, errb.String())
	}
	if !strings.HasPrefix(out.String(), `created user "carol" (id `) {
		t.Errorf("output for a user of role user: %q", out.String())
	}
	out.Reset()
	err = run(ctx, []string{"user", "create", "--data", data, "--username", "bob", "--email", "bob@example.com", "--password-stdin"},
		env(nil), strings.NewReader("password\n"), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "15 characters") {
		t.Errorf("weak password: %v", err)
	}
	err = run(ctx, []string{"user", "create", "--data", data}, env(nil), strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--username, --email, --password-stdin") {
		t.Errorf("missing flags: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "--data", data}, env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if !strings.Contains(out.String(), "intact: 2 entries") {
		t.Errorf("audit verify output %q", out.String())
	}
}

// TestWrongKeysRefused: a command started with a key that is not the database's (here the
// data folder's key file replaced, as a restored or mixed-up folder would have it) stops with
// a message naming the key and where it comes from, and writes nothing; with the right keys
// back it works.
func TestWrongKeysRefused(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	create := func(name string) error {
		var out, errb bytes.Buffer
		return run(ctx, []string{"user", "create", "--data", data, "--username", name, "--email", name + "@example.com", "--password-stdin"},
			env(nil), strings.NewReader("a long enough passphrase\n"), &out, &errb)
	}
	if err := create("alice"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ file, name, hint string }{
		{"session.key", "session key", "LATCHKEY_SESSION_KEY"},
		{"secrets.key", "secrets key", "LATCHKEY_SECRETS_KEY"},
	} {
		path := filepath.Join(data, k.file)
		right, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, 32)) + "\n"
		if err := os.WriteFile(path, []byte(other), 0o600); err != nil {
			t.Fatal(err)
		}
		err = create("bob")
		if err == nil || !strings.Contains(err.Error(), "The "+k.name+" is not the one this database is used with") || !strings.Contains(err.Error(), k.hint) {
			t.Errorf("with another %s: %v, want a refusal naming it and %s", k.file, err, k.hint)
		}
		if err := os.WriteFile(path, right, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// bob did not exist after the refused runs: he can be created now.
	if err := create("bob"); err != nil {
		t.Fatalf("with the right keys back: %v", err)
	}
}

// TestSecurityKeysWarningFromServeOnly: on the default public URL (http://127.0.0.1:PORT, an
// IP address, which WebAuthn refuses as the relying party ID) `serve` warns that security
// keys are off and says what to set; the command-line tools, which serve no page, do not
// print it; and with a public URL on localhost, serve does not either.
func TestSecurityKeysWarningFromServeOnly(t *testing.T) {
	const warning = "security keys are off"
	data := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"user", "create", "--data", data, "--username", "alice", "--email", "alice@example.com", "--password-stdin"},
		env(nil), strings.NewReader("a long enough passphrase\n"), &out, &errb); err != nil {
		t.Fatalf("user create: %v\n%s", err, errb.String())
	}
	if err := run(context.Background(), []string{"client", "create", "--data", data, "--name", "Wiki", "--redirect-uri", "https://wiki.example.com/cb"},
		env(nil), nil, &out, &errb); err != nil {
		t.Fatalf("client create: %v\n%s", err, errb.String())
	}
	if strings.Contains(errb.String(), warning) {
		t.Errorf("a command-line tool warned about security keys:\n%s", errb.String())
	}
	// serveLog runs serve with args until it listens and returns its log until then.
	serveLog := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, withConfig(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)...), env(nil), nil, io.Discard, pw)
			pw.Close()
		}()
		var log strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if listenRe.MatchString(sc.Text()) {
				break
			}
		}
		cancel()
		go io.Copy(io.Discard, pr) // the shutdown's lines
		if err := <-done; err != nil {
			t.Fatalf("serve %v: %v\n%s", args, err, log.String())
		}
		return log.String()
	}
	if log := serveLog(); !strings.Contains(log, warning) || !strings.Contains(log, "--public-url") {
		t.Errorf("serve on 127.0.0.1 did not warn that security keys are off:\n%s", log)
	}
	if log := serveLog("--public-url", "http://localhost:8080"); strings.Contains(log, warning) {
		t.Errorf("serve on localhost warned that security keys are off:\n%s", log)
	}
}

// TestConfigFileProblemsAllAtOnce: a bad duration does not stop the reading of the file;
// every problem of the file is reported, in the file's words (no Go type names).
func TestConfigFileProblemsAllAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("session:\n  max_age: forever\n  idle_timeout: 1x\npush:\n  numbr_length: 3\n  number_length: abc\nmfa_methods: totp\n"), 0o600)
	_, _, err := parse("serve", []string{"--config", file}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`line 2: "forever" is not a duration`, `line 3: "1x" is not a duration`, `line 5: unknown setting "numbr_length"`,
		`line 6: "abc" must be a whole number`, `line 7: "totp" must be a list`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "main.") || strings.Contains(err.Error(), "struct") {
		t.Errorf("error names Go types:\n%v", err)
	}
}

func TestListenAddress(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:99999", "127.0.0.1:-1", ":nope"} {
		_, _, err := parse("serve", []string{"--addr", addr}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
		if err == nil || !strings.Contains(err.Error(), "port") || exitCode(err) != 2 {
			t.Errorf("--addr %s: %v, want a usage error about the port", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8080", ":0", "[::1]:65535"} {
		if _, _, err := parse("serve", []string{"--addr", addr}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil); err != nil {
			t.Errorf("--addr %s: %v", addr, err)
		}
	}
	for addr, want := range map[string]string{
		"0.0.0.0:8080":   "http://localhost:8080",
		"[::]:8080":      "http://localhost:8080",
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"[::1]:8080":     "http://[::1]:8080",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultPublicURL(tcp); got != want {
			t.Errorf("defaultPublicURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestOneServePerDataFolder: a second serve on a SQLite data folder in use refuses to start
// and says why; the admin commands still work beside the running server.
func TestOneServePerDataFolder(t *testing.T) {
	s := startServer(t, "alice")
	var errb strings.Builder
	err := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--data", s.data}, env(nil), nil, io.Discard, &errb)
	if err == nil || !strings.Contains(err.Error(), "another latchkey serve is using the data folder") {
		t.Fatalf("second serve: %v\n%s", err, errb.String())
	}
	err = run(t.Context(), []string{"user", "create", "--data", s.data, "--username", "bob", "--email", "bob@example.com", "--password-stdin"},
		env(nil), strings.NewReader(alicePassword+"\n"), io.Discard, &errb)
	if err != nil {
		t.Errorf("user create beside the server: %v", err)
	}
}

func TestSMTPProblemQuotesTheURL(t *testing.T) {
	for in, want := range map[string]string{"smtp://": `"smtp://"`, "smtp://user:s3cret@": `"smtp://user:xxxxx@"`, "http://mail": `"http://mail"`} {
		_, _, err := parse("serve", []string{"--smtp", in}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
		if err == nil || !strings.Contains(err.Error(), "smtp "+want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("--smtp %s: %v, want it quoted as %s, no password", in, err, want)
		}
	}
}

// TestSetupLinkInJSONLogs: with log.format json every line on stderr is a JSON record, the
// first start's setup link among them as a field of its own, and the link works.
func TestSetupLinkInJSONLogs(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, env(map[string]string{"LATCHKEY_LOG_FORMAT": "json"}), nil, io.Discard, pw)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var setup, addr string
	sc := bufio.NewScanner(pr)
	for addr == "" && sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("a line on stderr is not JSON: %q", sc.Text())
		}
		if u, ok := rec["setup_url"].(string); ok {
			setup = u
		}
		if rec["msg"] == "latchkey listening" {
			addr, _ = rec["addr"].(string)
		}
	}
	go io.Copy(io.Discard, pr) // the rest of the log
	if setup == "" || addr == "" {
		t.Fatalf("setup link %q, address %q", setup, addr)
	}
	if !strings.HasPrefix(setup, "http://localhost:") && !strings.HasPrefix(setup, "http://127.0.0.1:") {
		t.Fatalf("setup link %q", setup)
	}
	u, _ := url.Parse(setup)
	res, err := http.Get("http://" + addr + u.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `name="password"`) {
		t.Errorf("GET the setup link: %d", res.StatusCode)
	}
}
