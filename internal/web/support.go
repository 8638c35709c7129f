package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/support"
)

// mountSupport registers the support desk: the requesters' JSON API and pages (no sign-in)
// and the agent console under /admin/tickets. Without a support service nothing is mounted.
func (s *Server) mountSupport(mux *http.ServeMux) {
	if s.support == nil {
		return
	}
	mux.Handle("POST /api/v1/support/tickets", s.api(s.apiCreateTicket))
	mux.Handle("GET /api/v1/support/tickets/types", s.api(s.apiTicketTypes))

	mux.Handle("GET /support/new", s.page(s.pageSupportNew))
	mux.Handle("POST /support/new", s.page(s.pageSupportNewPost))
	mux.Handle("GET "+support.TrackingPrefix+"{token}", s.page(s.pageTrack))
	mux.Handle("POST "+support.TrackingPrefix+"{token}", s.page(s.pageTrackPost))

	for _, r := range deskRoutes {
		mux.Handle(r.pattern, s.pageAuthed(s.agentPage(r.handler(s))))
	}
}

// deskRoutes are the agent console's routes; the authorization test walks this list.
var deskRoutes = []struct {
	pattern string
	handler func(*Server) authedPageFunc
}{
	{"GET /admin/tickets", func(s *Server) authedPageFunc { return s.pageDeskQueue }},
	{"GET /admin/tickets/{id}", func(s *Server) authedPageFunc { return s.pageDeskTicket }},
	{"POST /admin/tickets/{id}/checks", func(s *Server) authedPageFunc { return s.pageDeskChecks }},
	{"POST /admin/tickets/{id}/reset-mfa", func(s *Server) authedPageFunc { return s.pageDeskReset }},
	{"POST /admin/tickets/{id}/remove-factor", func(s *Server) authedPageFunc { return s.pageDeskRemoveFactor }},
	{"POST /admin/tickets/{id}/reply", func(s *Server) authedPageFunc { return s.pageDeskReply }},
	{"POST /admin/tickets/{id}/status", func(s *Server) authedPageFunc { return s.pageDeskStatus }},
	{"POST /admin/tickets/{id}/invite", func(s *Server) authedPageFunc { return s.pageDeskInvite }},
}

// redactPath hides the tracking token of a support link in the access log and error logs:
// the path alone lets anyone read and answer the ticket.
func redactPath(p string) string {
	if strings.HasPrefix(p, support.TrackingPrefix) && len(p) > len(support.TrackingPrefix) {
		return support.TrackingPrefix + "[redacted]"
	}
	return p
}

// apiCreateTicket is POST /api/v1/support/tickets: 201 {"id","tracking_url"}.
func (s *Server) apiCreateTicket(w http.ResponseWriter, r *http.Request) (any, error) {
	var in support.NewTicket
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	c, err := s.support.Create(r.Context(), client(r), in)
	if err != nil {
		return nil, err
	}
	writeJSON(w, http.StatusCreated, struct {
		ID          int64  `json:"id"`
		TrackingURL string `json:"tracking_url"`
	}{c.Ticket.ID, c.TrackingURL})
	return nil, errWritten
}

// apiTicketTypes is GET /api/v1/support/tickets/types: [{"id","name"}].
func (s *Server) apiTicketTypes(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.support.Types(), nil
}

// supportForm is what /support/new shows.
type supportForm struct {
	Types []support.Choice
	In    support.NewTicket
}

func (s *Server) signedInUser(r *http.Request) *latchkey.User {
	_, u, err := s.login.Authenticate(r.Context(), s.token(r))
	if err != nil {
		return nil
	}
	return u
}

func (s *Server) pageSupportNew(w http.ResponseWriter, r *http.Request) error {
	v := &view{Title: "Create a new support ticket", Data: supportForm{Types: s.support.Types()}}
	if u := s.signedInUser(r); u != nil {
		v.Data = supportForm{Types: s.support.Types(), In: support.NewTicket{Email: u.Email, Username: u.Username}}
	}
	return s.render(w, http.StatusOK, "support_new", v)
}

func (s *Server) pageSupportNewPost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	in := support.NewTicket{Email: r.PostFormValue("email"), Username: r.PostFormValue("username"), Type: r.PostFormValue("type"), Message: r.PostFormValue("message")}
	c, err := s.support.Create(r.Context(), client(r), in)
	if err != nil {
		v := &view{Title: "Create a new support ticket", Data: supportForm{Types: s.support.Types(), In: in}}
		code := status(latchkey.ErrorCode(err))
		if e, ok := err.(*latchkey.Error); ok && e.Code == latchkey.EThrottled {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter/time.Second)))
		}
		problems := support.Problems(err)
		for _, p := range problems {
			v.addField(p.Field, latchkey.ErrorMessage(p))
		}
		if len(problems) == 0 {
			v.Error = latchkey.ErrorMessage(err)
		}
		return s.render(w, code, "support_new", v)
	}
	http.Redirect(w, r, support.TrackingPath(c.Token)+"?created=1", http.StatusSeeOther)
	return nil
}

// trackView is the requester's tracking page.
type trackView struct {
	Ticket   *latchkey.Ticket
	TypeName string
	Messages []*latchkey.TicketMessage
	Created  bool
	Path     string
	Draft    string
}

func (s *Server) renderTrack(w http.ResponseWriter, r *http.Request, code int, v *view, draft string) error {
	tok := r.PathValue("token")
	t, msgs, err := s.support.Track(r.Context(), tok)
	if err != nil {
		return err
	}
	v.Title = "Ticket " + t.Number()
	v.Data = trackView{Ticket: t, TypeName: s.support.TypeName(t.Type), Messages: msgs, Created: r.URL.Query().Get("created") == "1",
		Path: support.TrackingPath(tok), Draft: draft}
	// The page's URL is the ticket's key: keep it out of shared caches and referrers (the
	// security headers already say no-store and no-referrer).
	return s.render(w, code, "support_track", v)
}

func (s *Server) pageTrack(w http.ResponseWriter, r *http.Request) error {
	v := &view{}
	if r.URL.Query().Get("sent") == "1" {
		v.Flash = "Your message was added to the ticket."
	}
	return s.renderTrack(w, r, http.StatusOK, v, "")
}

func (s *Server) pageTrackPost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	tok := r.PathValue("token")
	body := r.PostFormValue("message")
	if _, err := s.support.AddMessage(r.Context(), client(r), tok, body); err != nil {
		if latchkey.ErrorCode(err) == latchkey.ENotFound {
			return err
		}
		return s.renderTrack(w, r, status(latchkey.ErrorCode(err)), fieldError(&view{}, "message", err), body)
	}
	http.Redirect(w, r, support.TrackingPath(tok)+"?sent=1", http.StatusSeeOther)
	return nil
}

// agentPage refuses the agent console to anyone but support agents and administrators.
func (s *Server) agentPage(f authedPageFunc) authedPageFunc {
	return func(w http.ResponseWriter, r *http.Request, a *auth) error {
		if !support.IsAgent(a.user) {
			// Audited like the rest of /admin (requireRole).
			s.audit(r, a.user, latchkey.ActionAdminDenied, latchkey.OutcomeDenied, r.Method+" "+r.URL.Path)
			return latchkey.Errorf(latchkey.EForbidden, "The support desk is for support agents and administrators.")
		}
		return f(w, r, a)
	}
}

// queueView is the agent's queue.
type queueView struct {
	Tickets  []*latchkey.Ticket
	Total    int
	Statuses []latchkey.TicketStatus
	Types    []support.Choice
	Status   string
	Type     string
	Age      string
	Sort     string // "" (newest first) or "oldest"
	Now      time.Time
	TypeName func(string) string
	// Page is this page (from 1) of Pages; Prev and Next link the pages around it ("" at
	// an end), with the same filters.
	Page, Pages int
	Prev, Next  string
}

// queuePage is how many tickets a page of the queue lists.
const queuePage = 100

// ages are the queue's age filter values.
var ages = map[string]time.Duration{"": 0, "1h": time.Hour, "1d": 24 * time.Hour, "3d": 72 * time.Hour, "7d": 7 * 24 * time.Hour}

func (s *Server) pageDeskQueue(w http.ResponseWriter, r *http.Request, a *auth) error {
	q := r.URL.Query()
	age, ok := ages[q.Get("age")]
	if !ok {
		return latchkey.Errorf(latchkey.EInvalid, "Unknown age filter %q.", q.Get("age"))
	}
	qv := queueView{Statuses: latchkey.TicketStatuses, Types: s.support.Types(), Status: q.Get("status"), Type: q.Get("type"), Age: q.Get("age"), Sort: q.Get("sort"), Now: s.now(), TypeName: s.support.TypeName, Page: 1}
	if qv.Sort != "" && qv.Sort != "oldest" {
		return latchkey.Errorf(latchkey.EInvalid, "Unknown order %q: sort=oldest lists the oldest tickets first.", qv.Sort)
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			return latchkey.Errorf(latchkey.EInvalid, "The page must be a number from 1.")
		}
		qv.Page = n
	}
	var err error
	qv.Tickets, qv.Total, err = s.support.Tickets(r.Context(), a.user, support.Queue{Status: qv.Status, Type: qv.Type, OlderThan: age,
		OldestFirst: qv.Sort == "oldest", Offset: (qv.Page - 1) * queuePage, Limit: queuePage})
	if err != nil {
		return err
	}
	qv.Pages = max(1, (qv.Total+queuePage-1)/queuePage)
	link := func(page int) string {
		v := url.Values{}
		for k, x := range map[string]string{"status": qv.Status, "type": qv.Type, "age": qv.Age, "sort": qv.Sort} {
			if x != "" {
				v.Set(k, x)
			}
		}
		v.Set("page", strconv.Itoa(page))
		return "/admin/tickets?" + v.Encode()
	}
	if qv.Page > 1 {
		qv.Prev = link(min(qv.Page-1, qv.Pages))
	}
	if qv.Page < qv.Pages {
		qv.Next = link(qv.Page + 1)
	}
	return s.render(w, http.StatusOK, "desk_queue", &view{Title: "Support tickets", User: a.user, Data: qv})
}

// deskView is the agent's ticket page.
type deskView struct {
	*support.View
	TypeName string
	Checks   []support.Choice
	Statuses []latchkey.TicketStatus
	// AgentMFA reports whether the agent's session passed a second factor, which MFA
	// actions need.
	AgentMFA bool
	// MailFailedNotice is set right after the agent created the ticket's account and its
	// activation mail could not be sent (deskInviteMailFailed), while the account's
	// invitation still says so: the notice about what just happened. The account's note says
	// it from the invitation alone (View.InviteMailFailed), on every visit.
	MailFailedNotice bool
}

func ticketID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, latchkey.Errorf(latchkey.ENotFound, "There is no such ticket.")
	}
	return id, nil
}

func (s *Server) renderDeskTicket(w http.ResponseWriter, r *http.Request, a *auth, code int, v *view) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	tv, err := s.support.Ticket(r.Context(), a.user, id)
	if err != nil {
		return err
	}
	done := r.URL.Query().Get("done")
	if v.Flash == "" && deskFlashes[done] != "" {
		v.Flash = deskFlashes[done]
	}
	v.Title, v.User = "Ticket "+tv.Ticket.Number(), a.user
	v.Data = deskView{View: tv, TypeName: s.support.TypeName(tv.Ticket.Type), Checks: s.support.Checks(), Statuses: latchkey.TicketStatuses, AgentMFA: a.session.MFAAt != nil,
		MailFailedNotice: done == deskInviteMailFailed && v.Error == "" && tv.Invited && tv.InviteMailFailed}
	return s.render(w, code, "desk_ticket", v)
}

// deskFlashes are the console's fixed confirmations (nothing from the URL is reflected).
var deskFlashes = map[string]string{
	"checks":  "The identity checks were recorded.",
	"reset":   "Every sign-in method of the account was removed, its sessions were signed out and the user was told by email.",
	"removed": "The sign-in method was removed and the user was told by email.",
	"replied": "Your answer was sent by email.",
	"status":  "The status was changed.",
	"invited": "The account was created; the user gets an email to set a password and sign-in methods.",
}

func (s *Server) pageDeskTicket(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.renderDeskTicket(w, r, a, http.StatusOK, &view{})
}

// deskAction runs an action of the ticket page: success goes back to the ticket with a fixed
// confirmation; a refusal shows the ticket with the message and the refusal's status.
func (s *Server) deskAction(w http.ResponseWriter, r *http.Request, a *auth, done string, f func(id int64, c login.Client) error) error {
	return s.deskActionAs(w, r, a, func(id int64, c login.Client) (string, error) { return done, f(id, c) })
}

// deskActionAs is deskAction for an action whose success can have more than one outcome: f
// returns the one to show (a key of deskFlashes, or deskInviteMailFailed).
func (s *Server) deskActionAs(w http.ResponseWriter, r *http.Request, a *auth, f func(id int64, c login.Client) (string, error)) error {
	if err := form(r); err != nil {
		return err
	}
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	done, err := f(id, client(r))
	if err != nil {
		code := latchkey.ErrorCode(err)
		if code == latchkey.EInternal {
			return err
		}
		if _, lerr := s.support.Ticket(r.Context(), a.user, id); lerr != nil {
			return lerr
		}
		return s.renderDeskTicket(w, r, a, status(code), &view{Error: latchkey.ErrorMessage(err)})
	}
	http.Redirect(w, r, "/admin/tickets/"+strconv.FormatInt(id, 10)+"?done="+url.QueryEscape(done), http.StatusSeeOther)
	return nil
}

func (s *Server) pageDeskChecks(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskAction(w, r, a, "checks", func(id int64, c login.Client) error {
		_, err := s.support.RecordChecks(r.Context(), c, a.user, id, r.PostForm["check"])
		return err
	})
}

func (s *Server) pageDeskReset(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskAction(w, r, a, "reset", func(id int64, c login.Client) error {
		return s.support.ResetMFA(r.Context(), c, a.user, a.session.MFAAt != nil, id, r.PostFormValue("reason"))
	})
}

func (s *Server) pageDeskRemoveFactor(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskAction(w, r, a, "removed", func(id int64, c login.Client) error {
		return s.support.RemoveFactor(r.Context(), c, a.user, a.session.MFAAt != nil, id, r.PostFormValue("factor"), r.PostFormValue("reason"))
	})
}

func (s *Server) pageDeskReply(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskAction(w, r, a, "replied", func(id int64, c login.Client) error {
		_, err := s.support.Reply(r.Context(), c, a.user, id, r.PostFormValue("message"), latchkey.TicketStatus(r.PostFormValue("status")))
		return err
	})
}

func (s *Server) pageDeskStatus(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskAction(w, r, a, "status", func(id int64, c login.Client) error {
		_, err := s.support.SetStatus(r.Context(), c, a.user, id, latchkey.TicketStatus(r.PostFormValue("status")), r.PostFormValue("reason"))
		return err
	})
}

// deskInviteMailFailed is the outcome of a create-user action whose account was created but
// whose activation mail could not be sent: the ticket page says so and what can be done.
const deskInviteMailFailed = "invite-mail-failed"

func (s *Server) pageDeskInvite(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.deskActionAs(w, r, a, func(id int64, c login.Client) (string, error) {
		u, err := s.support.InviteUser(r.Context(), c, a.user, id, r.PostFormValue("username"), r.PostFormValue("reason"))
		if u != nil && err != nil {
			// The account exists and the ticket recorded it; the mail's failure was logged
			// where it happened (login). Not a failure of the action, and not an error page:
			// the ticket, now showing the account, says what happened and what to do.
			return deskInviteMailFailed, nil
		}
		return "invited", err
	})
}

// AgeOf says how long ago t was, for the queue: "5 min", "3 h", "2 days".
func (q queueView) AgeOf(t time.Time) string {
	d := q.Now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

// Checked reports whether the identity check id is recorded on the ticket.
func (d deskView) Checked(id string) bool { return slices.Contains(d.Ticket.Checks, id) }

// CannotAct says why the agent may not act on the account, "" when they may.
func (d deskView) CannotAct() string {
	if d.CanAct == nil {
		return ""
	}
	return latchkey.ErrorMessage(d.CanAct)
}

// SignInStep names the step of a sign-in audit event for people.
func (d deskView) SignInStep(action string) string {
	switch action {
	case latchkey.ActionLogin:
		return "Password"
	case latchkey.ActionLoginTOTP:
		return "Authenticator code"
	case latchkey.ActionLoginRecovery:
		return "Recovery code"
	case latchkey.ActionLoginPush:
		return "Latch push"
	case latchkey.ActionLoginWebAuthn:
		return "Security key"
	case latchkey.ActionLoginPasskey:
		return "Passkey"
	}
	return action
}

// OutcomeLabel says an audit outcome in words.
func (d deskView) OutcomeLabel(outcome string) string {
	switch outcome {
	case latchkey.OutcomeSuccess:
		return "OK"
	case latchkey.OutcomeFailure:
		return "Failed"
	case latchkey.OutcomeDenied:
		return "Denied"
	case latchkey.OutcomePasswordOK:
		return "Password OK"
	}
	return outcome
}
