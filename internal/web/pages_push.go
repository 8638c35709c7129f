package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// securityView is what the Security page shows: the factors' status and the Latch devices.
type securityView struct {
	*login.Status
	Devices []*latchkey.Device
	List    []login.Factor // every factor, the primary first
	Apps    []application  // connected third-party applications (oidc.go)
	// Sessions is the "Where you're signed in" panel (sessions.go).
	Sessions *sessionsView
}

type pushView struct {
	ChallengeID string
	Number      string
	Message     string
	Ended       bool // denied or expired: offer a new request
	TOTP        bool
	Recovery    bool
}

// renderPush shows the waiting page of a push sign-in.
func (s *Server) renderPush(w http.ResponseWriter, r *http.Request, code int, next string, pv pushView) error {
	_, methods, err := s.login.Flow(r.Context(), s.token(r))
	if err != nil {
		return s.render(w, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: latchkey.ErrorMessage(err), Next: next, Data: map[string]string{}})
	}
	pv.TOTP, pv.Recovery = contains(methods, latchkey.MethodTOTP), contains(methods, latchkey.MethodRecovery)
	return s.render(w, code, "push", &view{Title: "Approve on your device", Next: next, Data: pv})
}

// pageLoginPush sends a push and shows the number to type.
func (s *Server) pageLoginPush(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	ch, err := s.login.BeginPush(r.Context(), client(r), s.token(r), 0, "")
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		writeRetryAfter(w, err)
		if latchkey.ErrorCode(err) == latchkey.EFlowExpired {
			return s.render(w, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: latchkey.ErrorMessage(err), Next: next, Data: map[string]string{}})
		}
		return s.codeStep(w, r, "code", "Two-factor authentication", status(latchkey.ErrorCode(err)), &view{Next: next, Error: latchkey.ErrorMessage(err)})
	}
	return s.renderPush(w, r, http.StatusOK, next, pushView{ChallengeID: ch.ID, Number: ch.Number})
}

// pageLoginPushCheck is the page's answer without JavaScript: "I've approved it, continue".
func (s *Server) pageLoginPushCheck(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	id := r.PostFormValue("challenge")
	state, err := s.pushState(w, r, id, 0)
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EInternal {
			return err
		}
		return s.render(w, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: latchkey.ErrorMessage(err), Next: next, Data: map[string]string{}})
	}
	switch state {
	case latchkey.PushApproved:
		http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
		return nil
	case latchkey.PushDenied:
		return s.renderPush(w, r, http.StatusUnauthorized, next, pushView{ChallengeID: id, Message: "The request was denied. Send a new one, or use another method.", Ended: true})
	case latchkey.PushExpired:
		return s.renderPush(w, r, http.StatusUnauthorized, next, pushView{ChallengeID: id, Message: "The request expired. Send a new one, or use another method.", Ended: true})
	}
	return s.renderPush(w, r, http.StatusOK, next, pushView{ChallengeID: id, Message: "Still waiting for your approval. Approve the request in Latch, then continue."})
}

type deviceAddView struct {
	Code             string
	QRPNG            string
	ExpiresAt        time.Time
	Server           string
	ApprovalRequired bool
	Primary          string
}

func (s *Server) pageDeviceAdd(w http.ResponseWriter, r *http.Request, a *auth) error {
	// The password here; the POST decides whether a second factor is needed as well.
	if reauthRedirect(w, r, s.login.RecentPassword(a.session), "/settings/security/devices/add") {
		return nil
	}
	return s.render(w, http.StatusOK, "device_add", &view{Title: "Add authenticator app", User: a.user, Data: deviceAddView{}})
}

func (s *Server) pageDeviceAddPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	act, err := s.createActivation(r.Context(), r, a)
	if reauthRedirect(w, r, err, "/settings/security/devices/add") {
		return nil
	} else if err != nil {
		return err
	}
	v := deviceAddView{Code: act.Code, QRPNG: act.QRPNG, ExpiresAt: act.ExpiresAt, Server: s.publicURL.String(), ApprovalRequired: act.ApprovalRequired}
	if devs, err := s.push.UserDevices(r.Context(), a.user); err == nil {
		for _, d := range devs {
			if d.Primary {
				v.Primary = d.Name
			}
		}
	}
	return s.render(w, http.StatusOK, "device_add", &view{Title: "Add authenticator app", User: a.user, Data: v})
}

func (s *Server) devicePageAction(f func(r *http.Request, a *auth, id int64) error, done string) authedPageFunc {
	return func(w http.ResponseWriter, r *http.Request, a *auth) error {
		if err := form(r); err != nil {
			return err
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return latchkey.Errorf(latchkey.ENotFound, "There is no such device on your account.")
		}
		if err := f(r, a, id); err != nil {
			if reauthRedirect(w, r, err, "/settings/security") {
				return nil
			}
			if latchkey.ErrorCode(err) == latchkey.EInternal {
				return err
			}
			return s.renderSecurity(w, r, a, status(latchkey.ErrorCode(err)), latchkey.ErrorMessage(err))
		}
		http.Redirect(w, r, "/settings/security?done="+done+"#factors", http.StatusSeeOther)
		return nil
	}
}

func (s *Server) pageDeviceRename(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.devicePageAction(func(r *http.Request, a *auth, id int64) error {
		return s.push.Rename(r.Context(), pushClient(r), a.user, id, r.PostFormValue("name"))
	}, "device-renamed")(w, r, a)
}

func (s *Server) pageDevicePrimary(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.devicePageAction(func(r *http.Request, a *auth, id int64) error {
		return s.makePrimary(r, a, "device:"+strconv.FormatInt(id, 10))
	}, "device-primary")(w, r, a)
}

func (s *Server) pageDeviceRemove(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.devicePageAction(func(r *http.Request, a *auth, id int64) error {
		return s.removeDevice(r.Context(), r, a, id)
	}, "device-removed")(w, r, a)
}

func (s *Server) renderSecurity(w http.ResponseWriter, r *http.Request, a *auth, code int, errMsg string) error {
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return err
	}
	devs, err := s.push.UserDevices(r.Context(), a.user)
	if err != nil {
		return err
	}
	fs, err := s.login.Factors(r.Context(), a.user)
	if err != nil {
		return err
	}
	apps, err := s.applications(r, a.user)
	if err != nil {
		return err
	}
	sv, err := s.sessionsView(r, a)
	if err != nil {
		return err
	}
	// Dates in the user's time zone (Settings › Account), as the sessions' times are.
	loc := s.login.Location(a.user)
	for i := range fs {
		fs[i].AddedAt = fs[i].AddedAt.In(loc)
		if t := fs[i].LastUsedAt; t != nil {
			l := t.In(loc)
			fs[i].LastUsedAt = &l
		}
	}
	for i := range apps {
		apps[i].Since = apps[i].Since.In(loc)
	}
	return s.render(w, code, "security", &view{Title: "Security", User: a.user, Flash: flash(r), Error: errMsg, Data: securityView{Status: st, Devices: devs, List: fs, Apps: apps, Sessions: sv}})
}
