package browsertest

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Authenticator adds a DevTools virtual authenticator to the tab: a USB security key
// (CTAP2, resident keys, user verification) that is touched at once, holding creds (for
// example those that Unplug returned from another tab).
func Authenticator(tb testing.TB, ctx context.Context, creds ...*webauthn.Credential) webauthn.AuthenticatorID {
	tb.Helper()
	var id webauthn.AuthenticatorID
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportUsb,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			// Credentials read back with GetCredentials carry CMTG fields, which AddCredential
			// accepts only on an authenticator that supports the extension.
			HasCmtgKey: true,
		}})
		if err != nil {
			return err
		}
		id = res.AuthenticatorID
		for _, c := range creds {
			c.CmtgKeys, c.ActiveCmtgKeyIndex, c.GenerateCmtgKeyOnNextOperation = nil, nil, false
			if _, err := chromedp.Call(ctx, webauthn.AddCredential, webauthn.AddCredentialParams{AuthenticatorID: id, Credential: c}); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		tb.Fatalf("add a virtual authenticator: %v", err)
	}
	return id
}
