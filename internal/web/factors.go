package web

import (
	"net/http"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// The Security page's one list of factors: every authenticator app, Latch device and security
// key, which one is primary, rename. Removing stays with each kind (its own rules and mails).

// makePrimary makes the factor ref the one offered first. For a Latch device, the push
// service makes it the device pushes go to, then the user's choice of push is recorded.
func (s *Server) makePrimary(r *http.Request, a *auth, ref string) error {
	kind, id, err := login.ParseFactorRef(ref)
	if err != nil {
		return err
	}
	if kind == login.KindDevice {
		if err := s.push.MakePrimary(r.Context(), pushClient(r), a.user, id); err != nil {
			return err
		}
	}
	return s.login.SetPrimaryFactor(r.Context(), client(r), a.user, ref)
}

func (s *Server) apiFactors(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	fs, err := s.login.Factors(r.Context(), a.user)
	if err != nil {
		return nil, err
	}
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return nil, err
	}
	if fs == nil {
		fs = []login.Factor{}
	}
	return map[string]any{"factors": fs, "recovery_codes_left": st.RecoveryCodesLeft}, nil
}

func (s *Server) apiPrimaryFactor(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req struct {
		Factor string `json:"factor"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"factor", req.Factor}); err != nil {
		return nil, err
	}
	if err := s.makePrimary(r, a, req.Factor); err != nil {
		return nil, err
	}
	return s.apiFactors(w, r, a)
}

func (s *Server) apiRenameTOTP(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	id, err := factorID(r, "There is no such authenticator app.")
	if err != nil {
		return nil, err
	}
	return rename(r, func(name string) error { return s.login.RenameTOTP(r.Context(), client(r), a.user, id, name) })
}

// rename reads a rename request's {"name": …} and gives the name to do.
func rename(r *http.Request, do func(name string) error) (any, error) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := do(req.Name); err != nil {
		return nil, err
	}
	return map[string]bool{"renamed": true}, nil
}

func factorID(r *http.Request, notFound string) (int64, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, latchkey.Errorf(latchkey.ENotFound, "%s", notFound)
	}
	return id, nil
}

// pageFactorAction runs a form action of the factor list and returns to the Security page,
// showing a refusal there.
func (s *Server) pageFactorAction(f func(r *http.Request, a *auth) error, done string) authedPageFunc {
	return func(w http.ResponseWriter, r *http.Request, a *auth) error {
		if err := form(r); err != nil {
			return err
		}
		if err := f(r, a); err != nil {
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

func (s *Server) pagePrimary(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.pageFactorAction(func(r *http.Request, a *auth) error {
		return s.makePrimary(r, a, r.PostFormValue("factor"))
	}, "primary")(w, r, a)
}

func (s *Server) pageTOTPRename(w http.ResponseWriter, r *http.Request, a *auth) error {
	return s.pageFactorAction(func(r *http.Request, a *auth) error {
		id, err := factorID(r, "There is no such authenticator app.")
		if err != nil {
			return err
		}
		return s.login.RenameTOTP(r.Context(), client(r), a.user, id, r.PostFormValue("name"))
	}, "renamed")(w, r, a)
}
