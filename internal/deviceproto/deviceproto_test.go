package deviceproto

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSignParseVerify(t *testing.T) {
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"decision":"approve","number":"42"}`)
	r, _ := http.NewRequest("POST", "http://x/api/v1/device/challenges/ab/answer?x=1", bytes.NewReader(body))
	if err := Sign(r, k, 7, body, now); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(r, body, now.Add(time.Minute))
	if err != nil || s.DeviceID != 7 || !s.Verify(&k.PublicKey) || s.Verify(&other.PublicKey) {
		t.Fatalf("parse/verify: %v %+v", err, s)
	}
	if s2, _ := Parse(r, []byte(`{"decision":"deny"}`), now); s2.Verify(&k.PublicKey) {
		t.Error("a changed body verified")
	}
	if _, err := Parse(r, body, now.Add(6*time.Minute)); err == nil || !strings.Contains(err.Error(), "clock") {
		t.Errorf("skew: %v", err)
	}
	r.Header.Set(HeaderNonce, "short")
	if _, err := Parse(r, body, now); err == nil {
		t.Error("short nonce accepted")
	}
}

func TestCodes(t *testing.T) {
	c, err := NewCode(rand.Reader)
	if err != nil || len(c) != 11 || c[5] != '-' {
		t.Fatalf("code %q %v", c, err)
	}
	for in, want := range map[string]string{"7kq2m-xd9fa": "7KQ2MXD9FA", "OIL23 45678": "0112345678"} {
		if got, ok := NormalizeCode(in); !ok || got != want {
			t.Errorf("NormalizeCode(%q) = %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "7KQ2M", "7KQ2M-XD9FAU", "7KQ2M-XD9F!"} {
		if _, ok := NormalizeCode(bad); ok {
			t.Errorf("NormalizeCode(%q) accepted", bad)
		}
	}
	uri := FormatURI(KindActivate, "https://id.example.com", c)
	kind, server, code, err := ParseURI(uri)
	if err != nil || kind != KindActivate || server != "https://id.example.com" || code != c {
		t.Fatalf("ParseURI(%q) = %q %q %q %v", uri, kind, server, code, err)
	}
	for _, bad := range []string{"otpauth://totp/x", "latchkey://other?server=https://a&code=" + c, "latchkey://activate?server=javascript:x&code=" + c, "latchkey://activate?server=https://a&code=x"} {
		if _, _, _, err := ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("latchkey://activate?server=https%3A%2F%2Fa&code=7KQ2M-XD9FA")
	f.Fuzz(func(t *testing.T, s string) {
		if kind, server, code, err := ParseURI(s); err == nil {
			if _, ok := NormalizeCode(code); !ok || (kind != KindActivate && kind != KindTransfer) || !strings.HasPrefix(server, "http") {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := GenerateKey()
	enc, _ := EncodePublicKey(&k.PublicKey)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, s string) {
		if key, der, err := ParsePublicKey(s); err == nil && (key == nil || len(der) == 0) {
			t.Fatal("nil key without error")
		}
	})
}
