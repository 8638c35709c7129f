package totp_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/totp/qrdecode"
)

// TestRFC6238Vectors checks every test vector of RFC 6238 Appendix B.
func TestRFC6238Vectors(t *testing.T) {
	seed1 := []byte("12345678901234567890")
	seed256 := []byte("12345678901234567890123456789012")
	seed512 := []byte("1234567890123456789012345678901234567890123456789012345678901234")
	tests := []struct {
		unix int64
		alg  totp.Algorithm
		want string
	}{
		{59, totp.SHA1, "94287082"}, {59, totp.SHA256, "46119246"}, {59, totp.SHA512, "90693936"},
		{1111111109, totp.SHA1, "07081804"}, {1111111109, totp.SHA256, "68084774"}, {1111111109, totp.SHA512, "25091201"},
		{1111111111, totp.SHA1, "14050471"}, {1111111111, totp.SHA256, "67062674"}, {1111111111, totp.SHA512, "99943326"},
		{1234567890, totp.SHA1, "89005924"}, {1234567890, totp.SHA256, "91819424"}, {1234567890, totp.SHA512, "93441116"},
		{2000000000, totp.SHA1, "69279037"}, {2000000000, totp.SHA256, "90698825"}, {2000000000, totp.SHA512, "38618901"},
		{20000000000, totp.SHA1, "65353130"}, {20000000000, totp.SHA256, "77737706"}, {20000000000, totp.SHA512, "47863826"},
	}
	for _, tt := range tests {
		seed := map[totp.Algorithm][]byte{totp.SHA1: seed1, totp.SHA256: seed256, totp.SHA512: seed512}[tt.alg]
		step := totp.Step(time.Unix(tt.unix, 0))
		if got := totp.CodeCustom(seed, step, 8, tt.alg); got != tt.want {
			t.Errorf("CodeCustom(t=%d, %s) = %s, want %s", tt.unix, tt.alg, got, tt.want)
		}
	}
	// The 6-digit code is the last six digits of the 8-digit one.
	if got := totp.Code(seed1, totp.Step(time.Unix(59, 0))); got != "287082" {
		t.Errorf("Code(t=59) = %s, want 287082", got)
	}
}

func TestVerifyWindowAndReplay(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1_700_000_000, 0)
	T := totp.Step(now)
	tests := []struct {
		name     string
		step     int64
		lastStep int64
		ok       bool
	}{
		{"T", T, 0, true},
		{"T-1", T - 1, 0, true},
		{"T+1", T + 1, 0, true},
		{"T-2", T - 2, 0, false},
		{"T+2", T + 2, 0, false},
		{"T after T used", T, T, false},
		{"T-1 after T used", T - 1, T, false},
		{"T+1 after T used", T + 1, T, true},
		{"T after T-1 used", T, T - 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, ok := totp.Verify(secret, totp.Code(secret, tt.step), now, tt.lastStep)
			if ok != tt.ok || (ok && step != tt.step) {
				t.Errorf("Verify(step %d, last %d) = %d, %v, want %d, %v", tt.step-T, tt.lastStep-T, step-T, ok, 0, tt.ok)
			}
		})
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"123456", "123456"},
		{" 123456 ", "123456"},
		{"123 456", "123456"},
		{"123-456", "123456"},
		{"12345", ""},
		{"1234567", ""},
		{"12a456", ""},
		{"", ""},
		{"١٢٣٤٥٦", ""}, // Arabic-Indic digits
		{"１２３４５６", ""}, // full-width digits
		{"12 3456", ""},
		{"123456\x00", ""},
	}
	for _, tt := range tests {
		got, err := totp.ParseCode(tt.in)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("ParseCode(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestURI(t *testing.T) {
	secret := []byte("12345678901234567890")
	got := totp.URI("Acme Corp", "alice@example.com", secret)
	want := "otpauth://totp/Acme%20Corp:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Fatalf("URI = %s\nwant  %s", got, want)
	}
	k, err := totp.ParseURI(got)
	if err != nil {
		t.Fatal(err)
	}
	if k.Issuer != "Acme Corp" || k.Account != "alice@example.com" || string(k.Secret) != string(secret) || k.Digits != 6 || k.Period != 30 || k.Algorithm != totp.SHA1 {
		t.Errorf("ParseURI = %+v", k)
	}
	for _, bad := range []string{"http://x", "otpauth://hotp/a?secret=GEZD", "otpauth://totp/a?secret=!!", "otpauth://totp/a", "otpauth://totp/?secret=GEZDGNBV", "otpauth://totp/a?secret=GEZDGNBV&digits=7", "otpauth://totp/a?secret=GEZDGNBV&algorithm=MD5"} {
		if _, err := totp.ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
}

func TestGroupKeyAndDecode(t *testing.T) {
	if got := totp.GroupKey("ABCDEFGHIJ"); got != "ABCD EFGH IJ" {
		t.Errorf("GroupKey = %q", got)
	}
	secret, _ := totp.GenerateSecret()
	if len(secret) != 20 {
		t.Fatalf("secret has %d bytes, want 20", len(secret))
	}
	grouped := strings.ToLower(totp.GroupKey(totp.Encode(secret)))
	back, err := totp.Decode(grouped)
	if err != nil || string(back) != string(secret) {
		t.Errorf("Decode(grouped lower-case) = %x, %v", back, err)
	}
}

func TestQRRoundTrip(t *testing.T) {
	secret, _ := totp.GenerateSecret()
	uri := totp.URI("Latchkey", "alice", secret)
	png, err := totp.QRPNG(uri, 256)
	if err != nil {
		t.Fatal(err)
	}
	dataURL := totp.DataURL(png)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(dataURL, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := qrdecode.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got != uri {
		t.Errorf("decoded %q, want %q", got, uri)
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "", "abc", "１２３４５６"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := totp.ParseCode(s)
		if err != nil {
			return
		}
		if len(got) != 6 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("ParseCode(%q) = %q: not six ASCII digits", s, got)
		}
	})
}

func FuzzParseURI(f *testing.F) {
	f.Add("otpauth://totp/Latchkey:alice?secret=GEZDGNBVGY3TQOJQ&issuer=Latchkey")
	f.Add("otpauth://totp/a?secret=GEZD&digits=8&period=60&algorithm=sha256")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := totp.ParseURI(s)
		if err == nil && (len(k.Secret) == 0 || k.Account == "" || (k.Digits != 6 && k.Digits != 8)) {
			t.Fatalf("ParseURI(%q) accepted an invalid key %+v", s, k)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	secret, _ := totp.GenerateSecret()
	now := time.Now()
	code := totp.Code(secret, totp.Step(now)+1) // the last of the three candidates
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := totp.Verify(secret, code, now, 0); !ok {
			b.Fatal("not verified")
		}
	}
}

func BenchmarkCode(b *testing.B) {
	secret, _ := totp.GenerateSecret()
	b.ReportAllocs()
	for b.Loop() {
		totp.Code(secret, 12345)
	}
}
