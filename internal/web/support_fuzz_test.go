package web_test

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/latchkey/latchkey/internal/support"
)

// FuzzTicketAPI posts arbitrary bodies to POST /api/v1/support/tickets and the same fields to
// the HTML form: the server never answers 500, a refusal is a precise 4xx with a JSON error
// (code and message), and a created ticket answers 201 with its number and a tracking link
// that opens it.
func FuzzTicketAPI(f *testing.F) {
	for _, s := range []string{
		`{"email":"alice@example.com","username":"alice","type":"lost_phone","message":"I lost my phone."}`,
		`{"email":"alice@example.com","type":"other","message":"x","extra":1}`,
		`{"email":["a"]}`,
		`{"email":"a@example.com","type":"other","message":"x"} {}`,
		`{"email":"a@example.com","username":null,"type":"other","message":"\u0000"}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add(s, "application/json")
	}
	f.Add("email=a%40example.com&type=other&message=hi", "application/x-www-form-urlencoded")
	fx := newSupportFixture(f, io.Discard, func(o *support.Options) { o.PerEmail, o.IPBurst = 1<<30, 1<<30 })
	c := fx.client(f)
	f.Fuzz(func(t *testing.T, body, ctype string) {
		c.tb = t
		for _, ch := range ctype {
			if ch < 0x20 && ch != '\t' || ch == 0x7f {
				t.Skip("the HTTP client refuses this Content-Type before it reaches the server")
			}
		}
		r := c.do("POST", "/api/v1/support/tickets", ctype, body)
		switch r.code {
		case 201:
			var got struct {
				ID          int64  `json:"id"`
				TrackingURL string `json:"tracking_url"`
			}
			if err := json.Unmarshal([]byte(r.raw), &got); err != nil || got.ID < 1001 || got.TrackingURL == "" {
				t.Fatalf("201 with %s", r.raw)
			}
			if page := c.do("GET", got.TrackingURL[len(fx.srv.URL):], "", ""); page.code != 200 {
				t.Fatalf("the tracking link of ticket %d answers %d", got.ID, page.code)
			}
		case 400, 413, 415:
			e, _ := r.body["error"].(map[string]any)
			if code, _ := e["code"].(string); code == "" {
				t.Fatalf("%d without an error code: %s", r.code, r.raw)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Fatalf("%d without a message: %s", r.code, r.raw)
			}
		default:
			t.Fatalf("POST %q (%s) = %d %s", body, ctype, r.code, r.raw)
		}
		if p := c.do("POST", "/support/new", "application/x-www-form-urlencoded", body); p.code >= 500 || (p.code != 303 && p.code != 400 && p.code != 413) {
			t.Fatalf("form POST %q = %d", body, p.code)
		}
	})
}
