// Package mail sends Latchkey's notifications: rendered from embedded text and HTML templates,
// delivered through SMTP, or, with no SMTP server configured, written as .eml files to an
// outbox folder so that a local start needs nothing else.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Options configure New.
type Options struct {
	// SMTPURL is smtp://[user:pass@]host[:port] (STARTTLS when the server offers it) or
	// smtps://[user:pass@]host[:port] (implicit TLS). Empty selects the outbox. The query
	// parameter insecure_skip_verify=true disables certificate checks (test servers only).
	SMTPURL string
	// OutboxDir receives .eml files when SMTPURL is empty.
	OutboxDir string
	// From is the sender address, e.g. "Latchkey <no-reply@example.com>".
	From   string
	Logger *slog.Logger
	Now    func() time.Time
}

// New returns the Sender that Options describe, or an error listing what is wrong with them.
func New(opt Options) (Sender, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.From == "" {
		opt.From = "Latchkey <latchkey@localhost>"
	}
	if opt.SMTPURL == "" {
		if opt.OutboxDir == "" {
			return nil, errors.New("mail: either an SMTP URL or an outbox folder is needed")
		}
		return &outbox{dir: opt.OutboxDir, from: opt.From, log: opt.Logger, now: opt.Now}, nil
	}
	return newSMTP(opt)
}

// newMsg builds the MIME message: multipart/alternative with a text and an HTML part.
func newMsg(from string, m Message, now time.Time) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

type outbox struct {
	dir  string
	from string
	log  *slog.Logger
	now  func() time.Time
}

// Send writes m as an .eml file (mode 0600) and logs the recipient, subject and file — never
// the body, which may carry links with tokens.
func (o *outbox) Send(ctx context.Context, m Message) error {
	msg, err := newMsg(o.from, m, o.now())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("create outbox: %w", err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := filepath.Join(o.dir, o.now().UTC().Format("20060102T150405Z")+"-"+hex.EncodeToString(rnd[:])+".eml")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create message file: %w", err)
	}
	if _, err := msg.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write message file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write message file: %w", err)
	}
	o.log.InfoContext(ctx, "mail written to outbox", "to", m.To, "subject", m.Subject, "file", name)
	return nil
}

type smtpSender struct {
	from string
	host string
	opts []gomail.Option
	log  *slog.Logger
	now  func() time.Time
	safe string // the URL without its password, for logs
}

func newSMTP(opt Options) (Sender, error) {
	u, err := url.Parse(opt.SMTPURL)
	if err != nil {
		return nil, errors.New("mail: the SMTP URL cannot be parsed")
	}
	var problems []string
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		problems = append(problems, fmt.Sprintf("scheme must be smtp or smtps, not %q", u.Scheme))
	}
	host := u.Hostname()
	if host == "" {
		problems = append(problems, "the host is missing")
	}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			problems = append(problems, fmt.Sprintf("port %q is not a number from 1 to 65535", p))
		}
		port = n
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("mail: bad SMTP URL %s: %s", u.Redacted(), strings.Join(problems, "; "))
	}
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if u.Query().Get("insecure_skip_verify") == "true" {
		tlsConf.InsecureSkipVerify = true
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTLSConfig(tlsConf), gomail.WithTimeout(20 * time.Second)}
	if u.Scheme == "smtps" {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		auth := gomail.SMTPAuthPlain
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			auth = gomail.SMTPAuthPlainNoEnc // loopback test servers without TLS
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	return &smtpSender{from: opt.From, host: host, opts: opts, log: opt.Logger, now: opt.Now, safe: u.Redacted()}, nil
}

// Send delivers m through the SMTP server, one connection per message.
func (s *smtpSender) Send(ctx context.Context, m Message) error {
	msg, err := newMsg(s.from, m, s.now())
	if err != nil {
		return err
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("smtp client for %s: %w", s.safe, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send mail through %s: %w", s.safe, err)
	}
	s.log.InfoContext(ctx, "mail sent", "to", m.To, "subject", m.Subject)
	return nil
}
