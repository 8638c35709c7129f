package mail_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lkmail "github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
)

var data = lkmail.Data{Username: "alice", Time: time.Date(2026, 11, 22, 10, 15, 0, 0, time.UTC), IP: "192.0.2.7", UserAgent: "Firefox", PublicURL: "https://login.example.com", RecoveryCodesLeft: 7}

func TestSMTP(t *testing.T) {
	for _, tt := range []struct {
		name string
		srv  func(t *testing.T) *mailtest.Server
		user string
	}{
		{"no auth", func(t *testing.T) *mailtest.Server { return mailtest.StartServer(t) }, ""},
		{"plain auth", func(t *testing.T) *mailtest.Server { return mailtest.StartServerWithAuth(t, "mailer", "s3cret") }, "mailer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv(t)
			s, err := lkmail.New(lkmail.Options{SMTPURL: srv.URL(), From: "Latchkey <no-reply@example.com>"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := lkmail.TOTPEnabled("alice@example.com", data)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, err := srv.WaitFor(ctx, "alice@example.com", "Two-factor authentication was enabled")
			if err != nil {
				t.Fatal(err)
			}
			if got.From != "no-reply@example.com" || got.User != tt.user {
				t.Errorf("From %q, user %q", got.From, got.User)
			}
			if !strings.Contains(got.Text, "turned on") || !strings.Contains(got.HTML, "turned on") || !strings.Contains(got.HTML, "https://login.example.com/settings/security") {
				t.Errorf("parts: text %q\nhtml %q", got.Text, got.HTML)
			}
		})
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	srv := mailtest.StartServerWithAuth(t, "mailer", "s3cret")
	s, _ := lkmail.New(lkmail.Options{SMTPURL: strings.Replace(srv.URL(), "s3cret", "wrong", 1)})
	m, _ := lkmail.PasswordChanged("alice@example.com", data)
	err := s.Send(context.Background(), m)
	if err == nil {
		t.Fatal("sent with a wrong SMTP password")
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error reveals the SMTP password: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	s, err := lkmail.New(lkmail.Options{OutboxDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lkmail.RecoveryCodeUsed("alice@example.com", data)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("outbox holds %v", files)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Subject") != "A recovery code was used to sign in" || msg.Header.Get("Message-Id") == "" || !strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("headers %v", msg.Header)
	}
	if !strings.Contains(logs.String(), "subject=\"A recovery code was used to sign in\"") {
		t.Errorf("log lacks the subject: %s", logs.String())
	}
	if strings.Contains(logs.String(), "settings/security") || strings.Contains(logs.String(), "7 recovery codes") {
		t.Errorf("the log contains the body: %s", logs.String())
	}
}

func TestBadSMTPURL(t *testing.T) {
	for _, u := range []string{"http://mail.example.com", "smtp://", "smtp://mail.example.com:99999", "smtp://mail.example.com:abc"} {
		if _, err := lkmail.New(lkmail.Options{SMTPURL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	_, err := lkmail.New(lkmail.Options{SMTPURL: "ftp://user:topsecret@mail.example.com"})
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v must exist and not contain the password", err)
	}
}

func TestTemplates(t *testing.T) {
	evil := data
	evil.Username = "<script>alert(1)</script>"
	for name, f := range map[string]func(string, lkmail.Data) (lkmail.Message, error){
		"enabled": lkmail.TOTPEnabled, "disabled": lkmail.TOTPDisabled, "password": lkmail.PasswordChanged, "recovery": lkmail.RecoveryCodeUsed,
	} {
		m, err := f("a@example.com", evil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Subject == "" || !strings.Contains(m.Text, "192.0.2.7") || !strings.Contains(m.Text, "Sunday 22 November 2026 at 10:15 UTC") || !strings.Contains(m.Text, "If this wasn't you") {
			t.Errorf("%s text: %q", name, m.Text)
		}
		if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
			t.Errorf("%s: the HTML does not escape the username", name)
		}
	}
	m, _ := lkmail.RecoveryCodeUsed("a@example.com", data)
	if !strings.Contains(m.Text, "7 recovery codes left") {
		t.Errorf("recovery mail: %q", m.Text)
	}
}
