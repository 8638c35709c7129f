package mailtest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	lkmail "github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
)

func TestWait(t *testing.T) {
	srv := mailtest.StartServer(t)
	s, err := lkmail.New(lkmail.Options{SMTPURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			errs <- s.Send(ctx, lkmail.Message{To: fmt.Sprintf("u%d@example.com", i), Subject: fmt.Sprintf("Hello %d", i), Text: "hi", HTML: "<p>hi</p>"})
		}()
	}
	// Two waiters at once: both must wake up.
	got := make(chan mailtest.Received, 1)
	go func() {
		m, err := srv.WaitFor(ctx, "U2@example.com", "Hello 2")
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	msgs, err := srv.Wait(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Errorf("Wait(3) returned %d messages", len(msgs))
	}
	if m := <-got; m.To != "u2@example.com" || m.Subject != "Hello 2" || m.Text != "hi" || m.HTML != "<p>hi</p>" {
		t.Errorf("WaitFor = %+v", m)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestWaitTimeout(t *testing.T) {
	srv := mailtest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := srv.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want %v", err, context.DeadlineExceeded)
	}
	if _, err := srv.WaitFor(ctx, "a@example.com", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor = %v, want %v", err, context.DeadlineExceeded)
	}
}
