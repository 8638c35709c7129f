package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/push"
	"github.com/latchkey/latchkey/internal/totp"
)

// Waiting: long polls answer after at most maxWait; streams end after streamLife so that
// clients reconnect with a fresh signature; both re-read the database every recheck so that a
// change made on another node is seen without a wake-up.
const (
	maxWait    = 30 * time.Second
	streamLife = 10 * time.Minute
	pingEvery  = 15 * time.Second // the default of Options.StreamPing
	recheck    = 2 * time.Second
)

func pushClient(r *http.Request) push.Client {
	return push.Client{IP: clientIP(r), UserAgent: userAgent(r)}
}

// waitParam reads ?wait=25s (or 25), capped at maxWait; 0 when absent.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, err2 := strconv.Atoi(v)
		if err2 != nil {
			return 0, latchkey.Errorf(latchkey.EInvalid, "wait must be a duration such as 25s.")
		}
		d = time.Duration(n) * time.Second
	}
	return min(max(d, 0), maxWait), nil
}

// ---- Browser: push sign-in --------------------------------------------------------------

type pushStartResponse struct {
	ChallengeID string `json:"challenge_id"`
	Number      string `json:"number"`
}

func (s *Server) apiLoginPush(w http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		DeviceID int64 `json:"device_id"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return nil, err
		}
	}
	ch, err := s.login.BeginPush(r.Context(), client(r), s.token(r), req.DeviceID, "")
	if err != nil {
		return nil, err
	}
	return pushStartResponse{ChallengeID: ch.ID, Number: ch.Number}, nil
}

// pushState polls the challenge for the browser, waiting up to wait for a change. When the
// challenge completes the sign-in, the new session cookie is set.
func (s *Server) pushState(w http.ResponseWriter, r *http.Request, id string, wait time.Duration) (latchkey.PushState, error) {
	ctx := r.Context()
	var sig <-chan struct{}
	if wait > 0 && s.push != nil {
		c, cancel := s.push.Hub().SubscribeChallenge(id)
		defer cancel()
		sig = c
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	// The watch completes the sign-in at once when the device's answer wakes it (login.PushWatch).
	watch := s.login.WatchPush(client(r), s.token(r), id)
	answered := false
	for {
		state, res, err := watch.Status(ctx, answered)
		if err != nil {
			return "", err
		}
		if res != nil {
			s.setSession(w, res)
		}
		if state != latchkey.PushPending || wait <= 0 {
			return state, nil
		}
		select {
		case <-ctx.Done():
			return state, nil
		case <-s.stop:
			return state, nil
		case <-deadline.C:
			return state, nil
		case <-sig:
			answered = true
		case <-tick.C:
			answered = false
		}
	}
}

func (s *Server) apiLoginPushStatus(w http.ResponseWriter, r *http.Request) (any, error) {
	wait, err := waitParam(r)
	if err != nil {
		return nil, err
	}
	state, err := s.pushState(w, r, r.PathValue("id"), wait)
	if err != nil {
		return nil, err
	}
	return map[string]string{"state": string(state)}, nil
}

// ---- The signed-in user's devices -------------------------------------------------------

type activationResponse struct {
	Code             string    `json:"code"`
	URI              string    `json:"uri"`
	ExpiresAt        time.Time `json:"expires_at"`
	ApprovalRequired bool      `json:"approval_required"`
	QRPNG            string    `json:"qr_png"`
}

func (s *Server) createActivation(ctx context.Context, r *http.Request, a *auth) (*activationResponse, error) {
	// The password must be recent; the second factor too, unless an existing device is to
	// approve the new one (push.CreateActivation).
	if err := s.login.RecentPassword(a.session); err != nil {
		return nil, err
	}
	noMFA := s.login.RecentMFA(ctx, a.session, a.user)
	if noMFA != nil && latchkey.ErrorCode(noMFA) != latchkey.EReauthenticate {
		return nil, noMFA
	}
	if !s.login.MethodAllowed(latchkey.MethodPush) {
		return nil, latchkey.Errorf(latchkey.EForbidden, "Your organisation does not allow the Latch app.")
	}
	act, err := s.push.CreateActivation(ctx, pushClient(r), a.user, a.session, noMFA)
	if err != nil {
		return nil, err
	}
	png, err := totp.QRPNG(act.URI, 256)
	if err != nil {
		return nil, err
	}
	return &activationResponse{Code: act.Code, URI: act.URI, ExpiresAt: act.ExpiresAt, ApprovalRequired: act.NeedsApproval, QRPNG: totp.DataURL(png)}, nil
}

func (s *Server) apiCreateActivation(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	return s.createActivation(r.Context(), r, a)
}

type deviceJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Platform   string     `json:"platform"`
	State      string     `json:"state"`
	Primary    bool       `json:"primary"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func (s *Server) apiDevices(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	devs, err := s.push.UserDevices(r.Context(), a.user)
	if err != nil {
		return nil, err
	}
	out := []deviceJSON{}
	for _, d := range devs {
		out = append(out, deviceJSON{ID: d.ID, Name: d.Name, Platform: d.Platform, State: string(d.State), Primary: d.Primary, CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt})
	}
	return map[string]any{"devices": out}, nil
}

func deviceIDParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, latchkey.Errorf(latchkey.ENotFound, "There is no such device on your account.")
	}
	return id, nil
}

func (s *Server) apiUpdateDevice(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	id, err := deviceIDParam(r)
	if err != nil {
		return nil, err
	}
	var req struct {
		Name    *string `json:"name"`
		Primary bool    `json:"primary"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name == nil && !req.Primary {
		return nil, latchkey.Errorf(latchkey.EInvalid, `Send "name" to rename the device or "primary": true to make it primary.`)
	}
	if req.Name != nil {
		if err := s.push.Rename(r.Context(), pushClient(r), a.user, id, *req.Name); err != nil {
			return nil, err
		}
	}
	if req.Primary {
		if err := s.makePrimary(r, a, "device:"+strconv.FormatInt(id, 10)); err != nil {
			return nil, err
		}
	}
	return s.apiDevices(w, r, a)
}

// removeDevice checks recent re-authentication and the MFA policy, then removes the device.
func (s *Server) removeDevice(ctx context.Context, r *http.Request, a *auth, id int64) error {
	if err := s.login.Recent(ctx, a.session, a.user); err != nil {
		return err
	}
	devs, err := s.push.UserDevices(ctx, a.user)
	if err != nil {
		return err
	}
	var target *latchkey.Device
	for _, d := range devs {
		if d.ID == id {
			target = d
		}
	}
	if target == nil {
		return latchkey.Errorf(latchkey.ENotFound, "There is no such device on your account.")
	}
	st, err := s.login.Status(ctx, a.user)
	if err != nil {
		return err
	}
	errLast := latchkey.Errorf(latchkey.EForbidden, "Your organisation requires two-factor authentication, so you can't remove your only method. Add another method first.")
	if st.MFARequired && target.State == latchkey.DeviceActive && st.Factors <= 1 {
		return errLast
	}
	if err := s.push.Remove(ctx, pushClient(r), a.user, id, st.MFARequired); errors.Is(err, latchkey.ErrLastFactor) {
		return errLast
	} else if err != nil {
		return err
	}
	return nil
}

func (s *Server) apiDeleteDevice(w http.ResponseWriter, r *http.Request, a *auth) (any, error) {
	id, err := deviceIDParam(r)
	if err != nil {
		return nil, err
	}
	if err := s.removeDevice(r.Context(), r, a, id); err != nil {
		return nil, err
	}
	return nil, nil
}

// ---- Device API -----------------------------------------------------------------------

// readDeviceBody reads a device request's body, at most deviceproto.MaxBody bytes.
func readDeviceBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, deviceproto.MaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, latchkey.Errorf(latchkey.ETooLarge, "The request body is too large (at most %d bytes).", deviceproto.MaxBody)
	} else if err != nil {
		return nil, latchkey.Errorf(latchkey.EInvalid, "The request body could not be read.")
	}
	return b, nil
}

// decodeDevice decodes a device request's JSON body with decode's strictness.
func decodeDevice(r *http.Request, body []byte, v any) error {
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	return decode(r2, v)
}

type deviceFunc func(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, body []byte) (any, error)

// device adapts a handler for signed device requests: it reads the body and authenticates
// the device. Only active devices get through unless pendingOK.
func (s *Server) device(f deviceFunc, pendingOK bool) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) (any, error) {
		body, err := readDeviceBody(r)
		if err != nil {
			return nil, err
		}
		d, u, err := s.push.Authenticate(r.Context(), pushClient(r), r, body)
		if err != nil {
			return nil, err
		}
		if !pendingOK {
			if err := push.Active(d); err != nil {
				return nil, err
			}
		}
		return f(w, r, d, u, body)
	})
}

func (s *Server) deviceRedeem(kind string) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) (any, error) {
		body, err := readDeviceBody(r)
		if err != nil {
			return nil, err
		}
		sig, err := deviceproto.Parse(r, body, s.now())
		if err != nil {
			return nil, push.SignatureError(err)
		}
		var req deviceproto.ActivateRequest
		if err := decodeDevice(r, body, &req); err != nil {
			return nil, err
		}
		if err := required([2]string{"code", req.Code}, [2]string{"public_key", req.PublicKey}, [2]string{"name", req.Name}); err != nil {
			return nil, err
		}
		res, err := s.push.Redeem(r.Context(), pushClient(r), kind, sig, req)
		if err != nil {
			return nil, err
		}
		if res.State == deviceproto.StatePendingApproval {
			writeJSON(w, http.StatusAccepted, res)
			return nil, errWritten
		}
		return res, nil
	})
}

// errWritten tells s.api that the handler wrote the response itself.
var errWritten = errors.New("response written")

func (s *Server) deviceInfo(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, _ []byte) (any, error) {
	return s.push.Info(r.Context(), u, d)
}

func (s *Server) deviceDevices(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, _ []byte) (any, error) {
	return s.push.Devices(r.Context(), u, d)
}

func (s *Server) deviceTransfer(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, _ []byte) (any, error) {
	return s.push.CreateTransfer(r.Context(), pushClient(r), u, d)
}

// deviceAnswer is POST /api/v1/device/challenges/{id}/answer. It authenticates as device does
// for an active device, but the request's nonce is recorded in the answer's own transaction
// (push.AuthenticateDeferred): one write fewer per push round trip.
func (s *Server) deviceAnswer() http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) (any, error) {
		body, err := readDeviceBody(r)
		if err != nil {
			return nil, err
		}
		c := pushClient(r)
		d, u, nonce, err := s.push.AuthenticateDeferred(r.Context(), c, r, body)
		if err != nil {
			return nil, err
		}
		if err := push.Active(d); err != nil {
			return nil, err
		}
		var req deviceproto.AnswerRequest
		if err := decodeDevice(r, body, &req); err != nil {
			return nil, err
		}
		return s.push.Answer(r.Context(), c, u, d, r.PathValue("id"), req, nonce)
	})
}

// deviceChallenges answers the pending challenges, waiting up to ?wait= for one (long poll).
// A long poll that a newer one of the device or user displaces answers at once.
func (s *Server) deviceChallenges(w http.ResponseWriter, r *http.Request, d *latchkey.Device, u *latchkey.User, _ []byte) (any, error) {
	wait, err := waitParam(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	var news, displaced <-chan struct{} // a read without a wait holds no place
	if wait > 0 {
		w8, err := s.waitDevice(u, d)
		if err != nil {
			return nil, err
		}
		defer w8.Close()
		news, displaced = w8.C, w8.Displaced
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		chs, err := s.push.Pending(ctx, u, d)
		if err != nil {
			return nil, err
		}
		if len(chs) > 0 || wait <= 0 {
			return deviceproto.ChallengesResponse{Challenges: chs}, nil
		}
		select {
		case <-ctx.Done():
			return deviceproto.ChallengesResponse{Challenges: chs}, nil
		case <-s.stop:
			return deviceproto.ChallengesResponse{Challenges: chs}, nil
		case <-deadline.C:
			return deviceproto.ChallengesResponse{Challenges: chs}, nil
		case <-displaced:
			return deviceproto.ChallengesResponse{Challenges: chs}, nil
		case <-news:
		case <-tick.C:
		}
	}
}

// busyRetry is the Retry-After of a device wait refused because the node holds its limit.
const busyRetry = 30 * time.Second

// waitDevice opens a wait for the device's news, for an event stream or a long poll, or
// refuses with 503 and Retry-After when the node holds as many as it may.
func (s *Server) waitDevice(u *latchkey.User, d *latchkey.Device) (*push.DeviceWait, error) {
	w, err := s.push.Hub().WaitDevice(int64(u.ID), d.ID)
	if errors.Is(err, push.ErrBusy) {
		if now := time.Now().Unix(); s.busyLogged.Swap(now) < now-60 { // once a minute at most
			s.log.Warn("device connections refused: the node holds its limit of event streams and long polls (push.max_connections)")
		}
		return nil, &latchkey.Error{Code: latchkey.EUnavailable, Message: "The server is busy. Please try again shortly.", RetryAfter: busyRetry}
	}
	return w, err
}
