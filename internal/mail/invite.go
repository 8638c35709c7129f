package mail

import (
	"strings"
	"time"
)

// KindUserInvited is the activation mail of a user created by an administrator.
const KindUserInvited = "user_invited"

// InviteData is what the activation mail shows. Every field is untrusted text.
type InviteData struct {
	Username  string
	InvitedBy string // the administrator or agent who created the account
	// URL is the one-time activation link. It is a secret: it goes into the mail and nowhere
	// else.
	URL         string
	ExpiresAt   time.Time
	ProductName string
}

// Product is ProductName, or "Latchkey" when it is empty.
func (d InviteData) Product() string {
	if d.ProductName == "" {
		return "Latchkey"
	}
	return d.ProductName
}

// Expires is the end of the link's validity in UTC, for people.
func (d InviteData) Expires() string {
	return d.ExpiresAt.UTC().Format("Monday 2 January 2006 at 15:04 UTC")
}

// Host is the server's host name taken from URL, so the mail says where the account lives.
func (d InviteData) Host() string {
	h := strings.TrimPrefix(strings.TrimPrefix(d.URL, "https://"), "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	return h
}

// UserInvited tells a new user that an account was created for them and links to the page
// where they choose a password.
func UserInvited(to string, d InviteData) (Message, error) { return Render(KindUserInvited, to, d) }
