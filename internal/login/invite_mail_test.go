package login_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
)

// refusingMailer is a mail.Sender that refuses every message while refuse is set, and
// otherwise hands it to next.
type refusingMailer struct {
	refuse atomic.Bool
	next   mail.Sender
}

func (m *refusingMailer) Send(ctx context.Context, msg mail.Message) error {
	if m.refuse.Load() {
		return errors.New("mailbox unavailable")
	}
	return m.next.Send(ctx, msg)
}

// TestInvitationMailFailedRemembered: when the activation mail of a new account cannot be
// sent, the account exists and its invitation remembers when the mail failed, so that the
// consoles can say the user has no link on every visit; a new link whose mail goes out
// clears it, and one whose mail fails again records it again.
func TestInvitationMailFailedRemembered(t *testing.T) {
	m := &refusingMailer{}
	e := newEnv(t, func(o *login.Options) { m.next = o.Mailer; o.Mailer = m })
	ctx := context.Background()
	root, _ := e.staff(t)
	failed := func(id latchkey.UserID) bool {
		t.Helper()
		inv, err := e.db.FindInvitationByUserID(ctx, id)
		if err != nil {
			t.Fatalf("FindInvitationByUserID: %v", err)
		}
		return inv.MailFailedAt != nil
	}

	m.refuse.Store(true)
	u, err := e.svc.InviteUser(ctx, alice, root, true, "newbie", "newbie@example.com", latchkey.RoleUser)
	if u == nil || code(t, err) != latchkey.EInternal {
		t.Fatalf("InviteUser with the mail refused = %v, %v; want the account and an error", u, err)
	}
	inv, err := e.db.FindInvitationByUserID(ctx, u.ID)
	if err != nil || inv.MailFailedAt == nil || !inv.MailFailedAt.Equal(e.clock.Now()) {
		t.Fatalf("invitation after the failed mail = %+v, %v; want MailFailedAt %v", inv, err, e.clock.Now())
	}

	// A new link that goes out: the failure is forgotten with the old link.
	m.refuse.Store(false)
	if err := e.svc.ResendInvitation(ctx, alice, root, u.ID); err != nil {
		t.Fatal(err)
	}
	if failed(u.ID) {
		t.Error("the invitation still says its mail failed after a new link was sent")
	}
	// A new link whose mail fails again.
	m.refuse.Store(true)
	if err := e.svc.ResendInvitation(ctx, alice, root, u.ID); err == nil {
		t.Fatal("ResendInvitation with the mail refused succeeded")
	}
	if !failed(u.ID) {
		t.Error("the invitation does not say that the new link's mail failed")
	}

	// An invitation whose mail went out says nothing of a failure.
	m.refuse.Store(false)
	ok, err := e.svc.InviteUser(ctx, alice, root, true, "carol", "carol@example.com", latchkey.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	if failed(ok.ID) {
		t.Error("the invitation of carol, whose mail went out, says it failed")
	}
}
