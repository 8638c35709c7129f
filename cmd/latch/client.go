package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/deviceproto"
)

// client talks to one Latchkey server as one device key.
type client struct {
	server string
	key    *ecdsa.PrivateKey
	device int64 // 0 while activating
	hc     *http.Client
	now    func() time.Time
}

func newClient(server string, key *ecdsa.PrivateKey, device int64) *client {
	return &client{server: strings.TrimSuffix(server, "/"), key: key, device: device, hc: &http.Client{}, now: time.Now}
}

func clientFor(r *Registration) (*client, error) {
	k, err := x509.ParsePKCS8PrivateKey(r.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("device key is not ECDSA")
	}
	return newClient(r.Server, ek, r.DeviceID), nil
}

// apiError is an error answer of the server.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func (c *client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := deviceproto.Sign(req, c.key, c.device, body, c.now()); err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", c.server, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e deviceproto.ErrorResponse
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
			return nil, &apiError{Status: resp.StatusCode, Message: fmt.Sprintf("the server answered %s", resp.Status)}
		}
		return nil, &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	return resp, nil
}

// do sends a signed request and decodes the JSON answer into out; it returns the status.
func (c *client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("the server's answer could not be read: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// poll long-polls for pending challenges, waiting up to wait.
func (c *client) poll(ctx context.Context, wait time.Duration) ([]deviceproto.Challenge, error) {
	var out deviceproto.ChallengesResponse
	_, err := c.do(ctx, "GET", fmt.Sprintf("%s?wait=%ds", deviceproto.PathChallenges, int(wait.Seconds())), nil, &out)
	return out.Challenges, err
}

func (c *client) answer(ctx context.Context, id, decision, number string) (*deviceproto.AnswerResponse, error) {
	var out deviceproto.AnswerResponse
	_, err := c.do(ctx, "POST", deviceproto.PathAnswer+id+"/answer", deviceproto.AnswerRequest{Decision: decision, Number: number}, &out)
	return &out, err
}

// maxEventLine bounds one line of the event stream.
const maxEventLine = 64 << 10

// readEvents reads a Server-Sent Events stream and calls f for each challenge event. Comment
// lines (": ping") and unknown events are skipped; a line over maxEventLine ends the stream.
func readEvents(r io.Reader, f func(deviceproto.Challenge)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == deviceproto.EventChallenge && data.Len() > 0 {
				var ch deviceproto.Challenge
				if json.Unmarshal([]byte(data.String()), &ch) == nil && ch.ID != "" {
					f(ch)
				}
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// listen keeps an event stream open and calls f for each challenge, reconnecting with
// exponential backoff (1 s doubling to 30 s, with jitter) and falling back to long polls when
// the stream cannot be opened. It returns when ctx ends or the device is refused (401/403).
func (c *client) listen(ctx context.Context, f func(deviceproto.Challenge)) error {
	backoff := time.Second
	for ctx.Err() == nil {
		opened := time.Now()
		resp, err := c.send(ctx, "GET", deviceproto.PathEvents, nil)
		if err == nil {
			_ = readEvents(resp.Body, f)
			resp.Body.Close()
			if time.Since(opened) >= shortStream {
				backoff = time.Second
				continue
			}
			// A stream that ended at once was displaced by another of this device, or the
			// server is going away: reconnect after the backoff, not in a tight loop with
			// another copy of this device.
			pause(ctx, &backoff)
			continue
		}
		var ae *apiError
		if errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403) {
			return err
		}
		// Fall back to one long poll before waiting; when the server is too busy to hold
		// one either (503), to a plain read, which it always answers, so that a request
		// waiting now is not missed until the next try.
		if chs, perr := c.poll(ctx, 25*time.Second); perr == nil {
			for _, ch := range chs {
				f(ch)
			}
			continue
		} else if errors.As(perr, &ae) && ae.Status == 503 {
			if chs, err := c.poll(ctx, 0); err == nil {
				for _, ch := range chs {
					f(ch)
				}
			}
		}
		pause(ctx, &backoff)
	}
	return ctx.Err()
}

// shortStream: an event stream that ends sooner than this is reconnected after a backoff.
const shortStream = 10 * time.Second

// pause waits for the backoff with jitter, or until ctx ends, and doubles the backoff up to
// 30 s.
func pause(ctx context.Context, backoff *time.Duration) {
	wait := *backoff + time.Duration(time.Now().UnixNano()%int64(*backoff/2+1))
	*backoff = min(2**backoff, 30*time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}
