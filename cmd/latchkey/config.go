package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/internal/forwardauth"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/web"
)

// Config is the whole configuration of the server. Precedence, lowest first: the defaults
// below, the config file, LATCHKEY_* environment variables, command-line flags. Only this
// package reads it; each service receives a small Options struct.
type Config struct {
	Addr      string `yaml:"addr"`
	Data      string `yaml:"data"`
	Database  string `yaml:"database"`
	PublicURL string `yaml:"public_url"`
	SMTP      string `yaml:"smtp"`
	MailFrom  string `yaml:"mail_from"`
	// MailRetry is the wait after a failed mail delivery, doubling up to an hour.
	MailRetry Duration `yaml:"mail_retry"`
	// MFA is "optional" or "required".
	MFA string `yaml:"mfa"`
	// MFAMethods lists the second factors users may set up: totp, push, webauthn (all when
	// empty).
	MFAMethods []string `yaml:"mfa_methods"`
	// WebAuthn configures security keys.
	WebAuthn struct {
		RPID        string   `yaml:"rp_id"`       // default: the host of public_url
		Origins     []string `yaml:"origins"`     // default: public_url itself
		Attestation string   `yaml:"attestation"` // none (default), indirect, direct, enterprise
		Passkeys    bool     `yaml:"passkeys"`    // offer sign-in with a passkey, no username
	} `yaml:"webauthn"`
	Issuer string `yaml:"issuer"`
	Keys   struct {
		// Session and Secrets are base64-encoded 32-byte keys. With SQLite they are generated
		// into the data folder when unset; with PostgreSQL they must be configured, since all
		// nodes must share them.
		Session     string `yaml:"session"`
		SessionFile string `yaml:"session_file"`
		Secrets     string `yaml:"secrets"`
		SecretsFile string `yaml:"secrets_file"`
	} `yaml:"keys"`
	Session struct {
		MaxAge      Duration `yaml:"max_age"`
		IdleTimeout Duration `yaml:"idle_timeout"`
		Reauth      Duration `yaml:"reauthenticate_after"`
		// WorkdayEnd ("19:00") ends a second-factor proof in the user's time zone; "" turns
		// the workday rule off (max_age only). TimeZone is the zone of users without one.
		WorkdayEnd string `yaml:"workday_end"`
		TimeZone   string `yaml:"time_zone"`
		// CookieDomain gives the session cookie Domain= so that forward-auth works across
		// subdomains; empty (default) keeps it host-only with the __Host- prefix.
		CookieDomain string `yaml:"cookie_domain"`
	} `yaml:"session"`
	// Push configures push approval with the Latch app.
	Push struct {
		NumberLength int      `yaml:"number_length"` // digits to type, 2–6
		ChallengeTTL Duration `yaml:"expiry"`        // how long a request may be answered
		FraudPause   Duration `yaml:"fraud_pause"`   // pause after "this wasn't me"
		MaxPushes    int      `yaml:"max_pushes"`    // pushes since the last sign-in
		// MaxConnections is how many device event streams and long polls one node holds at
		// once; 0 (the default) derives it from the process's descriptor limit.
		MaxConnections int `yaml:"max_connections"`
	} `yaml:"push"`
	// ForwardAuth are the rules of the forward-auth gate (GET /auth/forward): the first rule
	// that matches the host and path (and the user's group) decides; Default otherwise.
	ForwardAuth struct {
		Default string             `yaml:"default"` // bypass, password, mfa (default) or deny
		Rules   []forwardauth.Rule `yaml:"rules"`
	} `yaml:"forward_auth"`
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes) whose
	// X-Forwarded-For header gives the client's address; empty: the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Support configures the support desk: request types, identity checks, limits.
	Support SupportConfig `yaml:"support"`

	Log struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // text or json
	} `yaml:"log"`

	// configFile is where the file part came from, for messages.
	configFile string
}

// Duration is a time.Duration written as "12h" or "90m" in the config file.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. A bad one is a *yaml.TypeError, with which the
// decoder goes on and reports it with the file's other problems, all at once.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 90m or 12h", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

func defaultConfig() Config {
	var c Config
	c.Addr = "127.0.0.1:8080"
	c.Data = "./latchkey-data"
	c.MailFrom = "Latchkey <latchkey@localhost>"
	c.MailRetry = Duration(30 * time.Second)
	c.MFA = "optional"
	c.Issuer = "Latchkey"
	c.Session.MaxAge = Duration(12 * time.Hour)
	c.Session.IdleTimeout = Duration(time.Hour)
	c.Session.Reauth = Duration(10 * time.Minute)
	c.Session.WorkdayEnd = "19:00"
	c.Session.TimeZone = "UTC"
	c.Push.NumberLength = 2
	c.ForwardAuth.Default = string(forwardauth.MFA)
	c.Push.ChallengeTTL = Duration(2 * time.Minute)
	c.Push.FraudPause = Duration(time.Hour)
	c.Push.MaxPushes = 5
	c.Log.Level = "info"
	c.Log.Format = "text"
	return c
}

// flagSpec is a flag shared by the server and the admin subcommands.
type flagSpec struct {
	name, usage string
	field       func(*Config) *string
}

var commonFlags = []flagSpec{
	{"data", "data folder for SQLite, keys and the mail outbox", func(c *Config) *string { return &c.Data }},
	{"database", "database URL: empty for SQLite in the data folder, or postgres://...", func(c *Config) *string { return &c.Database }},
	{"config", "configuration file (YAML)", func(c *Config) *string { return &c.configFile }},
}

var serveFlags = []flagSpec{
	{"addr", "listen address", func(c *Config) *string { return &c.Addr }},
	{"public-url", "URL users and applications reach the server at (default http:// + addr)", func(c *Config) *string { return &c.PublicURL }},
	{"smtp", "SMTP URL (smtp://user:pass@host:port or smtps://...); empty writes mail to DATA/outbox", func(c *Config) *string { return &c.SMTP }},
}

// yamlFieldRe and yamlTypeRe match the decoder's messages that name Go types.
var (
	yamlFieldRe = regexp.MustCompile(`^(line \d+): field (\S+) not found in type .*$`)
	yamlTypeRe  = regexp.MustCompile(`^(line \d+): cannot unmarshal !!(\w+) ` + "`" + `(.*)` + "`" + ` into (.*)$`)
)

// yamlProblem says a decoder's problem in the words of the config file, not of the Go types
// behind it: "line 3: unknown setting "numbr_length"", "line 4: "abc" is not a number".
func yamlProblem(e string) string {
	if m := yamlFieldRe.FindStringSubmatch(e); m != nil {
		return fmt.Sprintf("%s: unknown setting %q", m[1], m[2])
	}
	if m := yamlTypeRe.FindStringSubmatch(e); m != nil {
		want := "a value of another kind"
		switch t := m[4]; {
		case t == "int" || strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
			want = "a whole number"
		case t == "bool":
			want = "true or false"
		case t == "string":
			want = "a text value"
		case strings.HasPrefix(t, "[]"):
			want = "a list"
		case strings.HasPrefix(t, "struct") || strings.HasPrefix(t, "main.") || strings.HasPrefix(t, "map"):
			want = "a section of settings"
		}
		return fmt.Sprintf("%s: %q must be %s", m[1], m[3], want)
	}
	return e
}

// serveFlag returns serve's flag of that name, for a command that takes it too.
func serveFlag(name string) flagSpec {
	for _, f := range serveFlags {
		if f.name == name {
			return f
		}
	}
	panic("no serve flag " + name)
}

// envName is the environment variable of a flag: --public-url → LATCHKEY_PUBLIC_URL.
func envName(flag string) string {
	return "LATCHKEY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// loadConfig builds the configuration from the defaults, the file, the environment and the
// flags already parsed into fs. It returns every problem at once.
func loadConfig(fs *flag.FlagSet, specs []flagSpec, flagVals map[string]*string, getenv func(string) string) (*Config, error) {
	c := defaultConfig()
	var problems []string

	// Which file? A flag beats the environment.
	file := getenv("LATCHKEY_CONFIG")
	if v, ok := flagVals["config"]; ok && isSet(fs, "config") {
		file = *v
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("config file: %v", err))
		} else {
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			var te *yaml.TypeError
			if err := dec.Decode(&c); errors.As(err, &te) {
				for _, e := range te.Errors {
					problems = append(problems, fmt.Sprintf("config file %s: %s", file, yamlProblem(e)))
				}
			} else if err != nil && !errors.Is(err, io.EOF) {
				problems = append(problems, fmt.Sprintf("config file %s: %v", file, err))
			}
		}
		c.configFile = file
	}

	// Environment, then flags.
	for _, s := range specs {
		if s.name == "config" {
			continue
		}
		if v := getenv(envName(s.name)); v != "" {
			*s.field(&c) = v
		}
		if v, err := readFileVar(getenv, envName(s.name)+"_FILE"); err != nil {
			problems = append(problems, err.Error())
		} else if v != "" {
			*s.field(&c) = v
		}
		if isSet(fs, s.name) {
			*s.field(&c) = *flagVals[s.name]
		}
	}
	for env, dst := range map[string]*string{
		"LATCHKEY_MFA": &c.MFA, "LATCHKEY_MAIL_FROM": &c.MailFrom, "LATCHKEY_ISSUER": &c.Issuer,
		"LATCHKEY_LOG_LEVEL": &c.Log.Level, "LATCHKEY_LOG_FORMAT": &c.Log.Format,
		"LATCHKEY_SESSION_KEY": &c.Keys.Session, "LATCHKEY_SECRETS_KEY": &c.Keys.Secrets,
		"LATCHKEY_SESSION_KEY_FILE": &c.Keys.SessionFile, "LATCHKEY_SECRETS_KEY_FILE": &c.Keys.SecretsFile,
	} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	problems = append(problems, c.validate()...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return &c, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func readFileVar(getenv func(string) string, name string) (string, error) {
	p := getenv(name)
	if p == "" {
		return "", nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("%s: %v", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// postgres reports whether the database is PostgreSQL.
func (c *Config) postgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// validate returns every problem of the configuration.
func (c *Config) validate() []string {
	var p []string
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		p = append(p, fmt.Sprintf("addr %q must be host:port, like 127.0.0.1:8080", c.Addr))
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		p = append(p, fmt.Sprintf("addr %q: the port must be a number from 0 to 65535", c.Addr))
	}
	if c.Data == "" {
		p = append(p, "data must name a folder")
	}
	if c.Database != "" && !c.postgres() {
		p = append(p, fmt.Sprintf("database must be empty (SQLite in the data folder) or a postgres:// URL, not %q", redact(c.Database)))
	} else if c.postgres() {
		if _, err := url.Parse(c.Database); err != nil {
			p = append(p, "database is not a valid URL")
		}
		if c.Keys.Session == "" && c.Keys.SessionFile == "" {
			p = append(p, "with PostgreSQL, keys.session (or LATCHKEY_SESSION_KEY / LATCHKEY_SESSION_KEY_FILE) must be set, so that every node shares it")
		}
		if c.Keys.Secrets == "" && c.Keys.SecretsFile == "" {
			p = append(p, "with PostgreSQL, keys.secrets (or LATCHKEY_SECRETS_KEY / LATCHKEY_SECRETS_KEY_FILE) must be set, so that every node shares it")
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			p = append(p, fmt.Sprintf("public-url %q must be an http:// or https:// URL with a host and no path", c.PublicURL))
		}
	}
	if c.SMTP != "" {
		u, err := url.Parse(c.SMTP)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			p = append(p, fmt.Sprintf("smtp %q must be smtp://host:port or smtps://host:port", redact(c.SMTP)))
		}
	}
	if c.MFA != "optional" && c.MFA != "required" {
		p = append(p, fmt.Sprintf("mfa must be optional or required, not %q", c.MFA))
	}
	for _, m := range c.MFAMethods {
		if m != "totp" && m != "push" && m != "webauthn" {
			p = append(p, fmt.Sprintf("mfa_methods may list totp, push and webauthn, not %q", m))
		}
	}
	if !login.ValidAttestation(c.WebAuthn.Attestation) {
		p = append(p, fmt.Sprintf("webauthn.attestation must be none, indirect, direct or enterprise, not %q", c.WebAuthn.Attestation))
	}
	for _, o := range c.WebAuthn.Origins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p = append(p, fmt.Sprintf("webauthn.origins: %q is not an origin like https://login.example.com", o))
		}
	}
	for name, k := range map[string]string{"keys.session": c.Keys.Session, "keys.secrets": c.Keys.Secrets} {
		if k != "" {
			if _, err := decodeKey(k); err != nil {
				p = append(p, fmt.Sprintf("%s: %v", name, err))
			}
		}
	}
	if c.Push.NumberLength < 2 || c.Push.NumberLength > 6 {
		p = append(p, fmt.Sprintf("push.number_length must be 2 to 6, not %d", c.Push.NumberLength))
	}
	if c.Push.ChallengeTTL <= 0 || c.Push.ChallengeTTL > Duration(10*time.Minute) || c.Push.FraudPause <= 0 || c.Push.MaxPushes <= 0 {
		p = append(p, "push.expiry must be positive and at most 10m; push.fraud_pause and push.max_pushes must be positive")
	}
	if c.Push.MaxConnections < 0 {
		p = append(p, fmt.Sprintf("push.max_connections must be 0 (derived from the descriptor limit) or positive, not %d", c.Push.MaxConnections))
	}
	if c.MailRetry <= 0 || c.MailRetry > Duration(time.Hour) {
		p = append(p, fmt.Sprintf("mail_retry must be positive and at most 1h, not %v", time.Duration(c.MailRetry)))
	}
	if c.Session.MaxAge <= 0 || c.Session.IdleTimeout <= 0 || c.Session.Reauth <= 0 {
		p = append(p, "session durations must be positive")
	}
	p = append(p, c.validateSupport()...)
	if _, err := login.ParseWorkday(c.Session.WorkdayEnd); err != nil {
		p = append(p, fmt.Sprintf("session.workday_end %q must be a local time like 19:00, or empty for no workday rule", c.Session.WorkdayEnd))
	}
	if !login.ValidTimeZone(c.Session.TimeZone) {
		p = append(p, fmt.Sprintf("session.time_zone %q is not an IANA time zone such as Europe/Madrid", c.Session.TimeZone))
	}
	if _, err := c.forwardAuthRules(); err != nil {
		p = append(p, err.Error())
	}
	if msg := c.cookieDomainProblem(); msg != "" {
		p = append(p, msg)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p = append(p, fmt.Sprintf("log.level must be debug, info, warn or error, not %q", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p = append(p, fmt.Sprintf("log.format must be text or json, not %q", c.Log.Format))
	}
	if _, err := web.ParseTrustedProxies(c.TrustedProxies); err != nil {
		p = append(p, "trusted_proxies: "+err.Error())
	}
	return p
}

// forwardAuthRules compiles the forward-auth gate's rules.
func (c *Config) forwardAuthRules() (*forwardauth.Rules, error) {
	return forwardauth.Compile(c.ForwardAuth.Rules, forwardauth.Policy(c.ForwardAuth.Default))
}

// redact hides the password of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); !has {
		return raw // nothing to hide; u.String() would rewrite it ("smtp://" reads "smtp:")
	}
	return u.Redacted()
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("must be base64")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("must be 32 bytes, not %d", len(b))
	}
	return b, nil
}

// keys returns the session and secrets keys: from configuration when set, else (SQLite only)
// from files in the data folder, generated with mode 0600 on first start.
func (c *Config) keys() (session, secrets []byte, err error) {
	load := func(name, inline, file string) ([]byte, error) {
		if inline != "" {
			return decodeKey(inline)
		}
		if file == "" {
			if c.postgres() {
				return nil, fmt.Errorf("keys.%s is not configured", name)
			}
			file = filepath.Join(c.Data, name+".key")
			if err := ensureKeyFile(file); err != nil {
				return nil, err
			}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s key: %w", name, err)
		}
		k, err := decodeKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	if session, err = load("session", c.Keys.Session, c.Keys.SessionFile); err != nil {
		return nil, nil, err
	}
	if secrets, err = load("secrets", c.Keys.Secrets, c.Keys.SecretsFile); err != nil {
		return nil, nil, err
	}
	return session, secrets, nil
}

// ensureKeyFile writes a new random key to path unless it exists. O_EXCL makes two processes
// starting at once agree on one key.
func ensureKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	return f.Close()
}
