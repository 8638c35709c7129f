// Command latchkey is the Latchkey server and its admin commands:
//
//	latchkey serve [--addr A] [--data DIR] [--database URL] [--public-url URL] [--smtp URL] [--config FILE]
//	latchkey user create --username U --email E [--role admin|support|user] --password-stdin
//	latchkey audit verify
//	latchkey client create --id ID --redirect-uri URI [--name N] [--public] [--first-party] [--require-mfa]
//	latchkey oidc rotate-key
//
// serve's flags (and --data, --database for every command) also read from LATCHKEY_<FLAG>;
// see README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/pgnotify"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/sqlstore"
	"github.com/latchkey/latchkey/internal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "latchkey:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit status for run's error: 0 for a command's -h (flag.ErrHelp,
// its flags printed), as Go's flag.ExitOnError does.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

const usage = `usage:
  latchkey serve [flags]          run the server
  latchkey user create [flags]    create a user
  latchkey audit verify [flags]   check the audit trail's hash chain
  latchkey client create [flags]  register an OpenID Connect client
  latchkey oidc rotate-key        make a new ID-token signing key current
Run "latchkey <command> -h" for the flags of a command.`

// run is the whole program; main only supplies the process's environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &exitError{code: 2, err: errors.New("no command given")}
	}
	cmd := strings.Join(args[:min(2, len(args))], " ")
	if n := commandWords(cmd); n > 0 && len(args) > n && isHelp(args[n]) {
		// "latchkey serve -h", "latchkey user create help": the command's flags, on stdout
		// (asked for, not an error), and nothing else.
		args = append(slices.Clip(args[:n]), "-h")
		stderr = stdout
	}
	switch {
	case args[0] == "serve":
		return runServe(ctx, args[1:], getenv, stderr)
	case cmd == "user create":
		return runUserCreate(ctx, args[2:], getenv, stdin, stdout, stderr)
	case cmd == "audit verify":
		return runAuditVerify(ctx, args[2:], getenv, stdout, stderr)
	case cmd == "client create":
		return runClientCreate(ctx, args[2:], getenv, stdout, stderr)
	case cmd == "oidc rotate-key":
		return runOIDCRotateKey(ctx, args[2:], getenv, stdout, stderr)
	case isHelp(args[0]) || (len(args) == 2 && isHelp(args[1]) && isGroup(args[0])):
		// "latchkey -h", and "latchkey user -h": a command group asked for help lists its
		// commands (each command's own -h lists its flags).
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", strings.Join(args, " "))}
	}
}

// isHelp says whether arg asks for the usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// defaultPublicURL is http:// and the listen address, with localhost for an address that
// means every interface (0.0.0.0, ::), which is no address a browser can reach.
func defaultPublicURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + addr.String()
	}
	return "http://" + net.JoinHostPort("localhost", strconv.Itoa(tcp.Port))
}

// commandWords is the number of words of the command cmd starts with (serve: 1, user
// create: 2), 0 for none.
func commandWords(cmd string) int {
	switch {
	case cmd == "serve" || strings.HasPrefix(cmd, "serve "):
		return 1
	case cmd == "user create", cmd == "audit verify", cmd == "client create", cmd == "oidc rotate-key":
		return 2
	}
	return 0
}

// isGroup says whether name is the first word of a two-word command (user create, ...).
func isGroup(name string) bool {
	return name == "user" || name == "audit" || name == "client" || name == "oidc"
}

// parse parses flags and loads the configuration. extra registers command-specific flags.
func parse(name string, args []string, getenv func(string) string, stderr io.Writer, specs []flagSpec, extra func(*flag.FlagSet)) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := map[string]*string{}
	for _, s := range specs {
		vals[s.name] = fs.String(s.name, "", s.usage+" ($"+envName(s.name)+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadConfig(fs, specs, vals, getenv)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return cfg, fs, nil
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is the wired-up core shared by every command.
type app struct {
	cfg    *Config
	log    *slog.Logger
	db     *sqlstore.DB
	login  *login.Service
	push   *push.Service
	hub    *push.Hub       // device waits; serve limits them (connectionLimits)
	mail   *mail.Queue     // every notification goes through the persisted outbox
	relay  *pgnotify.Relay // PostgreSQL only: push wake-ups between nodes
	public *url.URL
	audit  *audit.Recorder
	// auditEvents counts the audit entries this process committed (serve exports it).
	auditEvents *prometheus.CounterVec
}

func (a *app) Close() error { return a.db.Close() }

// openExisting is open for audit verify, which reads a deployment: a SQLite data folder
// without a database is an error, not a new empty deployment (a mistyped --data reported an
// intact, empty audit trail). The commands that set a deployment up (user create, client
// create, oidc rotate-key) may start a data folder, before the first serve.
func openExisting(ctx context.Context, cfg *Config, log *slog.Logger) (*app, error) {
	if !cfg.postgres() {
		db := filepath.Join(cfg.Data, "latchkey.db")
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			return nil, &exitError{code: 2, err: fmt.Errorf("no Latchkey database in %s: check --data (or LATCHKEY_DATA), or run latchkey serve there first", cfg.Data)}
		}
	}
	return open(ctx, cfg, log)
}

func open(ctx context.Context, cfg *Config, log *slog.Logger) (*app, error) {
	if !cfg.postgres() {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("create data folder: %w", err)
		}
	}
	sessionKey, secretsKey, err := cfg.keys()
	if err != nil {
		return nil, err
	}
	dsn := cfg.Database
	if dsn == "" {
		dsn = filepath.Join(cfg.Data, "latchkey.db")
	}
	auditEvents := newAuditEventsMetric()
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{SecretsKey: secretsKey, Committed: func(e *latchkey.AuditEvent) {
		auditEvents.WithLabelValues(e.Action, e.Outcome).Inc()
	}})
	if latchkey.ErrorCode(err) == latchkey.EConflict {
		return nil, errors.New(latchkey.ErrorMessage(err)) // a key that is not the database's
	} else if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// The session key too: a node with another one would not find the sessions the others
	// made, and sign people out on some nodes only.
	if err := db.CheckKey(ctx, "session", sqlstore.KeyCheck(sessionKey, "session"), "LATCHKEY_SESSION_KEY, or session.key in the data folder"); err != nil {
		db.Close()
		if latchkey.ErrorCode(err) == latchkey.EConflict {
			return nil, errors.New(latchkey.ErrorMessage(err))
		}
		return nil, fmt.Errorf("open database: %w", err)
	}
	public := publicURL(cfg)
	transport, err := mail.New(mail.Options{SMTPURL: cfg.SMTP, OutboxDir: filepath.Join(cfg.Data, "outbox"), From: cfg.MailFrom, Logger: log})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mail: %w", err)
	}
	sender := mail.NewQueue(mail.QueueOptions{Store: db, Transport: transport, Logger: log, MinBackoff: time.Duration(cfg.MailRetry)})
	rec := audit.New(db, log, nil)
	// On PostgreSQL several nodes may share the database: LISTEN/NOTIFY carries push wake-ups
	// between them (runServe runs the relay).
	var relay *pgnotify.Relay
	hub := push.NewHub()
	if cfg.postgres() {
		if relay, err = pgnotify.New(pgnotify.Options{DSN: cfg.Database, Logger: log, OnLost: db.ServerLost}); err != nil {
			db.Close()
			return nil, err
		}
		hub = push.NewHub(relay)
	}
	pusher := push.New(push.Options{
		Store:        db,
		Mailer:       sender,
		Audit:        rec,
		Hub:          hub,
		Logger:       log,
		Key:          sessionKey,
		PublicURL:    strings.TrimSuffix(public.String(), "/"),
		Issuer:       cfg.Issuer,
		NumberLength: cfg.Push.NumberLength,
		ChallengeTTL: time.Duration(cfg.Push.ChallengeTTL),
		FraudPause:   time.Duration(cfg.Push.FraudPause),
		MaxPushes:    cfg.Push.MaxPushes,
	})
	workday, _ := login.ParseWorkday(cfg.Session.WorkdayEnd) // validated with the configuration
	zone, err := time.LoadLocation(cfg.Session.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("session.time_zone: %w", err)
	}
	svc := login.New(login.Options{
		Store:        db,
		Hasher:       password.New(password.Options{}),
		Mailer:       sender,
		Audit:        rec,
		Pusher:       pusher,
		Logger:       log,
		SessionKey:   sessionKey,
		MFA:          cfg.MFA,
		Issuer:       cfg.Issuer,
		PublicURL:    strings.TrimSuffix(public.String(), "/"),
		MaxAge:       time.Duration(cfg.Session.MaxAge),
		IdleTimeout:  time.Duration(cfg.Session.IdleTimeout),
		ReauthWindow: time.Duration(cfg.Session.Reauth),
		WorkdayEnd:   workday,
		TimeZone:     zone,
		Methods:      cfg.MFAMethods,
		WebAuthn: login.WebAuthnOptions{
			RPID: cfg.WebAuthn.RPID, Origins: cfg.WebAuthn.Origins,
			Attestation: cfg.WebAuthn.Attestation, Passkeys: cfg.WebAuthn.Passkeys,
		},
	})
	return &app{cfg: cfg, log: log, db: db, login: svc, push: pusher, hub: hub, mail: sender, relay: relay, public: public, audit: rec, auditEvents: auditEvents}, nil
}

func publicURL(cfg *Config) *url.URL {
	if cfg.PublicURL != "" {
		u, _ := url.Parse(cfg.PublicURL) // validated
		u.Path = ""
		return u
	}
	return &url.URL{Scheme: "http", Host: cfg.Addr}
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, _, err := parse("serve", args, getenv, stderr, append(commonFlags, serveFlags...), nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if !cfg.postgres() {
		unlock, err := lockData(cfg.Data)
		if err != nil {
			return err
		}
		defer unlock()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// With --addr :0 the port is known only now; the default public URL follows it, so
	// that links in mails and activation codes carry the real address.
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(ln.Addr())
		if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
			log.Warn("listening on every interface: links in mails and activation codes say localhost; set --public-url to the address people reach the server at", "public_url", cfg.PublicURL)
		}
	}
	conns, waits, idleHigh := connectionLimits(descriptorLimit(), cfg.Push.MaxConnections)
	if conns > 0 {
		// Past the limit a connection waits in the kernel's backlog instead of the server
		// failing every accept and every file it opens.
		ln = netutil.LimitListener(ln, conns)
	}
	a, err := open(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	a.hub.LimitWaits(waits)
	if err := a.login.WebAuthnOff(); err != nil {
		log.Warn("security keys are off: the relying party ID must be a domain name; set --public-url to http://localhost:PORT or the server's DNS name", "public_url", cfg.PublicURL, "err", err)
	}
	if cfg.SMTP == "" {
		// The outbox folder, now: a server that cannot write its mail says so at its start.
		if err := os.MkdirAll(filepath.Join(cfg.Data, "outbox"), 0o700); err != nil {
			ln.Close()
			return fmt.Errorf("mail: create outbox: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	// go_gc_heap_live_bytes (runtime/metrics' /gc/heap/live:bytes) beside the default
	// go_memstats_*: the heap the last collection found live, which garbage not yet swept and
	// a sync.Pool's dropped objects do not inflate (the soak test's measure of growth).
	goc := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
	reg.MustRegister(goc, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerMailMetrics(reg, a.mail)
	registerWriterMetrics(reg, a.db)
	reg.MustRegister(a.auditEvents)
	provider, err := newOIDC(a)
	if err != nil {
		ln.Close()
		return err
	}
	gateRules, err := cfg.forwardAuthRules()
	if err != nil {
		return err
	}
	desk, err := newSupport(a)
	if err != nil {
		ln.Close()
		return err
	}
	proxies, _ := web.ParseTrustedProxies(cfg.TrustedProxies) // checked with the configuration
	handler := web.New(web.Options{Login: a.login, Push: a.push, DB: a.db, Logger: log, PublicURL: a.public, Registry: reg, OIDC: provider, ForwardAuth: gateRules, TrustedProxies: proxies, CookieDomain: cfg.cookieDomain(),
		Admin: web.AdminOptions{Store: a.db, ConfigSource: adminConfigSource(cfg), Tickets: desk}, Support: desk})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if conns > 0 {
		// Past half the connections that device waits leave, idle keep-alive connections
		// make room for new ones (idle.go).
		srv.ConnState = newIdleReaper(idleHigh).ConnState
	}
	// Device event streams and long polls end at once when shutdown begins.
	srv.RegisterOnShutdown(handler.Shutdown)

	tok, err := a.login.SetupToken(ctx)
	if err != nil {
		ln.Close()
		return fmt.Errorf("setup token: %w", err)
	}
	if tok != "" {
		link := strings.TrimSuffix(a.public.String(), "/") + "/setup?token=" + tok
		if cfg.Log.Format == "json" {
			// A JSON stream stays JSON, so that a collector parses the line instead of keeping
			// it as stray text: the link is a field of its own. It is as secret as ever, and
			// dies with the first administrator or the next start.
			log.Warn("no administrator exists yet: open the one-time setup link to create one", "setup_url", link)
		} else {
			// Printed for the person at the console, not as a log line.
			fmt.Fprintf(stderr, "\nNo administrator exists yet. Open this one-time link to create one:\n\n    %s\n\n", link)
		}
	}
	log.Info("latchkey listening", "addr", ln.Addr().String(), "public_url", a.public.String(), "database", dbKind(cfg), "max_connections", conns, "max_device_connections", waits)

	go a.cleanup(ctx)
	go a.fillUsernameKeys(ctx)
	defer a.runMailQueue(ctx)()
	if a.relay != nil {
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.relay.Run(rctx, a.push.Hub()) }()
		defer func() { stop(); <-done }()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	provider.WaitLogouts() // back-channel logouts in flight (each bounded by a short timeout)
	return nil
}

func dbKind(cfg *Config) string {
	if cfg.postgres() {
		return "postgres"
	}
	return "sqlite"
}

// cleanup deletes expired sessions, push challenges, codes and nonces every ten minutes.
// fillUsernameKeys gives the users made before look-alike keys existed theirs, once, in the
// background (sqlstore.FillUsernameKeys); a failure leaves the rest for the next start.
func (a *app) fillUsernameKeys(ctx context.Context) {
	filled, clashes, err := a.db.FillUsernameKeys(ctx, login.UsernameKey)
	if err != nil && ctx.Err() == nil {
		a.log.Error("fill username look-alike keys; the next start goes on", "filled", filled, "err", err)
		return
	}
	if filled > 0 || clashes > 0 {
		a.log.Info("filled username look-alike keys", "filled", filled, "look_alikes", clashes)
	}
}

func (a *app) cleanup(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := a.db.DeleteExpiredSessions(ctx, time.Now()); err != nil {
				a.log.Error("delete expired sessions", "err", err)
			} else if n > 0 {
				a.log.Info("deleted expired sessions", "count", n)
			}
			// Challenges and codes are kept a day past expiry, for the Security page and audit.
			if n, err := a.db.DeleteExpiredPushData(ctx, time.Now().Add(-24*time.Hour)); err != nil {
				a.log.Error("delete expired push data", "err", err)
			} else if n > 0 {
				a.log.Info("deleted expired push challenges and codes", "count", n)
			}
			// A new device whose approval request expired can never be approved (requests
			// last at most 10 minutes): it goes after an hour.
			if n, err := a.db.DeleteAbandonedDevices(ctx, time.Now().Add(-time.Hour)); err != nil {
				a.log.Error("delete abandoned pending devices", "err", err)
			} else if n > 0 {
				a.log.Info("deleted new devices whose approval expired", "count", n)
			}
			if _, err := a.db.DeleteExpiredWebAuthnCeremonies(ctx, time.Now()); err != nil {
				a.log.Error("delete expired webauthn ceremonies", "err", err)
			}
			if _, err := a.db.DeleteExpiredOIDCData(ctx, time.Now()); err != nil {
				a.log.Error("delete expired oidc data", "err", err)
			}
			if _, err := a.db.DeleteOldMail(ctx, time.Now().Add(-mailRetention)); err != nil {
				a.log.Error("delete old mail records", "err", err)
			}
		}
	}
}

func runUserCreate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var username, email, role string
	var pwStdin bool
	cfg, _, err := parse("user create", args, getenv, stderr, commonFlags, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "username (required)")
		fs.StringVar(&email, "email", "", "email address (required)")
		fs.StringVar(&role, "role", "user", "admin, support or user")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input (required)")
	})
	if err != nil {
		return err
	}
	var missing []string
	if username == "" {
		missing = append(missing, "--username")
	}
	if email == "" {
		missing = append(missing, "--email")
	}
	if !pwStdin {
		missing = append(missing, "--password-stdin")
	}
	if len(missing) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("user create needs %s", strings.Join(missing, ", "))}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	a, err := open(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.login.CreateUser(ctx, login.Client{UserAgent: "latchkey user create"}, login.NewUser{Username: username, Email: email, Role: latchkeyRole(role), Password: pw})
	if err != nil {
		return errorText(err)
	}
	// "created user", "created admin user", "created support user": not "created user user".
	kind := "user"
	if u.Role != latchkey.RoleUser {
		kind = string(u.Role) + " user"
	}
	fmt.Fprintf(stdout, "created %s %q (id %d)\n", kind, u.Username, u.ID)
	return nil
}

func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parse("audit verify", args, getenv, stderr, commonFlags, nil)
	if err != nil {
		return err
	}
	a, err := openExisting(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	rep, err := audit.Verify(ctx, a.db)
	if err != nil {
		return err
	}
	return reportAudit(stdout, rep)
}

// reportAudit prints the result of `audit verify`, and returns the exit error of a broken
// chain.
func reportAudit(stdout io.Writer, rep audit.Report) error {
	if rep.FirstBroken != 0 {
		fmt.Fprintf(stdout, "audit trail BROKEN at entry %d: %s (%s checked)\n", rep.FirstBroken, rep.Reason, entries(rep.Entries))
		return &exitError{code: 1, err: fmt.Errorf("audit chain broken at entry %d", rep.FirstBroken)}
	}
	if rep.Pending > 0 {
		// PostgreSQL: entries committed while Verify ran wait for the chainer; the next run
		// checks them.
		fmt.Fprintf(stdout, "audit trail intact: %s (%d more committed meanwhile, not yet chained)\n", entries(rep.Entries), rep.Pending)
		return nil
	}
	fmt.Fprintf(stdout, "audit trail intact: %s\n", entries(rep.Entries))
	return nil
}

// entries is n with its noun: "1 entry", "7 entries".
func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
