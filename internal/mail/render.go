package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"
)

// Data is what the security notices (TOTPEnabled, TOTPDisabled, PasswordChanged,
// RecoveryCodeUsed) show. Every field is treated as untrusted text: the HTML part escapes it.
type Data struct {
	Username  string
	Time      time.Time // when it happened; shown in UTC
	IP        string    // omitted when empty
	UserAgent string    // omitted when empty
	// PublicURL is the server's address; the mails link to PublicURL + "/settings/security".
	PublicURL string
	// ProductName names the sender in the mail; default "Latchkey".
	ProductName string
	// RecoveryCodesLeft is how many unused recovery codes remain; used by RecoveryCodeUsed.
	RecoveryCodesLeft int
	// DeviceName names the Latch device of a device or push notice.
	DeviceName string
	// Account names the user an admin notice is about.
	Account string
	// Ticket, when not 0, is the support ticket under which the support desk made the change:
	// the notice says so, and what to do if the user never asked (a reset talked out of an
	// agent shows here first).
	Ticket int64
}

// SecurityURL is the link to the user's security settings, or "" without a PublicURL.
func (d Data) SecurityURL() string {
	if d.PublicURL == "" {
		return ""
	}
	return strings.TrimSuffix(d.PublicURL, "/") + "/settings/security"
}

// When is the event time in UTC, for people: "Sunday 22 November 2026 at 10:15 UTC".
func (d Data) When() string { return d.Time.UTC().Format("Monday 2 January 2006 at 15:04 UTC") }

// Product is ProductName, or "Latchkey" when it is empty.
func (d Data) Product() string {
	if d.ProductName == "" {
		return "Latchkey"
	}
	return d.ProductName
}

// Kinds of mail, the names Render accepts.
const (
	KindTOTPEnabled      = "totp_enabled"
	KindTOTPDisabled     = "totp_disabled"
	KindPasswordChanged  = "password_changed"
	KindRecoveryCodeUsed = "recovery_code_used"
	KindDeviceAdded      = "device_added"
	KindDeviceRemoved    = "device_removed"
	KindDeviceSwitched   = "device_switched"
	KindPushFraud        = "push_fraud"
	KindPushFraudAdmin   = "push_fraud_admin"
	KindKeyAdded         = "key_added"
	KindKeyRemoved       = "key_removed"
	KindMFAReset         = "mfa_reset"
)

// KeyAdded tells a user that a security key (named by DeviceName) was registered.
func KeyAdded(to string, d Data) (Message, error) { return Render(KindKeyAdded, to, d) }

// KeyRemoved tells a user that a security key (named by DeviceName) was removed.
func KeyRemoved(to string, d Data) (Message, error) { return Render(KindKeyRemoved, to, d) }

// MFAReset tells a user that every second factor of the account was removed.
func MFAReset(to string, d Data) (Message, error) { return Render(KindMFAReset, to, d) }

// TOTPEnabled tells a user that two-factor authentication was turned on.
func TOTPEnabled(to string, d Data) (Message, error) { return Render(KindTOTPEnabled, to, d) }

// TOTPDisabled tells a user that two-factor authentication was turned off.
func TOTPDisabled(to string, d Data) (Message, error) { return Render(KindTOTPDisabled, to, d) }

// PasswordChanged tells a user that their password was changed.
func PasswordChanged(to string, d Data) (Message, error) {
	return Render(KindPasswordChanged, to, d)
}

// RecoveryCodeUsed tells a user that a recovery code was used to sign in and how many remain
// (d.RecoveryCodesLeft).
func RecoveryCodeUsed(to string, d Data) (Message, error) {
	return Render(KindRecoveryCodeUsed, to, d)
}

// DeviceAdded tells a user that a Latch device (d.DeviceName) was added.
func DeviceAdded(to string, d Data) (Message, error) { return Render(KindDeviceAdded, to, d) }

// DeviceRemoved tells a user that a Latch device (d.DeviceName) was removed.
func DeviceRemoved(to string, d Data) (Message, error) { return Render(KindDeviceRemoved, to, d) }

// DeviceSwitched tells a user that a Latch device (d.DeviceName) moved to a new key.
func DeviceSwitched(to string, d Data) (Message, error) { return Render(KindDeviceSwitched, to, d) }

// PushFraud tells a user that a push was denied as "this wasn't me" and pushes are paused.
func PushFraud(to string, d Data) (Message, error) { return Render(KindPushFraud, to, d) }

// PushFraudAdmin tells an admin (d.Username) that d.Account reported a push as fraud.
func PushFraudAdmin(to string, d Data) (Message, error) { return Render(KindPushFraudAdmin, to, d) }

//go:embed templates
var templateFS embed.FS

var (
	textT = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/*.txt"))
	htmlT = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/*.html"))
)

// Render renders the mail kind to one recipient with data d, the dot of the kind's
// templates. A kind KIND is three embedded templates:
//
//	templates/KIND.txt   defines "KIND.subject" (one line) and "KIND.body" (the text part)
//	templates/KIND.html  defines "KIND.body" (the HTML part, escaped by html/template)
//
// layout.txt and layout.html wrap the bodies with the product name (d's Product method when
// it has one, else "Latchkey"), the subject and a footer. Security notices take a Data and
// include the "greeting" and "security_notice" partials of templates/security.*, which say
// when and from where it happened and what to do if it wasn't the user. To add a kind, add
// the two files and, for callers, a function like TOTPEnabled.
func Render(kind, to string, d any) (Message, error) {
	if textT.Lookup(kind+".subject") == nil || textT.Lookup(kind+".body") == nil || htmlT.Lookup(kind+".body") == nil {
		return Message{}, fmt.Errorf("mail: unknown kind %q", kind)
	}
	product := "Latchkey"
	if p, ok := d.(interface{ Product() string }); ok {
		product = p.Product()
	}
	var subj, text, html bytes.Buffer
	if err := textT.ExecuteTemplate(&subj, kind+".subject", d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s subject: %w", kind, err)
	}
	if err := textT.ExecuteTemplate(&text, kind+".body", d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s text: %w", kind, err)
	}
	if err := htmlT.ExecuteTemplate(&html, kind+".body", d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s html: %w", kind, err)
	}
	subject := strings.Join(strings.Fields(subj.String()), " ")
	textView := struct{ Product, Subject, Body string }{product, subject, tidy(text.String())}
	htmlView := struct {
		Product, Subject string
		Body             htmltemplate.HTML // produced by html/template above, so already escaped
	}{product, subject, htmltemplate.HTML(html.String())}
	text.Reset()
	html.Reset()
	if err := textT.ExecuteTemplate(&text, "layout.txt", textView); err != nil {
		return Message{}, fmt.Errorf("mail: render %s text layout: %w", kind, err)
	}
	if err := htmlT.ExecuteTemplate(&html, "layout.html", htmlView); err != nil {
		return Message{}, fmt.Errorf("mail: render %s html layout: %w", kind, err)
	}
	return Message{To: to, Subject: subject, Text: text.String(), HTML: html.String()}, nil
}

var blankLines = regexp.MustCompile(`\n[ \t]*\n(?:[ \t]*\n)+`)

// tidy trims a text body and collapses runs of blank lines, so templates can be laid out
// for reading.
func tidy(s string) string {
	return blankLines.ReplaceAllString(strings.TrimSpace(s), "\n\n")
}
