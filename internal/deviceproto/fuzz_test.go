package deviceproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets in this file cover the device protocol's parsers of outside input beyond
// FuzzParseURI and FuzzParsePublicKey (deviceproto_test.go): the signature headers of a
// request, the URI round trip, typed codes and the JSON messages.

// fuzzNow is the server's clock in FuzzParseSigned: fixed, so that the corpus replays.
var fuzzNow = time.Unix(1_800_000_000, 0)

// FuzzParseSigned feeds arbitrary signature headers, paths and bodies to Parse: it never
// panics, refuses with ErrSignature, and what it accepts is within the documented bounds and
// does not verify under an unrelated key. The same method, path, device and body signed with
// Sign verify, and the signature does not carry over to another body.
func FuzzParseSigned(f *testing.F) {
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	f.Add("POST", "/api/v1/device/challenges/abc/answer", "", ts, "AAAAAAAAAAAAAAAAAAAAAAAA", "MEUCIQ", "42", []byte(`{"decision":"approve","number":"12"}`))
	f.Add("GET", "/api/v1/device/challenges", "wait=25s", ts, "bm9uY2Vub25jZW5vbmNlbm9uY2U", "", "", []byte(nil))
	f.Add("GET", "/api/v1/device", "", "-9223372036854775808", "x", "!!", "-1", []byte("x"))
	f.Add("POST", "/", "a=%zz", "+"+ts, strings.Repeat("A", 64), strings.Repeat("A", 200), "0", []byte{0, 1, 2})
	f.Add("POST", "/api/v1/device/activate", "", "1e9", "AAAAAAAAAAAAAAAAAAAAAA==", "MEUCIQ==", "9223372036854775808", []byte("{}"))

	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	other, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, ts, nonce, sig, device string, body []byte) {
		if len(body) > MaxBody {
			return
		}
		newReq := func() *http.Request {
			return &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}}
		}

		// Arbitrary headers.
		r := newReq()
		for h, v := range map[string]string{HeaderTimestamp: ts, HeaderNonce: nonce, HeaderSignature: sig, HeaderDevice: device} {
			if v != "" {
				r.Header[h] = []string{v}
			}
		}
		s, err := Parse(r, body, fuzzNow)
		if err != nil {
			if s != nil || !errors.Is(err, ErrSignature) {
				t.Fatalf("Parse = %v, %v: want nil and an ErrSignature", s, err)
			}
		} else {
			if d := s.Timestamp.Sub(fuzzNow); d > MaxSkew || d < -MaxSkew {
				t.Fatalf("Parse accepted a time %v from the clock", d)
			}
			if len(s.Nonce) < MinNonceLen || len(s.Nonce) > MaxNonceLen || len(s.Signature) > 80 || s.DeviceID < 0 {
				t.Fatalf("Parse accepted out-of-bounds values: %+v", s)
			}
			if (device == "") != (s.DeviceID == 0) {
				t.Fatalf("device header %q parsed as %d", device, s.DeviceID)
			}
			if s.Verify(&other.PublicKey) {
				t.Fatalf("a signature from the input verifies under a key that never signed: %+v", s)
			}
		}

		// The same request signed for real: it parses and verifies, under this key only.
		var id int64
		if n, err := strconv.ParseInt(device, 10, 64); err == nil && n > 0 {
			id = n
		}
		r = newReq()
		if err := Sign(r, key, id, body, fuzzNow); err != nil {
			t.Fatal(err)
		}
		s, err = Parse(r, body, fuzzNow)
		if err != nil {
			t.Fatalf("Parse of a request made by Sign: %v", err)
		}
		if s.DeviceID != id || !s.Timestamp.Equal(fuzzNow) {
			t.Fatalf("Parse of a signed request: device %d at %v, want %d at %v", s.DeviceID, s.Timestamp, id, fuzzNow)
		}
		if !s.Verify(&key.PublicKey) {
			t.Fatal("a request made by Sign does not verify")
		}
		if s.Verify(&other.PublicKey) {
			t.Fatal("a signed request verifies under another key")
		}
		changed, err := Parse(r, append(bytes.Clone(body), 'x'), fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		if changed.Verify(&key.PublicKey) {
			t.Fatal("the signature verifies for another body")
		}
		if _, err := Parse(r, body, fuzzNow.Add(MaxSkew+time.Second)); err == nil {
			t.Fatal("a request older than MaxSkew was accepted")
		}
	})
}

// FuzzURIRoundTrip: ParseURI accepts what FormatURI writes exactly when the kind, server and
// code are valid, returns them unchanged (the server without a trailing slash), and nothing
// else.
func FuzzURIRoundTrip(f *testing.F) {
	f.Add(KindActivate, "https://login.example.com", "7KQ2M-XD9FA")
	f.Add(KindTransfer, "http://127.0.0.1:8080/", "7kq2mxd9fa")
	f.Add(KindActivate, "https://a/b?c=d#e", "OIL23-45678")
	f.Add("evil", "javascript:alert(1)", "")
	f.Add(KindActivate, "HTTPS://Login.Example.com/", "7KQ2M-XD9FA")
	f.Add(KindActivate, "https://a&code=0000000000", "1111111111")
	f.Fuzz(func(t *testing.T, kind, server, code string) {
		uri := FormatURI(kind, server, code)
		k, s, c, err := ParseURI(uri)
		su, perr := url.Parse(server)
		_, codeOK := NormalizeCode(code)
		valid := (kind == KindActivate || kind == KindTransfer) && perr == nil && (su.Scheme == "http" || su.Scheme == "https") && su.Host != "" && codeOK
		if valid != (err == nil) {
			t.Fatalf("ParseURI(FormatURI(%q, %q, %q)) = %v, want valid=%v", kind, server, code, err, valid)
		}
		if err != nil {
			return
		}
		if k != kind || s != strings.TrimSuffix(strings.ToLower(server[:len(su.Scheme)])+server[len(su.Scheme):], "/") || c != code {
			t.Fatalf("ParseURI(%q) = %q %q %q, want %q %q %q", uri, k, s, c, kind, server, code)
		}
		k2, s2, c2, err := ParseURI(FormatURI(k, s, c))
		if err != nil || k2 != k || s2 != s || c2 != c {
			t.Fatalf("second round trip = %q %q %q, %v", k2, s2, c2, err)
		}
	})
}

// FuzzNormalizeCode: a normalised code is CodeLen symbols of the alphabet, normalises to
// itself, and every code NewCode makes is accepted.
func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"7KQ2M-XD9FA", "7kq2m xd9fa", "OIL00-00000", "UUUUU-UUUUU", "", "ÿ", "7KQ2M-XD9FA-", strings.Repeat("-", 70)} {
		f.Add(s, []byte(s))
	}
	f.Fuzz(func(t *testing.T, s string, random []byte) {
		if n, ok := NormalizeCode(s); ok {
			if len(n) != CodeLen || strings.Trim(n, codeAlphabet) != "" {
				t.Fatalf("NormalizeCode(%q) = %q", s, n)
			}
			if again, ok := NormalizeCode(n); !ok || again != n {
				t.Fatalf("NormalizeCode(%q) = %q, %v: not a fixed point", n, again, ok)
			}
			if again, ok := NormalizeCode(strings.ToLower(n[:5]) + "-" + n[5:]); !ok || again != n {
				t.Fatalf("the grouped lower-case form of %q normalises to %q, %v", n, again, ok)
			}
		} else if n != "" {
			t.Fatalf("NormalizeCode(%q) refused but returned %q", s, n)
		}
		code, err := NewCode(bytes.NewReader(random))
		if len(random) < CodeLen {
			if err == nil {
				t.Fatalf("NewCode from %d bytes: no error", len(random))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := NormalizeCode(code); !ok || n != strings.ReplaceAll(code, "-", "") {
			t.Fatalf("NewCode made %q, which normalises to %q, %v", code, n, ok)
		}
	})
}

// FuzzMessages decodes arbitrary JSON into every message of the protocol, as the server
// (requests) and the app (responses, SSE events) do: no panic, and what decodes re-encodes
// to a fixed point (encode ∘ decode is idempotent).
func FuzzMessages(f *testing.F) {
	for _, s := range []string{
		`{"code":"7KQ2M-XD9FA","public_key":"MFkw","name":"Phone","platform":"linux"}`,
		`{"decision":"approve","number":"12"}`,
		`{"id":"c1","kind":"login","username":"alice","application":"Latchkey","browser":"Firefox","ip":"192.0.2.1","time":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:06:05+01:00","number_length":2}`,
		`{"challenges":[{"id":"c1"},{"id":"c2","time":"0001-01-01T00:00:00Z"}]}`,
		`{"device_id":1,"state":"active","totp":{"secret":"GEZD","otpauth_uri":"otpauth://totp/a"},"number":"42"}`,
		`{"devices":[{"id":1,"last_used_at":null},{"id":2,"last_used_at":"2026-01-02T03:04:05.123456789-07:00"}]}`,
		`{"error":{"code":"invalid","message":"x"}}`,
		`{"code":"x","uri":"latchkey://transfer?","expires_at":"9999-12-31T23:59:59Z"}`,
		`null`, `[]`, `{"time":"not a time"}`, `{"device_id":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newMsg := range []func() any{
			func() any { return new(ActivateRequest) },
			func() any { return new(ActivateResponse) },
			func() any { return new(DeviceInfo) },
			func() any { return new(DevicesResponse) },
			func() any { return new(Challenge) },
			func() any { return new(ChallengesResponse) },
			func() any { return new(AnswerRequest) },
			func() any { return new(AnswerResponse) },
			func() any { return new(TransferResponse) },
			func() any { return new(ErrorResponse) },
		} {
			m := newMsg()
			if json.Unmarshal(data, m) != nil {
				continue
			}
			once, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", m, data, err)
			}
			m2 := newMsg()
			if err := json.Unmarshal(once, m2); err != nil {
				t.Fatalf("%T: its own encoding %s does not decode: %v", m, once, err)
			}
			twice, err := json.Marshal(m2)
			if err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("%T: encode∘decode not idempotent:\n%s\n%s", m, once, twice)
			}
		}
	})
}
