package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
)

// Security keys (WebAuthn), "Reset all MFA" and the rollout (first-factor enrolment under
// mfa: required). The browser side is in static/app.js ([data-webauthn] buttons).

// apiEnrollable is apiAuthed that also admits a sign-in waiting for its first factor
// (StateEnroll), so the rollout page can enrol through the same endpoints; a.enrolling tells.
func (s *Server) apiEnrollable(f authedAPIFunc) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) (any, error) {
		a, err := s.enrollableAuth(r)
		if err != nil {
			return nil, err
		}
		return f(w, r, a)
	})
}

func (s *Server) enrollableAuth(r *http.Request) (*auth, error) {
	tok := s.token(r)
	sess, u, err := s.login.Authenticate(r.Context(), tok)
	if latchkey.ErrorCode(err) == latchkey.EUnauthenticated {
		esess, eu, eerr := s.login.EnrollableFlow(r.Context(), client(r), tok)
		if eerr == nil {
			return &auth{session: esess, user: eu, token: tok, enrolling: true}, nil
		} else if latchkey.ErrorCode(eerr) == latchkey.EForbidden {
			return nil, eerr // a rollout sign-in whose account has a factor now
		}
	}
	if err != nil {
		return nil, err
	}
	return &auth{session: sess, user: u, token: tok}, nil
}

// finishEnrollment signs in a rollout flow after its first factor was set up.
func (s *Server) finishEnrollment(w http.ResponseWriter, r *http.Request, a *auth, amr string) error {
	if !a.enrolling {
		return nil
	}
	res, err := s.login.CompleteEnrollment(r.Context(), client(r), a.token, amr)
	if err != nil {
		return err
	}
	s.setSession(w, res)
	return nil
}

type keyOptionsJSON struct {
	CeremonyID string `json:"ceremony_id"`
	Options    any    `json:"options"`
}

type keyAnswer struct {
	CeremonyID string          `json:"ceremony_id"`
	Name       string          `json:"name,omitempty"`
	Credential json.RawMessage `json:"credential"`
}

func decodeKeyAnswer(r *http.Request) (*keyAnswer, error) {
	var req keyAnswer
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"ceremony_id", req.CeremonyID}, [2]string{"credential", string(req.Credential)}); err != nil {
		return nil, err
	}
	return &req, nil
}

func keyOptions(o *login.KeyOptions, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return keyOptionsJSON{CeremonyID: o.CeremonyID, Options: o.Options}, nil
}

func (s *Server) apiLoginWebAuthn(w http.ResponseWriter, r *http.Request) (any, error) {
	return keyOptions(s.login.BeginWebAuthnLogin(r.Context(), s.token(r)))
}

func (s *Server) apiLoginWebAuthnFinish(w http.ResponseWriter, r *http.Request) (any, error) {
	req, err := decodeKeyAnswer(r)
	if err != nil {
		return nil, err
	}
	res, err := s.login.FinishWebAuthnLogin(r.Context(), client(r), s.token(r), req.CeremonyID, req.Credential)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

func (s *Server) apiLoginPasskey(w http.ResponseWriter, r *http.Request) (any, error) {
	return keyOptions(s.login.BeginPasskeyLogin(r.Context()))
}

func (s *Server) apiLoginPasskeyFinish(w http.ResponseWriter, r *http.Request) (any, error) {
	req, err := decodeKeyAnswer(r)
	if err != nil {
		return nil, err
	}
	res, err := s.login.FinishPasskeyLogin(r.Context(), client(r), s.token(r), req.CeremonyID, req.Credential)
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

func (s *Server) apiKeys(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	return s.login.SecurityKeys(r.Context(), a.user)
}

func (s *Server) apiBeginKey(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	if !s.login.MethodAllowed(latchkey.MethodWebAuthn) {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Your organisation does not allow security keys.")
	}
	return keyOptions(s.login.BeginWebAuthnRegistration(r.Context(), a.session, a.user))
}

func (s *Server) apiFinishKey(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	req, err := decodeKeyAnswer(r)
	if err != nil {
		return nil, err
	}
	codes, err := s.login.FinishWebAuthnRegistration(r.Context(), client(r), a.session, a.user, req.CeremonyID, req.Name, req.Credential)
	if err != nil {
		return nil, err
	}
	if err := s.finishEnrollment(w, r, a, latchkey.AMRHardware); err != nil {
		return nil, err
	}
	out := map[string]any{"added": true, "recovery_codes": codes}
	if a.enrolling {
		out["state"] = latchkey.StateAuthenticated
	}
	return out, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, latchkey.Errorf(latchkey.ENotFound, "There is no such security key.")
	}
	return id, nil
}

func (s *Server) apiRenameKey(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	return rename(r, func(name string) error { return s.login.RenameSecurityKey(r.Context(), client(r), a.user, id, name) })
}

func (s *Server) apiDeleteKey(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	if err := s.login.RemoveSecurityKey(r.Context(), client(r), a.session, a.user, id); err != nil {
		return nil, err
	}
	return map[string]bool{"removed": true}, nil
}

func (s *Server) apiBeginConfirmKey(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	return keyOptions(s.login.BeginConfirmKey(r.Context(), a.session, a.user))
}

func (s *Server) apiResetMFA(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	var req struct {
		Password   string          `json:"password"`
		Code       string          `json:"code"`
		CeremonyID string          `json:"ceremony_id"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required([2]string{"password", req.Password}); err != nil {
		return nil, err
	}
	p := login.ResetProof{Password: req.Password, Code: req.Code, CeremonyID: req.CeremonyID, KeyResponse: req.Credential}
	if err := s.login.ResetAllMFA(r.Context(), client(r), a.session, a.user, p); err != nil {
		return nil, err
	}
	return map[string]bool{"reset": true}, nil
}

// apiEnrollComplete finishes a rollout whose factor was set up elsewhere (a Latch device
// activated with the code the rollout page showed).
func (s *Server) apiEnrollComplete(w http.ResponseWriter, r *http.Request) (any, error) {
	res, err := s.login.CompleteEnrollment(r.Context(), client(r), s.token(r), "") // the factor set up last
	if err != nil {
		return nil, err
	}
	return s.signedIn(w, res), nil
}

// Pages.

func (s *Server) pageKeyRename(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.login.RenameSecurityKey(r.Context(), client(r), a.user, id, r.PostFormValue("name")); err != nil {
		if c := latchkey.ErrorCode(err); c == latchkey.EInvalid || c == latchkey.ENotFound {
			return s.renderSecurity(w, r, a, status(c), latchkey.ErrorMessage(err))
		}
		return err
	}
	http.Redirect(w, r, "/settings/security?done=key-renamed", http.StatusSeeOther)
	return nil
}

func (s *Server) pageKeyRemove(w http.ResponseWriter, r *http.Request, a *auth) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	err = s.login.RemoveSecurityKey(r.Context(), client(r), a.session, a.user, id)
	if reauthRedirect(w, r, err, "/settings/security#factors") {
		return nil
	}
	if err != nil {
		if c := latchkey.ErrorCode(err); c == latchkey.EForbidden || c == latchkey.ENotFound {
			return s.renderSecurity(w, r, a, status(c), latchkey.ErrorMessage(err))
		}
		return err
	}
	http.Redirect(w, r, "/settings/security?done=key-removed", http.StatusSeeOther)
	return nil
}

func (s *Server) pageKeyAdd(w http.ResponseWriter, r *http.Request, a *auth) error {
	if reauthRedirect(w, r, s.login.Recent(r.Context(), a.session, a.user), "/settings/security/keys/add") {
		return nil
	}
	return s.render(w, http.StatusOK, "key_add", &view{Title: "Add security key", User: a.user, Next: "/settings/security?done=key-added"})
}

type resetView struct {
	Keys bool
}

func (s *Server) pageReset(w http.ResponseWriter, r *http.Request, a *auth) error {
	st, err := s.login.Status(r.Context(), a.user)
	if err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "reset", &view{Title: "Reset all MFA", User: a.user, Data: resetView{Keys: len(st.Keys) > 0}})
}

func (s *Server) pageResetPost(w http.ResponseWriter, r *http.Request, a *auth) error {
	if err := form(r); err != nil {
		return err
	}
	p := login.ResetProof{Password: r.PostFormValue("password"), Code: r.PostFormValue("code"), CeremonyID: r.PostFormValue("ceremony_id")}
	if c := r.PostFormValue("credential"); c != "" {
		p.KeyResponse = []byte(c)
	}
	if r.PostFormValue("confirm") != "yes" {
		v := &view{Title: "Reset all MFA", User: a.user, Data: resetView{}}
		v.Fields = map[string]string{"confirm": "Tick the box to confirm that every sign-in method will be removed."}
		return s.render(w, http.StatusBadRequest, "reset", v)
	}
	if err := s.login.ResetAllMFA(r.Context(), client(r), a.session, a.user, p); err != nil {
		c := latchkey.ErrorCode(err)
		if c == latchkey.EInternal {
			return err
		}
		writeRetryAfter(w, err)
		st, serr := s.login.Status(r.Context(), a.user)
		if serr != nil {
			return serr
		}
		field := "code"
		if c == latchkey.EInvalidCredentials || (c == latchkey.EInvalid && p.Password == "") {
			field = "password"
		}
		v := fieldError(&view{Title: "Reset all MFA", User: a.user, Data: resetView{Keys: len(st.Keys) > 0}}, field, err)
		return s.render(w, status(c), "reset", v)
	}
	http.Redirect(w, r, "/settings/security?done=mfa-reset", http.StatusSeeOther)
	return nil
}

// The rollout page: a sign-in under mfa: required whose user has no factor yet.

type enrollView struct {
	Methods    []string
	TOTP, Key  bool
	Push       bool
	Enrollment *login.Enrollment
	Activation *deviceAddView
	Codes      []string
}

func (s *Server) enrollPage(w http.ResponseWriter, r *http.Request, code int, v *view, ev enrollView) error {
	ms := s.login.EnrollMethods()
	ev.Methods = ms
	ev.TOTP, ev.Key, ev.Push = contains(ms, latchkey.MethodTOTP), contains(ms, latchkey.MethodWebAuthn), contains(ms, latchkey.MethodPush)
	v.Title, v.Data = "Set up two-step sign-in", ev
	return s.render(w, code, "enroll", v)
}

// enrollForm reads a posted form of the rollout pages: its next page, and the flow as
// enrollFlow loads it.
func (s *Server) enrollForm(w http.ResponseWriter, r *http.Request) (*auth, string, bool, error) {
	if err := form(r); err != nil {
		return nil, "", false, err
	}
	next := safeNext(r.PostFormValue("next"))
	a, ok, err := s.enrollFlow(w, r, next)
	return a, next, ok, err
}

// enrollFlow loads the rollout flow or shows the sign-in page with why it ended.
func (s *Server) enrollFlow(w http.ResponseWriter, r *http.Request, next string) (*auth, bool, error) {
	tok := s.token(r)
	sess, u, err := s.login.EnrollFlow(r.Context(), tok)
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EFlowExpired {
			return nil, false, s.render(w, http.StatusUnauthorized, "login", &view{Title: "Sign in", Error: latchkey.ErrorMessage(err), Next: next, Data: map[string]string{}})
		}
		return nil, false, err
	}
	return &auth{session: sess, user: u, token: tok, enrolling: true}, true, nil
}

func (s *Server) pageEnroll(w http.ResponseWriter, r *http.Request) error {
	next := safeNext(r.URL.Query().Get("next"))
	a, ok, err := s.enrollFlow(w, r, next)
	if !ok {
		return err
	}
	ev := enrollView{}
	if en, err := s.login.PendingTOTP(r.Context(), a.user); err == nil {
		ev.Enrollment = en
	}
	return s.enrollPage(w, r, http.StatusOK, &view{Next: next}, ev)
}

func (s *Server) pageEnrollTOTP(w http.ResponseWriter, r *http.Request) error {
	a, next, ok, err := s.enrollForm(w, r)
	if !ok {
		return err
	}
	en, err := s.login.BeginTOTP(r.Context(), client(r), a.session, a.user)
	if err != nil {
		return err
	}
	return s.enrollPage(w, r, http.StatusOK, &view{Next: next}, enrollView{Enrollment: en})
}

func (s *Server) pageEnrollTOTPConfirm(w http.ResponseWriter, r *http.Request) error {
	a, next, ok, err := s.enrollForm(w, r)
	if !ok {
		return err
	}
	codes, err := s.login.ConfirmTOTP(r.Context(), client(r), a.session, a.user, r.PostFormValue("code"))
	if err != nil {
		c := latchkey.ErrorCode(err)
		if c != latchkey.EInvalid && c != latchkey.EInvalidCode {
			return err
		}
		en, perr := s.login.PendingTOTP(r.Context(), a.user)
		if perr != nil {
			return perr
		}
		return s.enrollPage(w, r, http.StatusBadRequest, fieldError(&view{Next: next}, "code", err), enrollView{Enrollment: en})
	}
	if err := s.finishEnrollment(w, r, a, latchkey.AMROTP); err != nil {
		return err
	}
	return s.render(w, http.StatusOK, "codes", &view{Title: "Save your recovery codes", Next: nextOr(next, "/settings/security"), Data: codes})
}

func (s *Server) pageEnrollDevice(w http.ResponseWriter, r *http.Request) error {
	a, next, ok, err := s.enrollForm(w, r)
	if !ok {
		return err
	}
	act, err := s.createActivation(r.Context(), r, a)
	if err != nil {
		return err
	}
	v := deviceAddView{Code: act.Code, QRPNG: act.QRPNG, ExpiresAt: act.ExpiresAt, Server: s.publicURL.String()}
	return s.enrollPage(w, r, http.StatusOK, &view{Next: next}, enrollView{Activation: &v})
}

func (s *Server) pageEnrollDone(w http.ResponseWriter, r *http.Request) error {
	a, next, ok, err := s.enrollForm(w, r)
	if !ok {
		return err
	}
	res, err := s.login.CompleteEnrollment(r.Context(), client(r), a.token, latchkey.AMRSoftwareKey)
	if err != nil {
		if latchkey.ErrorCode(err) == latchkey.EForbidden {
			v := &view{Next: next, Error: "Your Latch app is not activated yet. Enter the code in the app first, then continue."}
			return s.enrollPage(w, r, http.StatusConflict, v, enrollView{})
		}
		return err
	}
	s.setSession(w, res)
	if len(res.RecoveryCodes) > 0 {
		return s.render(w, http.StatusOK, "codes", &view{Title: "Save your recovery codes", User: res.User, Next: nextOr(next, "/settings/security"), Data: res.RecoveryCodes})
	}
	http.Redirect(w, r, nextOr(next, "/settings/security"), http.StatusSeeOther)
	return nil
}

func enrollURL(next string) string {
	if next == "" {
		return "/login/enroll"
	}
	return "/login/enroll?next=" + url.QueryEscape(next)
}
