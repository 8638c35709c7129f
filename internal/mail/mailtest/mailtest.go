// Package mailtest runs a real SMTP server in the test process (emersion/go-smtp) and keeps
// what it receives, so tests see exactly what the server sent over the wire.
package mailtest

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one delivered message, parsed.
type Received struct {
	From, To, Subject string
	Text, HTML        string
	Raw               string
	// User is the authenticated SMTP user, if any.
	User string
}

// Server is a running SMTP server.
type Server struct {
	srv      *smtp.Server
	ln       net.Listener
	mu       sync.Mutex
	msgs     []Received
	notify   chan struct{}
	user     string
	password string
}

// StartServer starts a server on 127.0.0.1 that accepts any message without authentication;
// it stops when the test ends.
func StartServer(tb testing.TB) *Server { return start(tb, "", "") }

// StartServerWithAuth starts a server that requires PLAIN authentication as user/password.
func StartServerWithAuth(tb testing.TB, user, password string) *Server {
	return start(tb, user, password)
}

func start(tb testing.TB, user, password string) *Server {
	tb.Helper()
	s := &Server{notify: make(chan struct{}, 1), user: user, password: password}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.ln = ln
	go s.srv.Serve(ln)
	tb.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the smtp:// URL of the server (with credentials for an authenticating server).
func (s *Server) URL() string {
	if s.user != "" {
		return "smtp://" + s.user + ":" + s.password + "@" + s.ln.Addr().String()
	}
	return "smtp://" + s.ln.Addr().String()
}

// Messages returns what was received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitFor returns the first message to `to` whose subject contains subject, waiting for it
// until ctx ends.
func (s *Server) WaitFor(ctx context.Context, to, subject string) (Received, error) {
	for {
		for _, m := range s.Messages() {
			if strings.EqualFold(m.To, to) && strings.Contains(m.Subject, subject) {
				return m, nil
			}
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Received{}, errors.New("mailtest: no message to " + to + " about " + subject + ": " + ctx.Err().Error())
		}
	}
}

type session struct {
	s        *Server
	from, to string
	user     string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.s.user || password != ss.s.password {
			return errors.New("invalid credentials")
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error { ss.to = to; return nil }

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Received{From: ss.from, To: ss.to, Raw: string(raw), User: ss.user}
	if msg, err := mail.ReadMessage(strings.NewReader(string(raw))); err == nil {
		dec := new(mime.WordDecoder)
		m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
		parseBody(&m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	ss.s.mu.Unlock()
	select {
	case ss.s.notify <- struct{}{}:
	default:
	}
	return nil
}

func parseBody(m *Received, ctype, cte string, body io.Reader) {
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

func (ss *session) Reset()        { ss.from, ss.to = "", "" }
func (ss *session) Logout() error { return nil }
