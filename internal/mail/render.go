package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

// Data is what the notification templates may use.
type Data struct {
	Username  string
	Time      time.Time
	IP        string
	UserAgent string
	// PublicURL is the server's address; the mails link to PublicURL + "/settings/security".
	PublicURL   string
	ProductName string // default "Latchkey"
	// RecoveryCodesLeft is used by RecoveryCodeUsed.
	RecoveryCodesLeft int
}

// SecurityURL is the link to the user's security settings.
func (d Data) SecurityURL() string {
	return strings.TrimSuffix(d.PublicURL, "/") + "/settings/security"
}

// When is the event time in UTC, for people.
func (d Data) When() string { return d.Time.UTC().Format("Monday 2 January 2006 at 15:04 UTC") }

//go:embed templates
var templateFS embed.FS

var (
	textT = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/*.txt"))
	htmlT = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/*.html"))
)

// Render renders the notification kind for one recipient. A kind is three templates:
// "KIND.subject" and "KIND.body" in templates/*.txt, and "KIND.body" in templates/*.html;
// layout.txt and layout.html wrap the body with the greeting, the time, IP and browser, and
// the "if this wasn't you" advice.
func Render(kind, to string, d Data) (Message, error) {
	if d.ProductName == "" {
		d.ProductName = "Latchkey"
	}
	var subj, body, htmlBody, text, html bytes.Buffer
	if err := textT.ExecuteTemplate(&subj, kind+".subject", d); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", kind, err)
	}
	if err := textT.ExecuteTemplate(&body, kind+".body", d); err != nil {
		return Message{}, fmt.Errorf("render %s body: %w", kind, err)
	}
	if err := htmlT.ExecuteTemplate(&htmlBody, kind+".body", d); err != nil {
		return Message{}, fmt.Errorf("render %s html body: %w", kind, err)
	}
	view := struct {
		Data
		Subject  string
		Body     string
		BodyHTML htmltemplate.HTML // produced by html/template above, so already escaped
	}{d, strings.TrimSpace(subj.String()), body.String(), htmltemplate.HTML(htmlBody.String())}
	if err := textT.ExecuteTemplate(&text, "layout.txt", view); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", kind, err)
	}
	if err := htmlT.ExecuteTemplate(&html, "layout.html", view); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", kind, err)
	}
	return Message{To: to, Subject: view.Subject, Text: text.String(), HTML: html.String()}, nil
}

// TOTPEnabled tells a user that two-factor authentication was turned on.
func TOTPEnabled(to string, d Data) (Message, error) { return Render("totp_enabled", to, d) }

// TOTPDisabled tells a user that two-factor authentication was turned off.
func TOTPDisabled(to string, d Data) (Message, error) { return Render("totp_disabled", to, d) }

// PasswordChanged tells a user that their password was changed.
func PasswordChanged(to string, d Data) (Message, error) { return Render("password_changed", to, d) }

// RecoveryCodeUsed tells a user that a recovery code was used to sign in.
func RecoveryCodeUsed(to string, d Data) (Message, error) {
	return Render("recovery_code_used", to, d)
}
