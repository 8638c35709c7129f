package mail_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	lkmail "github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/wneessen/go-mail/smtp"
)

var (
	now  = time.Date(2026, 11, 22, 10, 15, 0, 0, time.UTC)
	data = lkmail.Data{
		Username:          "alice",
		Time:              now,
		IP:                "192.0.2.7",
		UserAgent:         "Firefox/140.0",
		PublicURL:         "https://login.example.com",
		RecoveryCodesLeft: 7,
	}
)

const securityURL = "https://login.example.com/settings/security"

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSMTP(t *testing.T) {
	tests := []struct {
		name     string
		opt      mailtest.Options
		wantMech string
		wantTLS  bool
	}{
		{name: "no auth", opt: mailtest.Options{}},
		{name: "PLAIN", opt: mailtest.Options{User: "mailer", Password: "s3cret", Mechanisms: []string{"PLAIN"}}, wantMech: "PLAIN"},
		{name: "LOGIN", opt: mailtest.Options{User: "mailer", Password: "s3cret", Mechanisms: []string{"LOGIN"}}, wantMech: "LOGIN"},
		{name: "PLAIN preferred", opt: mailtest.Options{User: "mailer", Password: "p@ss:w/rd%"}, wantMech: "PLAIN"},
		{name: "STARTTLS offered", opt: mailtest.Options{StartTLS: true, User: "mailer", Password: "s3cret"}, wantMech: "PLAIN", wantTLS: true},
		{name: "implicit TLS", opt: mailtest.Options{ImplicitTLS: true, User: "mailer", Password: "s3cret"}, wantMech: "PLAIN", wantTLS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.StartServerWith(t, tt.opt)
			var logs bytes.Buffer
			s, err := lkmail.New(lkmail.Options{
				SMTPURL: srv.URL(),
				From:    "Latchkey <no-reply@example.com>",
				Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
				Now:     func() time.Time { return now },
			})
			if err != nil {
				t.Fatalf("New(%q): %v", srv.URL(), err)
			}
			m, err := lkmail.TOTPEnabled("alice@example.com", data)
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t)
			if err := s.Send(ctx, m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, err := srv.WaitFor(ctx, "alice@example.com", "Two-factor authentication was enabled")
			if err != nil {
				t.Fatal(err)
			}
			if got.From != "no-reply@example.com" || got.To != "alice@example.com" {
				t.Errorf("envelope from %q to %q, want no-reply@example.com to alice@example.com", got.From, got.To)
			}
			if got.User != tt.opt.User || got.Mechanism != tt.wantMech || got.TLS != tt.wantTLS {
				t.Errorf("user %q mechanism %q TLS %v, want %q %q %v", got.User, got.Mechanism, got.TLS, tt.opt.User, tt.wantMech, tt.wantTLS)
			}
			checkHeaders(t, got.Header)
			if !strings.Contains(got.Text, "turned on") || !strings.Contains(got.Text, securityURL) {
				t.Errorf("text part: %q", got.Text)
			}
			if !strings.Contains(got.HTML, "turned on") || !strings.Contains(got.HTML, `href="`+securityURL+`"`) {
				t.Errorf("HTML part: %q", got.HTML)
			}
			if tt.opt.Password != "" && strings.Contains(logs.String(), tt.opt.Password) {
				t.Errorf("the log contains the SMTP password: %s", logs.String())
			}
			if strings.Contains(logs.String(), "settings/security") {
				t.Errorf("the log contains the body: %s", logs.String())
			}
		})
	}
}

// checkHeaders checks the headers every message must carry.
func checkHeaders(t *testing.T, h mail.Header) {
	t.Helper()
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "no-reply@example.com" || from[0].Name != "Latchkey" {
		t.Errorf("From: %q", h.Get("From"))
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Errorf("To: %q", h.Get("To"))
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date: %q (%v), want %v", h.Get("Date"), err, now)
	}
	// Random, at the sender's domain: not the machine's host name.
	if !regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`).MatchString(h.Get("Message-Id")) {
		t.Errorf("Message-ID: %q, want 32 hex digits at the sender's domain", h.Get("Message-Id"))
	}
	if h.Get("Mime-Version") != "1.0" {
		t.Errorf("MIME-Version: %q", h.Get("Mime-Version"))
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "multipart/alternative" {
		t.Errorf("Content-Type: %q, want multipart/alternative", h.Get("Content-Type"))
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	srv := mailtest.StartServerWithAuth(t, "mailer", "s3cret")
	url := strings.Replace(srv.URL(), "s3cret", "wrongpass", 1)
	s, err := lkmail.New(lkmail.Options{SMTPURL: url})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lkmail.PasswordChanged("alice@example.com", data)
	err = s.Send(timeout(t), m)
	if err == nil {
		t.Fatal("sent with a wrong SMTP password")
	}
	if strings.Contains(err.Error(), "wrongpass") {
		t.Errorf("the error reveals the SMTP password: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("the server received %d messages", n)
	}
}

// TestSMTPNoCleartextPassword checks that credentials are not sent without TLS to a host that
// is not localhost, 127.0.0.1 or ::1.
func TestSMTPNoCleartextPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no second loopback address: %v", err)
		}
		t.Skipf("no second loopback address: %v", err)
	}
	ln.Close()
	srv := mailtest.StartServerWith(t, mailtest.Options{Addr: "127.0.0.2:0", User: "mailer", Password: "s3cret"})
	s, err := lkmail.New(lkmail.Options{SMTPURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lkmail.PasswordChanged("alice@example.com", data)
	if err := s.Send(timeout(t), m); !errors.Is(err, smtp.ErrUnencrypted) {
		t.Errorf("Send = %v, want %v", err, smtp.ErrUnencrypted)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("the server received %d messages", n)
	}
}

func TestSMTPBadRecipient(t *testing.T) {
	srv := mailtest.StartServer(t)
	s, err := lkmail.New(lkmail.Options{SMTPURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"", "not an address", "a@example.com, b@example.com", "a@example.com\r\nBcc: b@example.com"} {
		if err := s.Send(timeout(t), lkmail.Message{To: to, Subject: "x", Text: "x"}); err == nil {
			t.Errorf("Send(To: %q) = nil, want an error", to)
		}
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	s, err := lkmail.New(lkmail.Options{
		OutboxDir: dir,
		From:      "Latchkey <no-reply@example.com>",
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("New created the outbox folder (%v): a command that sends nothing would leave it behind", err)
	}
	m, err := lkmail.RecoveryCodeUsed("alice@example.com", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox folder: %v, %v; want mode 0700", fi, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("outbox holds %v, want one file", files)
	}
	if name := filepath.Base(files[0]); !regexp.MustCompile(`^20261122T101500Z-[0-9a-f]{12}\.eml$`).MatchString(name) {
		t.Errorf("file name %q", name)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}

	raw, _ := os.ReadFile(files[0])
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse %s: %v", files[0], err)
	}
	checkHeaders(t, msg.Header)
	if got := msg.Header.Get("Subject"); got != "A recovery code was used to sign in" {
		t.Errorf("Subject %q", got)
	}
	text, html := parts(t, msg)
	if !strings.Contains(text, "7 recovery codes left") || !strings.Contains(text, securityURL) {
		t.Errorf("text part: %q", text)
	}
	if !strings.Contains(html, "7 recovery codes left") || !strings.Contains(html, securityURL) {
		t.Errorf("HTML part: %q", html)
	}

	log := logs.String()
	for _, want := range []string{`"level":"INFO"`, `"to":"alice@example.com"`, `"subject":"A recovery code was used to sign in"`, files[0]} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s: %s", want, log)
		}
	}
	for _, body := range []string{"settings/security", "recovery codes left", "192.0.2.7"} {
		if strings.Contains(log, body) {
			t.Errorf("the log contains the body (%q): %s", body, log)
		}
	}
	if n := strings.Count(log, "\n"); n != 1 {
		t.Errorf("%d log lines, want 1: %s", n, log)
	}
}

// parts returns the decoded text/plain and text/html parts of a multipart/alternative message.
func parts(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return text, html
		} else if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p // multipart decodes quoted-printable itself
		switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, p)
		case "quoted-printable":
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
}

func TestNewInvalid(t *testing.T) {
	outbox := t.TempDir()
	tests := []struct {
		name string
		opt  lkmail.Options
		want []string // in the error
	}{
		{"bad scheme", lkmail.Options{SMTPURL: "http://mail.example.com"}, []string{`scheme must be smtp or smtps, not "http"`}},
		{"no scheme", lkmail.Options{SMTPURL: "mail.example.com:25"}, []string{"scheme"}},
		{"missing host", lkmail.Options{SMTPURL: "smtp://"}, []string{"host is missing"}},
		{"missing host with port", lkmail.Options{SMTPURL: "smtp://:25"}, []string{"host is missing"}},
		{"port too large", lkmail.Options{SMTPURL: "smtp://mail.example.com:99999"}, []string{`port "99999"`}},
		{"port zero", lkmail.Options{SMTPURL: "smtp://mail.example.com:0"}, []string{`port "0"`}},
		{"port not a number", lkmail.Options{SMTPURL: "smtp://user:topsecret@mail.example.com:abc"}, []string{`port "abc"`}},
		{"empty port", lkmail.Options{SMTPURL: "smtp://mail.example.com:"}, []string{"port is empty"}},
		{"path", lkmail.Options{SMTPURL: "smtp://mail.example.com/inbox"}, []string{"path"}},
		{"unknown parameter", lkmail.Options{SMTPURL: "smtp://mail.example.com?tls=off"}, []string{`unknown parameter "tls"`}},
		{"bad insecure_skip_verify", lkmail.Options{SMTPURL: "smtp://mail.example.com?insecure_skip_verify=yes please"}, []string{"insecure_skip_verify must be true or false"}},
		{"unparseable", lkmail.Options{SMTPURL: "smtp://user:top%zzsecret@mail.example.com"}, []string{"cannot be parsed"}},
		{"bad sender", lkmail.Options{SMTPURL: "smtp://mail.example.com", From: "not an address"}, []string{"sender address"}},
		{"bad sender with outbox", lkmail.Options{OutboxDir: outbox, From: "not an address"}, []string{"sender address"}},
		{"neither SMTP nor outbox", lkmail.Options{}, []string{"outbox"}},
		{"every problem at once", lkmail.Options{SMTPURL: "ftp://user:topsecret@:99999?x=1", From: "nobody"}, []string{"sender address", "scheme", "host is missing", `port "99999"`, `parameter "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := lkmail.New(tt.opt)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.opt, s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%q) error %q lacks %q", tt.opt.SMTPURL, err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "zzsecret") {
				t.Errorf("New(%q) error reveals the password: %v", tt.opt.SMTPURL, err)
			}
		})
	}
}

func TestNewValid(t *testing.T) {
	tests := []struct{ name, url string }{
		{"smtp with port", "smtp://mail.example.com:25"},
		{"smtp default port", "smtp://mail.example.com"},
		{"smtps", "smtps://mail.example.com:465"},
		{"credentials", "smtp://user%40example.com:p%40ss%3Aword@mail.example.com:587"},
		{"IPv6", "smtp://[::1]:2525"},
		{"insecure_skip_verify", "smtps://mail.example.com?insecure_skip_verify=true"},
		{"trailing slash", "smtp://mail.example.com:25/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := lkmail.New(lkmail.Options{SMTPURL: tt.url}); err != nil {
				t.Errorf("New(%q): %v", tt.url, err)
			}
		})
	}
}
