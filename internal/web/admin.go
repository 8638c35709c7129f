package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/oidc"
)

// AdminStore is what the admin console reads: users, sessions, statistics, the audit trail
// and the registered applications.
type AdminStore interface {
	latchkey.AdminStore
	latchkey.AuditStore
	latchkey.UserStore
	latchkey.InvitationStore
	FindOIDCClients(ctx latchkey.Context) ([]*latchkey.OIDCClient, error)
}

// AdminOptions are the admin console's dependencies. Without a Store the console is not
// mounted (only /activate, which needs none).
type AdminOptions struct {
	Store AdminStore
	// Tickets feeds the dashboard's "open tickets by age"; nil shows "Support desk not set up".
	Tickets latchkey.TicketStats
	// ConfigSource says where the policy is configured, shown on the policy page (e.g. the
	// config file's path). Empty: "the configuration file (--config) or LATCHKEY_* variables".
	ConfigSource string
}

// AdminRoute is one route of the admin console: every /admin page and action is registered
// through the table of adminRoutes, so that authorization is checked in one place and a test
// can iterate over all of them.
type AdminRoute struct {
	Method  string
	Pattern string
	// MinRole is the least role that may use the route: RoleAdmin, or RoleSupport for the
	// dashboard (which sends agents on to their ticket queue).
	MinRole latchkey.Role
	handler authedPageFunc
}

// AdminRoutes lists the admin console's routes.
func (s *Server) AdminRoutes() []AdminRoute {
	admin := latchkey.RoleAdmin
	return []AdminRoute{
		{"GET", "/admin", latchkey.RoleSupport, s.adminDashboard},
		{"GET", "/admin/users", admin, s.adminUsers},
		{"GET", "/admin/users/new", admin, s.adminUserNew},
		{"POST", "/admin/users", admin, s.adminUserCreate},
		{"GET", "/admin/users/{id}", admin, s.adminUser},
		{"POST", "/admin/users/{id}/disable", admin, s.adminUserAction(actDisable)},
		{"POST", "/admin/users/{id}/enable", admin, s.adminUserAction(actEnable)},
		{"POST", "/admin/users/{id}/role", admin, s.adminUserAction(actRole)},
		{"POST", "/admin/users/{id}/reset-mfa", admin, s.adminUserAction(actResetMFA)},
		{"POST", "/admin/users/{id}/revoke-sessions", admin, s.adminUserAction(actRevoke)},
		{"POST", "/admin/users/{id}/unlock", admin, s.adminUserAction(actUnlock)},
		{"POST", "/admin/users/{id}/invitation", admin, s.adminUserAction(actResend)},
		{"GET", "/admin/policy", admin, s.adminPolicy},
		{"GET", "/admin/applications", admin, s.adminApps},
		{"POST", "/admin/applications", admin, s.adminAppCreate},
		{"GET", "/admin/audit", admin, s.adminAudit},
	}
}

func roleRank(r latchkey.Role) int {
	switch r {
	case latchkey.RoleAdmin:
		return 2
	case latchkey.RoleSupport:
		return 1
	}
	return 0
}

var errNotAdmin = latchkey.Errorf(latchkey.EForbidden, "This page is for administrators. If you need access, ask an administrator of this Latchkey server.")

// mountAdmin registers the admin console (when it has a store) and the account activation
// page of invited users.
func (s *Server) mountAdmin(mux *http.ServeMux) {
	s.loadAdminPages()
	mux.Handle("GET /activate", s.page(s.pageActivate))
	mux.Handle("POST /activate", s.page(s.pageActivatePost))
	if s.admin.Store == nil {
		return
	}
	for _, rt := range s.AdminRoutes() {
		mux.Handle(rt.Method+" "+rt.Pattern, s.pageAuthed(s.requireRole(rt.MinRole, rt.handler)))
	}
}

func (s *Server) requireRole(min latchkey.Role, f authedPageFunc) authedPageFunc {
	return func(w http.ResponseWriter, r *http.Request, a *auth) error {
		if roleRank(a.user.Role) < roleRank(min) {
			s.audit(r, a.user, latchkey.ActionAdminDenied, latchkey.OutcomeDenied, r.Method+" "+r.URL.Path)
			return errNotAdmin
		}
		return f(w, r, a)
	}
}

// loadAdminPages parses each admin_*.html page with the layout and the shared admin partials
// (admin_partials.html), replacing what loadPages made of them.
func (s *Server) loadAdminPages() {
	funcs := template.FuncMap{
		"pngDataURL": pngDataURL,
		"when":       func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
		"whenPtr": func(t *time.Time) string {
			if t == nil {
				return "never"
			}
			return t.UTC().Format("2 Jan 2006 15:04 UTC")
		},
		"date": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"dur":  humanDuration,
		"join": strings.Join,
		"amr":  amrWords,
		"methodName": func(m string) string {
			return map[string]string{latchkey.MethodTOTP: "Authenticator app", latchkey.MethodPush: "Latch app (push)", latchkey.MethodWebAuthn: "Security key"}[m]
		},
	}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	base = template.Must(base.ParseFS(adminFS, "templates/admin/partials.html"))
	names, err := fs.Glob(adminFS, "templates/admin/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/admin/"), ".html")
		if name == "partials" {
			continue
		}
		if name != "activate" {
			name = "admin_" + name
		}
		s.pages.t[name] = template.Must(template.Must(base.Clone()).ParseFS(adminFS, n))
	}
}

// The admin pages live in their own folder: they use template functions that the other pages
// do not have, and share partials (templates/admin/partials.html).
//
//go:embed templates/admin/*.html
var adminFS embed.FS

// amrWords says how a session authenticated, in words: "Password + Authenticator code".
func amrWords(amr []string) string {
	names := map[string]string{latchkey.AMRPassword: "Password", latchkey.AMROTP: "Code", latchkey.AMRSoftwareKey: "Latch app", latchkey.AMRHardware: "Security key"}
	var out []string
	for _, a := range amr {
		if n, ok := names[a]; ok {
			out = append(out, n)
		} else if a != latchkey.AMRMFA {
			out = append(out, a)
		}
	}
	return strings.Join(out, " + ")
}

// humanDuration says a duration in words: "1 hour", "90 minutes", "3 days".
func humanDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d >= 24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0 && d >= time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0 && d >= time.Minute:
		return plural(int(d/time.Minute), "minute")
	case d%time.Second == 0 && d >= time.Second:
		return plural(int(d/time.Second), "second")
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// adminView is the Data of every admin page: the section for the sub-navigation.
type adminView struct {
	Section string
	Tickets bool // the support desk is set up: link to /admin/tickets
	Page    any
}

func (s *Server) renderAdmin(w http.ResponseWriter, code int, name, title, section string, a *auth, v *view, page any) error {
	if v == nil {
		v = &view{}
	}
	v.Title, v.User = title, a.user
	v.Data = adminView{Section: section, Tickets: s.admin.Tickets != nil, Page: page}
	return s.render(w, code, name, v)
}

// adminFlashes are the fixed messages of ?done= on admin pages.
var adminFlashes = map[string]string{
	"invited":    "The account was created and the activation link was sent.",
	"disabled":   "The account is disabled and its sessions were ended.",
	"enabled":    "The account is enabled.",
	"role":       "The role was changed.",
	"mfa-reset":  "Every second factor of the account was removed, its sessions were ended and the user was told by email.",
	"revoked":    "The account's sessions were ended.",
	"unlocked":   "The account is unlocked.",
	"invitation": "A new activation link was sent; the previous one no longer works.",
}

// ---- Dashboard --------------------------------------------------------------------------

type kpi struct {
	Label, Value, Note, Class string
}

type dashboard struct {
	Adoption    latchkey.FactorAdoption
	WithFactor  int
	Donut       template.HTML
	Shares      template.HTML
	ShareRows   []share
	Day, Week   barChart
	KPIs        []kpi
	Tickets     []latchkey.TicketAge
	TicketChart template.HTML
	TicketsOpen int
	TicketsErr  bool
	Generated   time.Time
}

// signInPrefixes are the audit actions the dashboard counts as sign-ins: the sign-in steps,
// lockouts, and the rollout's enrolment, which is the second step of a sign-in under
// MFARequired for a user who had no factor yet.
var signInPrefixes = []string{"login.", latchkey.ActionLockout, latchkey.ActionMFAEnrolled}

func (s *Server) adminDashboard(w http.ResponseWriter, r *http.Request, a *auth) error {
	if a.user.Role == latchkey.RoleSupport {
		http.Redirect(w, r, "/admin/tickets", http.StatusSeeOther)
		return nil
	}
	ctx := r.Context()
	now := s.now().UTC()
	d := &dashboard{Generated: now}
	var err error
	if d.Adoption, err = s.admin.Store.FactorAdoption(ctx); err != nil {
		return err
	}
	ad := d.Adoption
	d.WithFactor = ad.Users - ad.NoFactor
	d.Donut = donut("adoption-donut", "Users with a second factor", d.WithFactor, ad.Users)
	d.ShareRows = []share{
		{"Authenticator app", "s-totp", ad.TOTP, ad.Users},
		{"Latch app", "s-latch", ad.Latch, ad.Users},
		{"Security key", "s-key", ad.Key, ad.Users},
		{"No second factor", "s-none", ad.NoFactor, ad.Users},
	}
	d.Shares = shareChart("adoption", "MFA adoption by factor", fmt.Sprintf("Share of %d active users with each kind of second factor; a user with several kinds counts in each.", ad.Users), d.ShareRows)

	// Last 24 hours, hourly; last 7 days, daily (UTC).
	hourStart := now.Truncate(time.Hour).Add(-23 * time.Hour)
	dayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -6)
	hourly, err := s.admin.Store.CountAuditEvents(ctx, signInPrefixes, hourStart, time.Hour)
	if err != nil {
		return err
	}
	daily, err := s.admin.Store.CountAuditEvents(ctx, signInPrefixes, dayStart, 24*time.Hour)
	if err != nil {
		return err
	}
	d.Day = bucketChart("day", "Sign-ins in the last 24 hours", hourly, hourStart, time.Hour, 24, func(t time.Time) string { return t.Format("15:00") })
	d.Day.Tick = func(i int) bool { return i%3 == 0 }
	d.Week = bucketChart("week", "Sign-ins in the last 7 days", daily, dayStart, 24*time.Hour, 7, func(t time.Time) string { return t.Format("Mon 2") })
	ok24, fail24, den24 := d.Day.Series[0].Total(), d.Day.Series[1].Total(), d.Day.Series[2].Total()
	ok7, den7 := d.Week.Series[0].Total(), d.Week.Series[2].Total()
	rate := func(ok, fail int) string {
		if ok+fail == 0 {
			return "no attempts"
		}
		return fmt.Sprintf("%d%% of attempts failed", (100*fail+(ok+fail)/2)/(ok+fail))
	}
	d.KPIs = []kpi{
		{"Sign-ins, 24 h", strconv.Itoa(ok24), fmt.Sprintf("%d in 7 days", ok7), "k-ok"},
		{"Failed attempts, 24 h", strconv.Itoa(fail24), rate(ok24, fail24), "k-fail"},
		{"Throttled or locked, 24 h", strconv.Itoa(den24), fmt.Sprintf("%d in 7 days", den7), "k-denied"},
		{"Users without MFA", strconv.Itoa(ad.NoFactor), fmt.Sprintf("of %d active users", ad.Users), "k-warn"},
	}
	if ad.AwaitingActivation > 0 {
		// Invited accounts have not signed in yet: apart, not among the users without MFA.
		d.KPIs[3].Note += fmt.Sprintf("; %d awaiting activation", ad.AwaitingActivation)
	}
	if s.admin.Tickets != nil {
		ages, err := s.admin.Tickets.TicketStats(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "ticket stats", "err", err)
			d.TicketsErr = true
		}
		d.Tickets = ages
		c := barChart{ID: "tickets", Title: "Open tickets by age", Series: []series{{Name: "Open tickets", Class: "b-ticket"}}}
		for _, t := range ages {
			c.Labels = append(c.Labels, t.Label)
			c.Series[0].Values = append(c.Series[0].Values, t.Count)
			d.TicketsOpen += t.Count
		}
		c.Desc = fmt.Sprintf("%d open tickets, by how long they have been open.", d.TicketsOpen)
		d.TicketChart = c.SVG()
	}
	return s.renderAdmin(w, http.StatusOK, "admin_dashboard", "Admin", "dashboard", a, nil, d)
}

// bucketChart turns audit counts into a chart of n buckets from start.
func bucketChart(id, title string, counts []latchkey.AuditCount, start time.Time, width time.Duration, n int, label func(time.Time) string) barChart {
	c := barChart{ID: id, Title: title, Series: []series{
		{Name: "Sign-ins", Class: "b-ok", Values: make([]int, n)},
		{Name: "Failures", Class: "b-fail", Values: make([]int, n)},
		{Name: "Throttled", Class: "b-denied", Values: make([]int, n)},
	}}
	for i := range n {
		c.Labels = append(c.Labels, label(start.Add(time.Duration(i)*width)))
	}
	for _, x := range counts {
		i := int(x.Bucket.Sub(start) / width)
		if i < 0 || i >= n {
			continue
		}
		switch x.Outcome {
		case latchkey.OutcomeSuccess:
			c.Series[0].Values[i] += x.N
		case latchkey.OutcomeFailure:
			c.Series[1].Values[i] += x.N
		case latchkey.OutcomeDenied:
			c.Series[2].Values[i] += x.N
		}
	}
	c.Desc = fmt.Sprintf("%d completed sign-ins, %d failed attempts and %d throttled or locked attempts; the table below has the numbers.", c.Series[0].Total(), c.Series[1].Total(), c.Series[2].Total())
	return c
}

// ---- Users --------------------------------------------------------------------------------

const usersPerPage = 25

type userRow struct {
	*latchkey.User
	Invited bool // never activated
	Expired bool // ... and the activation link expired
	Factors latchkey.FactorKinds
}

type usersPage struct {
	Query      string
	NoMFA      bool // only users without a second factor
	Rows       []userRow
	Total      int
	Page, Last int
	PrevURL    string
	NextURL    string
}

func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request, a *auth) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		return latchkey.Errorf(latchkey.EInvalid, "The search is too long (at most 200 characters).")
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	noMFA := r.URL.Query().Get("mfa") == "none"
	users, total, err := s.admin.Store.SearchUsers(r.Context(), latchkey.UserSearch{Query: q, WithoutFactor: noMFA, Offset: (page - 1) * usersPerPage, Limit: usersPerPage})
	if err != nil {
		return err
	}
	ids := make([]latchkey.UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	pending, err := s.admin.Store.PendingInvitations(r.Context(), ids, time.Unix(0, 0))
	if err != nil {
		return err
	}
	kinds, err := s.admin.Store.FindFactorKinds(r.Context(), ids)
	if err != nil {
		return err
	}
	p := &usersPage{Query: q, NoMFA: noMFA, Total: total, Page: page, Last: max(1, (total+usersPerPage-1)/usersPerPage)}
	for _, u := range users {
		end, inv := pending[u.ID]
		p.Rows = append(p.Rows, userRow{User: u, Invited: inv, Expired: inv && !s.now().Before(end), Factors: kinds[u.ID]})
	}
	link := func(n int) string {
		v := url.Values{"page": {strconv.Itoa(n)}}
		if q != "" {
			v.Set("q", q)
		}
		if noMFA {
			v.Set("mfa", "none")
		}
		return "/admin/users?" + v.Encode()
	}
	if page > 1 {
		p.PrevURL = link(page - 1)
	}
	if page < p.Last {
		p.NextURL = link(page + 1)
	}
	return s.renderAdmin(w, http.StatusOK, "admin_users", "Users", "users", a, &view{Flash: adminFlashes[r.URL.Query().Get("done")]}, p)
}

type newUserForm struct {
	Username, Email string
	Role            latchkey.Role
	Roles           []latchkey.Role
	NoMFA           bool // the admin's session has no second factor: users only
}

var roles = []latchkey.Role{latchkey.RoleUser, latchkey.RoleSupport, latchkey.RoleAdmin}

// newUserRoles is the roles the new-user form offers: an administrator whose session passed no
// second factor may create plain users only (login.InviteUser refuses the others).
func newUserRoles(a *auth) ([]latchkey.Role, bool) {
	if a.session.MFAAt == nil {
		return []latchkey.Role{latchkey.RoleUser}, true
	}
	return roles, false
}

func (s *Server) adminUserNew(w http.ResponseWriter, r *http.Request, a *auth) error {
	f := newUserForm{Role: latchkey.RoleUser}
	f.Roles, f.NoMFA = newUserRoles(a)
	return s.renderAdmin(w, http.StatusOK, "admin_user_new", "Create a user", "users", a, nil, f)
}

func (s *Server) adminUserCreate(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	f := newUserForm{Username: r.PostFormValue("username"), Email: r.PostFormValue("email"), Role: latchkey.Role(r.PostFormValue("role"))}
	f.Roles, f.NoMFA = newUserRoles(a)
	u, err := s.login.InviteUser(r.Context(), client(r), a.user, a.session.MFAAt != nil, f.Username, f.Email, f.Role)
	if err != nil {
		if u != nil { // created, but the mail failed: show the account and the message
			return s.adminUserPage(w, r, a, u.ID, http.StatusInternalServerError, &view{Error: latchkey.ErrorMessage(err)})
		}
		code := latchkey.ErrorCode(err)
		if code == latchkey.EInternal {
			return err
		}
		v := &view{}
		msg := latchkey.ErrorMessage(err)
		switch {
		case code == latchkey.EConflict:
			v.Fields = map[string]string{"username": msg}
		case code == latchkey.EInvalid:
			parts := strings.SplitAfter(msg, ".")
			for _, field := range []string{"username", "email", "role"} { // the form's order
				for _, part := range parts {
					if part = strings.TrimSpace(part); strings.Contains(part, field) {
						v.addField(field, part)
						break
					}
				}
			}
			v.Error = "Check the fields marked below."
		default:
			v.Error = msg
		}
		return s.renderAdmin(w, status(code), "admin_user_new", "Create a user", "users", a, v, f)
	}
	http.Redirect(w, r, fmt.Sprintf("/admin/users/%d?done=invited", u.ID), http.StatusSeeOther)
	return nil
}

type userPage struct {
	Target    *latchkey.User
	Self      bool
	Invited   bool
	InviteEnd time.Time
	// InviteExpired: never activated, and the link expired. InviteMailFailed: the mail with
	// the latest link could not be sent, so the user has no link (until a new one is sent).
	InviteExpired    bool
	InviteMailFailed bool
	Factors          []login.Factor
	// HasFactor: the account has a second factor that Reset MFA would remove
	// (login.HasSecondFactor); without one the page offers no reset.
	HasFactor bool
	Sessions  []*latchkey.Session
	Lock      login.Lock
	Throttled bool
	Roles     []latchkey.Role
	Reason    string
	// NoMFA: the administrator's own session passed no second factor, so role changes and
	// MFA resets are refused (the page says so instead of offering them).
	NoMFA bool
}

func pathUserID(r *http.Request) (latchkey.UserID, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, latchkey.Errorf(latchkey.ENotFound, "There is no such user.")
	}
	return latchkey.UserID(id), nil
}

func (s *Server) adminUser(w http.ResponseWriter, r *http.Request, a *auth) error {
	id, err := pathUserID(r)
	if err != nil {
		return err
	}
	return s.adminUserPage(w, r, a, id, http.StatusOK, &view{Flash: adminFlashes[r.URL.Query().Get("done")]})
}

func (s *Server) adminUserPage(w http.ResponseWriter, r *http.Request, a *auth, id latchkey.UserID, code int, v *view) error {
	ctx := r.Context()
	u, err := s.admin.Store.FindUserByID(ctx, id)
	if latchkey.ErrorCode(err) == latchkey.ENotFound {
		return latchkey.Errorf(latchkey.ENotFound, "There is no such user.")
	} else if err != nil {
		return err
	}
	p := &userPage{Target: u, Self: u.ID == a.user.ID, Roles: roles, NoMFA: a.session.MFAAt == nil}
	if p.Factors, err = s.login.Factors(ctx, u); err != nil {
		return err
	}
	if p.HasFactor, err = s.login.HasSecondFactor(ctx, u); err != nil {
		return err
	}
	if p.Sessions, err = s.admin.Store.FindSignedInSessions(ctx, u.ID, s.now()); err != nil {
		return err
	}
	// An invitation, expired or not, means the account was never activated.
	inv, err := s.admin.Store.FindInvitationByUserID(ctx, u.ID)
	if err != nil && latchkey.ErrorCode(err) != latchkey.ENotFound {
		return err
	}
	if p.Invited = inv != nil; p.Invited {
		p.InviteEnd, p.InviteMailFailed = inv.ExpiresAt, inv.MailFailedAt != nil
		p.InviteExpired = !s.now().Before(p.InviteEnd)
	}
	if p.Lock, err = s.login.LockState(ctx, u); err != nil {
		return err
	}
	p.Throttled = p.Lock.Throttled(s.now())
	p.Reason = v.reason
	return s.renderAdmin(w, code, "admin_user", u.Username, "users", a, v, p)
}

type userAction int

const (
	actDisable userAction = iota
	actEnable
	actRole
	actResetMFA
	actRevoke
	actUnlock
	actResend
)

// adminUserAction runs one POST action on a user and returns to the user's page with a
// message; a refusal shows the page again with the reason and the matching status.
func (s *Server) adminUserAction(act userAction) authedPageFunc {
	return func(w http.ResponseWriter, r *http.Request, a *auth) error {
		id, err := pathUserID(r)
		if err != nil {
			return err
		}
		if err := form(r); err != nil {
			return err
		}
		ctx, c := r.Context(), client(r)
		var done string
		switch act {
		case actDisable:
			err, done = errOnly(s.login.AdminSetDisabled(ctx, c, a.user, id, true)), "disabled"
		case actEnable:
			err, done = errOnly(s.login.AdminSetDisabled(ctx, c, a.user, id, false)), "enabled"
		case actRole:
			err, done = errOnly(s.login.AdminSetRole(ctx, c, a.user, a.session.MFAAt != nil, id, latchkey.Role(r.PostFormValue("role")))), "role"
		case actResetMFA:
			err, done = s.login.AdminResetMFA(ctx, c, a.user, a.session.MFAAt != nil, id, r.PostFormValue("reason")), "mfa-reset"
		case actRevoke:
			err, done = s.login.AdminRevokeSessions(ctx, c, a.user, a.session.ID, id), "revoked"
		case actUnlock:
			err, done = s.login.AdminUnlock(ctx, c, a.user, id), "unlocked"
		case actResend:
			err, done = s.login.ResendInvitation(ctx, c, a.user, id), "invitation"
		}
		if err != nil {
			code := latchkey.ErrorCode(err)
			if code == latchkey.EInternal || code == latchkey.ENotFound || code == latchkey.EForbidden {
				return err
			}
			v := &view{Error: latchkey.ErrorMessage(err)}
			// A refused reason goes beside the field; any other refusal of a reset (an account
			// with nothing to reset, whose page has no form) above the page.
			if act == actResetMFA && code == latchkey.EInvalid {
				v.Error = ""
				v.addField("reason", latchkey.ErrorMessage(err))
				v.reason = r.PostFormValue("reason")
			}
			return s.adminUserPage(w, r, a, id, status(code), v)
		}
		http.Redirect(w, r, fmt.Sprintf("/admin/users/%d?done=%s", id, done), http.StatusSeeOther)
		return nil
	}
}

// errOnly keeps the error of a (value, error) result.
func errOnly[T any](_ T, err error) error { return err }

// ---- Policy -------------------------------------------------------------------------------

type policyPage struct {
	login.Policy
	Source string
}

func (s *Server) adminPolicy(w http.ResponseWriter, r *http.Request, a *auth) error {
	src := s.admin.ConfigSource
	if src == "" {
		src = "the configuration file given with --config (LATCHKEY_CONFIG), overridden by LATCHKEY_* environment variables"
	}
	return s.renderAdmin(w, http.StatusOK, "admin_policy", "Policy", "policy", a, nil, policyPage{Policy: s.login.Policy(), Source: src})
}

// ---- Applications -------------------------------------------------------------------------

type appsPage struct {
	Enabled bool
	Clients []*latchkey.OIDCClient
	Created *latchkey.OIDCClient
	Secret  string
	Form    map[string]string
}

func (s *Server) appsPage(ctx context.Context) (*appsPage, error) {
	p := &appsPage{Enabled: s.oidc != nil, Form: map[string]string{}}
	if !p.Enabled {
		return p, nil
	}
	var err error
	p.Clients, err = s.admin.Store.FindOIDCClients(ctx)
	return p, err
}

func (s *Server) adminApps(w http.ResponseWriter, r *http.Request, a *auth) error {
	p, err := s.appsPage(r.Context())
	if err != nil {
		return err
	}
	return s.renderAdmin(w, http.StatusOK, "admin_apps", "Applications", "apps", a, nil, p)
}

func (s *Server) adminAppCreate(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	if s.oidc == nil {
		return latchkey.Errorf(latchkey.ENotFound, "The OpenID Connect provider is not enabled on this server.")
	}
	nc := oidc.NewClient{
		ID:           strings.TrimSpace(r.PostFormValue("client_id")),
		Name:         strings.TrimSpace(r.PostFormValue("name")),
		RedirectURIs: strings.Fields(r.PostFormValue("redirect_uris")),
		Public:       r.PostFormValue("public") == "on",
		RequireMFA:   r.PostFormValue("require_mfa") == "on",
		CreatedBy:    a.user,
	}
	// The provider audits the registration, with the administrator and where from.
	c, secret, err := s.oidc.CreateClient(s.oidcContext(r), nc)
	p, perr := s.appsPage(r.Context())
	if perr != nil {
		return perr
	}
	if err != nil {
		code := latchkey.ErrorCode(err)
		if code == latchkey.EInternal {
			return err
		}
		p.Form = map[string]string{"client_id": nc.ID, "name": nc.Name, "redirect_uris": r.PostFormValue("redirect_uris")}
		s.audit(r, a.user, latchkey.ActionClientCreated, latchkey.OutcomeFailure, "client "+nc.ID+": "+latchkey.ErrorMessage(err))
		return s.renderAdmin(w, status(code), "admin_apps", "Applications", "apps", a, &view{Error: latchkey.ErrorMessage(err)}, p)
	}
	// The secret is shown in this response only; it is not stored.
	p.Created, p.Secret = c, secret
	return s.renderAdmin(w, http.StatusCreated, "admin_apps", "Applications", "apps", a, nil, p)
}

// audit records an action of the admin console or the support desk taken (or refused) in
// this package: the actor is the event's actor and its user.
func (s *Server) audit(r *http.Request, actor *latchkey.User, action, outcome, detail string) {
	if s.admin.Store == nil {
		return
	}
	_ = audit.New(s.admin.Store, s.log, s.now).Record(r.Context(), latchkey.AuditEvent{
		UserID: actor.ID, Username: actor.Username, ActorID: actor.ID, Actor: actor.Username,
		Action: action, Outcome: outcome, IP: clientIP(r), UserAgent: userAgent(r), Detail: detail,
	})
}

// ---- Audit trail --------------------------------------------------------------------------

const auditPerPage = 50

type auditPage struct {
	Filter   map[string]string
	Events   []*latchkey.AuditEvent
	NextURL  string
	FirstURL string
	Chain    audit.Report
	ChainErr bool
	Outcomes []string
}

func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request, a *auth) error {
	qv := r.URL.Query()
	f := map[string]string{}
	for _, k := range []string{"user", "by", "action", "outcome", "from", "to"} {
		f[k] = strings.TrimSpace(qv.Get(k))
		if len(f[k]) > 100 {
			return latchkey.Errorf(latchkey.EInvalid, "The %s filter is too long (at most 100 characters).", k)
		}
	}
	q := latchkey.AuditQuery{Username: login.NormalizeUsername(f["user"]), Actor: login.NormalizeUsername(f["by"]), Action: f["action"], Outcome: f["outcome"], Limit: auditPerPage + 1}
	var err error
	if f["from"] != "" {
		if q.Since, err = time.Parse("2006-01-02", f["from"]); err != nil {
			return latchkey.Errorf(latchkey.EInvalid, "The start date must look like 2026-11-23.")
		}
	}
	if f["to"] != "" {
		if q.Until, err = time.Parse("2006-01-02", f["to"]); err != nil {
			return latchkey.Errorf(latchkey.EInvalid, "The end date must look like 2026-11-23.")
		}
		q.Until = q.Until.AddDate(0, 0, 1) // the end date is included
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return latchkey.Errorf(latchkey.EInvalid, "The start date must not be after the end date.")
	}
	if b := qv.Get("before"); b != "" {
		if q.BeforeID, err = strconv.ParseInt(b, 10, 64); err != nil || q.BeforeID <= 0 {
			return latchkey.Errorf(latchkey.EInvalid, "The page marker is not valid.")
		}
	}
	events, err := s.admin.Store.QueryAuditEvents(r.Context(), q)
	if err != nil {
		return err
	}
	p := &auditPage{Filter: f, Outcomes: []string{latchkey.OutcomeSuccess, latchkey.OutcomeFailure, latchkey.OutcomeDenied, latchkey.OutcomePasswordOK}}
	link := url.Values{}
	for k, v := range f {
		if v != "" {
			link.Set(k, v)
		}
	}
	if len(events) > auditPerPage {
		events = events[:auditPerPage]
		next := url.Values{}
		for k, v := range link {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		p.NextURL = "/admin/audit?" + next.Encode()
	}
	if q.BeforeID > 0 {
		p.FirstURL = "/admin/audit?" + link.Encode()
	}
	p.Events = events
	if p.Chain, err = audit.Verify(r.Context(), s.admin.Store); err != nil {
		s.log.ErrorContext(r.Context(), "verify audit chain", "err", err)
		p.ChainErr = true
	}
	return s.renderAdmin(w, http.StatusOK, "admin_audit", "Audit trail", "audit", a, nil, p)
}

// ---- Account activation (invited users) ---------------------------------------------------

func (s *Server) pageActivate(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("token")
	u, err := s.login.Invitation(r.Context(), tok)
	if err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "activate", &view{Title: "Activate your account", Data: s.activateData(tok, u)})
}

func (s *Server) activateData(tok string, u *latchkey.User) map[string]any {
	p := s.login.Policy()
	return map[string]any{"Token": tok, "Username": u.Username, "Min": p.PasswordMin, "MFARequired": p.MFA == login.MFARequired}
}

func (s *Server) pageActivatePost(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	tok := r.PostFormValue("token")
	pw := r.PostFormValue("password")
	u, err := s.login.Invitation(r.Context(), tok)
	if err != nil {
		return err
	}
	data := s.activateData(tok, u)
	if pw != r.PostFormValue("confirm") {
		return s.render(w, http.StatusBadRequest, "activate", &view{Title: "Activate your account", Fields: map[string]string{"confirm": "The two passwords are not the same."}, Data: data})
	}
	res, err := s.login.Activate(r.Context(), client(r), s.token(r), tok, pw)
	if err != nil {
		if code := latchkey.ErrorCode(err); code == latchkey.EWeakPassword || code == latchkey.EInvalid {
			return s.render(w, status(code), "activate", &view{Title: "Activate your account", Fields: map[string]string{"password": latchkey.ErrorMessage(err)}, Data: data})
		}
		return err
	}
	s.setSession(w, res)
	if res.State == latchkey.StateEnroll {
		http.Redirect(w, r, enrollURL(""), http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/settings/security?done=activated", http.StatusSeeOther)
	return nil
}
