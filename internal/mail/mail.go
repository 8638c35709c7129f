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
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email to one recipient. Text and HTML are the two alternative bodies; HTML
// may be empty.
type Message struct {
	To      string // one address, e.g. "alice@example.com" or "Alice <alice@example.com>"
	Subject string
	Text    string
	HTML    string
	// Headers are extra header fields, e.g. "Message-ID", "In-Reply-To" and "References" to
	// thread a ticket's mails; a Message-ID here replaces the generated one.
	Headers map[string]string
}

// Sender delivers messages. Send returns once the message is handed to the SMTP server or
// written to the outbox.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Options configure New.
type Options struct {
	// SMTPURL selects SMTP delivery:
	//
	//	smtp://[user:password@]host[:port]   port 587 by default; STARTTLS whenever the server
	//	                                      offers it, plain SMTP otherwise
	//	smtps://[user:password@]host[:port]  port 465 by default; TLS from the first byte
	//
	// With user info the client authenticates with PLAIN or LOGIN, whichever the server
	// offers; the credentials are only ever sent over TLS or to localhost, 127.0.0.1 or ::1.
	// Percent-encode special characters in the user name and password. The query parameter
	// insecure_skip_verify=true accepts any server certificate: for test servers only.
	//
	// Empty SMTPURL selects the outbox.
	SMTPURL string
	// OutboxDir receives one .eml file per message when SMTPURL is empty. The first message
	// creates it, with mode 0700, if missing: New does not, so that the commands that never
	// send mail (user create on PostgreSQL, without a data folder) leave no folder behind.
	OutboxDir string
	// From is the sender address; default "Latchkey <latchkey@localhost>".
	From string
	// Logger receives one info line per message (recipient and subject, never the body);
	// nil discards.
	Logger *slog.Logger
	// Now stamps the Date header and outbox file names; default time.Now.
	Now func() time.Time
}

// New returns the Sender that opts describe, or an error listing everything wrong with them.
// Errors never contain the SMTP password.
func New(opts Options) (Sender, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.From == "" {
		opts.From = "Latchkey <latchkey@localhost>"
	}
	var problems []string
	if _, err := netmail.ParseAddress(opts.From); err != nil {
		problems = append(problems, fmt.Sprintf("the sender address %q is not a valid email address", opts.From))
	}
	if opts.SMTPURL == "" {
		if opts.OutboxDir == "" {
			problems = append(problems, "either an SMTP URL or an outbox folder is needed")
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("mail: %s", strings.Join(problems, "; "))
		}
		return &outbox{dir: opts.OutboxDir, from: opts.From, log: opts.Logger, now: opts.Now}, nil
	}
	s, urlProblems := newSMTP(opts)
	problems = append(problems, urlProblems...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("mail: bad mail settings: %s", strings.Join(problems, "; "))
	}
	return s, nil
}

// newMessageID returns a Message-ID of 128 random bits at the sender address's domain. (The
// mail library's own takes the machine's host name, which a mail should not tell its
// recipient: inside a cluster it names the node, a container or an internal host.)
func newMessageID(from string) (string, error) {
	domain := "latchkey.invalid"
	if a, err := netmail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	return hex.EncodeToString(b) + "@" + domain, nil
}

// newMsg builds the MIME message: multipart/alternative with a text and an HTML part, with
// From, To, Subject, Date, Message-ID and MIME-Version headers.
func newMsg(from string, m Message, now time.Time) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if m.To == "" {
		return nil, errors.New("the message has no recipient")
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	if id := m.Headers["Message-ID"]; id != "" {
		msg.SetMessageIDWithValue(strings.Trim(id, "<>"))
	} else {
		id, err := newMessageID(from)
		if err != nil {
			return nil, err
		}
		msg.SetMessageIDWithValue(id)
	}
	for k, v := range m.Headers {
		if k != "Message-ID" {
			msg.SetGenHeader(gomail.Header(k), v)
		}
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// outbox writes messages to files instead of sending them.
type outbox struct {
	dir  string
	from string
	log  *slog.Logger
	now  func() time.Time
}

var _ Sender = (*outbox)(nil)

// Send writes m to DIR/YYYYMMDDTHHMMSSZ-RANDOM.eml (mode 0600) and logs the recipient, subject
// and file, never the body, which may carry links with tokens.
func (o *outbox) Send(ctx context.Context, m Message) error {
	now := o.now()
	msg, err := newMsg(o.from, m, now)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("mail: create outbox: %w", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:]) // never fails
	name := filepath.Join(o.dir, now.UTC().Format("20060102T150405Z")+"-"+hex.EncodeToString(rnd[:])+".eml")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("mail: create message file: %w", err)
	}
	if _, err := msg.WriteTo(f); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("mail: write message file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("mail: write message file: %w", err)
	}
	o.log.InfoContext(ctx, "mail written to outbox", "to", m.To, "subject", m.Subject, "file", name)
	return nil
}

// smtpSender delivers through an SMTP server, one connection per message.
type smtpSender struct {
	from string
	host string
	opts []gomail.Option
	log  *slog.Logger
	now  func() time.Time
	safe string // the URL with its password redacted, for errors and logs
}

var _ Sender = (*smtpSender)(nil)

// newSMTP parses opts.SMTPURL and returns a sender, or every problem found with the URL.
func newSMTP(opts Options) (*smtpSender, []string) {
	u, err := url.Parse(opts.SMTPURL)
	if err != nil {
		// url.Error repeats the URL, password included, so it is not passed on.
		if p := portProblem(opts.SMTPURL); p != "" {
			return nil, []string{"SMTP URL: " + p}
		}
		return nil, []string{"the SMTP URL cannot be parsed (want smtp://[user:password@]host[:port] or smtps://...; percent-encode special characters in the user name and password)"}
	}
	safe := u.Redacted()
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("SMTP URL %s: ", safe)+fmt.Sprintf(format, args...))
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		bad("the scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if u.Opaque != "" {
		bad("write it as scheme://host:port")
	}
	host := u.Hostname()
	if host == "" {
		bad("the host is missing")
	}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			bad("the port %q is not a number from 1 to 65535", p)
		}
		port = n
	} else if strings.HasSuffix(u.Host, ":") {
		bad("the port is empty")
	}
	if u.Path != "" && u.Path != "/" {
		bad("a path (%q) has no meaning here", u.Path)
	}
	if u.User != nil && u.User.Username() == "" {
		bad("the user name is empty")
	}
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	for k, vs := range u.Query() {
		switch k {
		case "insecure_skip_verify":
			v, err := strconv.ParseBool(vs[len(vs)-1])
			if err != nil {
				bad("insecure_skip_verify must be true or false, not %q", vs[len(vs)-1])
			}
			tlsConf.InsecureSkipVerify = v
		default:
			bad("unknown parameter %q (only insecure_skip_verify is known)", k)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	o := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTLSConfig(tlsConf),
		gomail.WithTimeout(20 * time.Second),
	}
	if u.Scheme == "smtps" {
		o = append(o, gomail.WithSSL())
	} else {
		o = append(o, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		// PLAIN and LOGIN as go-mail implements them refuse to send credentials without TLS
		// unless the host is localhost, 127.0.0.1 or ::1, so a downgraded STARTTLS cannot
		// leak the password.
		o = append(o,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(u.User.Username()),
			gomail.WithPassword(pass),
		)
	}
	return &smtpSender{from: opts.From, host: host, opts: o, log: opts.Logger, now: opts.Now, safe: safe}, nil
}

// portProblem describes a bad port in a URL that net/url rejects, without repeating the
// user info.
func portProblem(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 || strings.HasSuffix(rest, "]") {
		return ""
	}
	p := rest[i+1:]
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("the port %q is not a number from 1 to 65535", p)
	}
	return ""
}

// Send delivers m through the SMTP server on a new connection.
func (s *smtpSender) Send(ctx context.Context, m Message) error {
	msg, err := newMsg(s.from, m, s.now())
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: smtp client for %s: %w", s.safe, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		// The server accepted the message (250 after DATA) and only the RSET or QUIT after
		// it failed: the mail is on its way, and an error here would make the outbox send it
		// again.
		if msg.IsDelivered() {
			s.log.WarnContext(ctx, "mail sent; closing the SMTP session failed", "to", m.To, "subject", m.Subject, "smtp", s.safe, "err", err)
			return nil
		}
		return fmt.Errorf("mail: send through %s: %w", s.safe, err)
	}
	s.log.InfoContext(ctx, "mail sent", "to", m.To, "subject", m.Subject, "smtp", s.safe)
	return nil
}
