package support_test

import (
	"net/mail"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/support"
)

// FuzzTicketValidate feeds arbitrary requester input to the validation of a new ticket: it
// never panics; a refusal is EInvalid with a message; accepted input is normalised (a plain
// address, a valid or empty username, a configured type, a non-empty message of at most
// MaxMessage characters of valid UTF-8 without NUL) and validates again unchanged.
func FuzzTicketValidate(f *testing.F) {
	f.Add("alice@example.com", "alice", "lost_phone", "I lost my phone.")
	f.Add(" Alice@Example.com ", " ALICE ", "other", "\r\n  help  \r\n")
	f.Add("Alice <alice@example.com>", "", "other", "x")
	f.Add("a@b", "a b", "nope", "")
	f.Add("\"a b\"@example.com", "ａｌｉｃｅ", "account_change", "\x00")
	f.Add("alice@[127.0.0.1]", "x@y", "lost_key", "\xff")
	f.Add("alice@localhost", strings.Repeat("a", 65), "other", strings.Repeat("é", support.MaxMessage+1))
	f.Fuzz(func(t *testing.T, email, username, typ, message string) {
		n := support.NewTicket{Email: email, Username: username, Type: typ, Message: message}
		err := n.Validate(support.DefaultTypes)
		if err != nil {
			if latchkey.ErrorCode(err) != latchkey.EInvalid || latchkey.ErrorMessage(err) == "" {
				t.Fatalf("Validate(%q, %q, %q, %q) = %v, want invalid_request with a message", email, username, typ, message, err)
			}
			return
		}
		if a, err := mail.ParseAddress(n.Email); err != nil || a.Address != n.Email || len(n.Email) > support.MaxEmail {
			t.Errorf("accepted email %q (%v)", n.Email, err)
		}
		if n.Username != "" && (!login.ValidUsername(n.Username) || login.NormalizeUsername(n.Username) != n.Username) {
			t.Errorf("accepted username %q", n.Username)
		}
		if !slices.ContainsFunc(support.DefaultTypes, func(c support.Choice) bool { return c.ID == n.Type }) {
			t.Errorf("accepted type %q", n.Type)
		}
		if n.Message == "" || !utf8.ValidString(n.Message) || strings.ContainsRune(n.Message, 0) || utf8.RuneCountInString(n.Message) > support.MaxMessage || strings.TrimSpace(n.Message) != n.Message {
			t.Errorf("accepted message %q", n.Message)
		}
		again := n
		if err := again.Validate(support.DefaultTypes); err != nil || again != n {
			t.Errorf("validating the normalised ticket again: %+v, %v (was %+v)", again, err, n)
		}
	})
}
