// Package mailtest runs a real SMTP server in the test process (emersion/go-smtp) and keeps
// what it receives, parsed, so tests see exactly what was sent over the wire.
package mailtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one delivered message, parsed.
type Received struct {
	// From and To are the SMTP envelope addresses (MAIL FROM and the last RCPT TO).
	From, To string
	// Subject is the decoded Subject header.
	Subject string
	// Text and HTML are the decoded text/plain and text/html parts ("" when absent).
	Text, HTML string
	// Header holds the message's headers as sent.
	Header mail.Header
	// Raw is the message exactly as received.
	Raw string
	// User is the authenticated SMTP user, "" without authentication.
	User string
	// Mechanism is the SASL mechanism the client authenticated with, e.g. "PLAIN" or "LOGIN".
	Mechanism string
	// TLS reports whether the session was encrypted (STARTTLS or implicit TLS).
	TLS bool
}

// Options configure StartServerWith. The zero value is StartServer's server.
type Options struct {
	// User and Password, when User is set, make the server require authentication.
	User, Password string
	// Mechanisms are the SASL mechanisms offered, from "PLAIN" and "LOGIN"; default both.
	Mechanisms []string
	// StartTLS offers STARTTLS with a self-signed certificate; ImplicitTLS speaks TLS from the
	// first byte (smtps). Either adds insecure_skip_verify=true to URL.
	StartTLS, ImplicitTLS bool
	// Addr is the address to listen on; default "127.0.0.1:0". To bring a closed server
	// back on the same port, pass the old server's Addr.
	Addr string
	// Reject, when set, is asked about every recipient (RCPT TO); a non-nil error refuses
	// it with a permanent failure (550) carrying the error's text.
	Reject func(to string) error
}

// Server is a running SMTP server. It is safe for concurrent use.
type Server struct {
	opt Options
	srv *smtp.Server
	ln  net.Listener

	mu      sync.Mutex
	msgs    []Received
	changed chan struct{} // closed and replaced whenever a message arrives
}

// StartServer starts a server on 127.0.0.1 that accepts any message without authentication
// or TLS. It stops when the test ends.
func StartServer(tb testing.TB) *Server { return StartServerWith(tb, Options{}) }

// StartServerWithAuth starts a server on 127.0.0.1 that requires PLAIN or LOGIN
// authentication as user/password. URL includes the credentials.
func StartServerWithAuth(tb testing.TB, user, password string) *Server {
	return StartServerWith(tb, Options{User: user, Password: password})
}

// StartServerWith starts a server configured by opt. It stops when the test ends.
func StartServerWith(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:0"
	}
	if len(opt.Mechanisms) == 0 {
		opt.Mechanisms = []string{sasl.Plain, sasl.Login}
	}
	s := &Server{opt: opt, changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, encrypted := c.TLSConnectionState()
		return &session{s: s, conn: c, tlsAtStart: encrypted}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true // loopback only; lets tests authenticate without TLS
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", opt.Addr)
	if err != nil {
		tb.Fatalf("mailtest: listen on %s: %v", opt.Addr, err)
	}
	if opt.StartTLS || opt.ImplicitTLS {
		conf := &tls.Config{Certificates: []tls.Certificate{selfSigned(tb)}, MinVersion: tls.VersionTLS12}
		if opt.StartTLS {
			s.srv.TLSConfig = conf
		}
		if opt.ImplicitTLS {
			ln = tls.NewListener(ln, conf)
		}
	}
	s.ln = ln
	go s.srv.Serve(ln)
	tb.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the server's address as an SMTP URL for mail.Options.SMTPURL: smtp://127.0.0.1:PORT,
// smtps:// with ImplicitTLS, with the credentials when the server requires them and with
// insecure_skip_verify=true when it uses its self-signed certificate.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.ln.Addr().String()}
	if s.opt.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.opt.User != "" {
		u.User = url.UserPassword(s.opt.User, s.opt.Password)
	}
	if s.opt.StartTLS || s.opt.ImplicitTLS {
		u.RawQuery = "insecure_skip_verify=true"
	}
	return u.String()
}

// Addr is the address the server listens on, e.g. "127.0.0.1:40123".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: it no longer accepts connections, as if the mail server were
// down. Start another with Options.Addr set to Addr to bring it back on the same port.
func (s *Server) Close() error {
	// The listener is closed here too: Serve may not have taken it over yet.
	s.ln.Close()
	return s.srv.Close()
}

// Messages returns what was received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait waits until at least n messages have arrived and returns all of them, or returns an
// error when ctx ends first.
func (s *Server) Wait(ctx context.Context, n int) ([]Received, error) {
	for {
		s.mu.Lock()
		msgs, changed := append([]Received(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return msgs, fmt.Errorf("mailtest: %d of %d messages arrived: %w", len(msgs), n, ctx.Err())
		}
	}
}

// WaitFor returns the first message to `to` (case-insensitive) whose subject contains
// subject, waiting for it until ctx ends.
func (s *Server) WaitFor(ctx context.Context, to, subject string) (Received, error) {
	for {
		s.mu.Lock()
		msgs, changed := s.msgs, s.changed
		s.mu.Unlock()
		for _, m := range msgs {
			if strings.EqualFold(m.To, to) && strings.Contains(m.Subject, subject) {
				return m, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Received{}, fmt.Errorf("mailtest: no message to %s about %q: %w", to, subject, ctx.Err())
		}
	}
}

func (s *Server) deliver(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

type session struct {
	s          *Server
	conn       *smtp.Conn
	tlsAtStart bool
	from, to   string
	user, mech string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return ss.s.opt.Mechanisms }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		if username != ss.s.opt.User || password != ss.s.opt.Password {
			return errors.New("invalid credentials")
		}
		ss.user, ss.mech = username, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opt.User != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.opt.Reject != nil {
		if err := ss.s.opt.Reject(to); err != nil {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: err.Error()}
		}
	}
	ss.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, encrypted := ss.conn.TLSConnectionState()
	m := Received{From: ss.from, To: ss.to, Raw: string(raw), User: ss.user, Mechanism: ss.mech, TLS: encrypted || ss.tlsAtStart}
	if msg, err := mail.ReadMessage(strings.NewReader(m.Raw)); err == nil {
		m.Header = msg.Header
		m.Subject, _ = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		parseBody(&m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	}
	ss.s.deliver(m)
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", "" }
func (ss *session) Logout() error { return nil }

// parseBody fills m.Text and m.HTML from a (possibly nested) MIME body.
func parseBody(m *Received, ctype, cte string, body io.Reader) {
	if ctype == "" {
		ctype = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart() // decodes quoted-printable parts itself
			if err != nil {
				return
			}
			parseBody(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		}
	}
	b, _ := io.ReadAll(decodeTransfer(cte, body))
	switch mt {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
}

// loginServer is the server side of the LOGIN mechanism, which go-sasl only has for clients.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	l.step++
	switch l.step {
	case 1:
		if len(response) > 0 { // initial response carries the user name
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(response)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
