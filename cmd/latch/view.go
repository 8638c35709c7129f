package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"golang.org/x/term"

	"github.com/latchkey/latchkey/internal/deviceproto"
)

// pending is a request shown in the view, with the client that answers it.
type pending struct {
	ch deviceproto.Challenge
	c  *client
}

// view is the interactive terminal view: the accounts with live codes and a countdown, and
// incoming requests the moment they arrive. It reads whole lines, so it works the same in a
// terminal, under tmux, or with a pipe: a number and Enter approves the request (only while
// one waits: with several, latch cannot tell which one the browser showed), "d" denies the
// newest, "f" denies it as "this wasn't me", "q" quits.
func (a *app) view(ctx context.Context) error {
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var reqs []pending
	status := "Waiting for sign-in requests. Type the number and Enter to approve, d to deny, f for \"this wasn't me\", q to quit."
	redraw := make(chan struct{}, 1)
	poke := func() {
		select {
		case redraw <- struct{}{}:
		default:
		}
	}
	for i := range st.Registrations {
		r := st.Registrations[i]
		c, err := clientFor(&r)
		if err != nil {
			return err
		}
		go func() {
			err := c.listen(ctx, func(ch deviceproto.Challenge) {
				mu.Lock()
				for _, p := range reqs {
					if p.ch.ID == ch.ID {
						mu.Unlock()
						return
					}
				}
				reqs = append(reqs, pending{ch: ch, c: c})
				mu.Unlock()
				poke()
			})
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				status = fmt.Sprintf("%s on %s: %v", r.Username, r.Server, err)
				mu.Unlock()
				poke()
			}
		}()
	}
	lines := make(chan string)
	go readLines(a.stdin, lines)
	tty := false
	if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		mu.Lock()
		now := a.now()
		live := reqs[:0]
		for _, p := range reqs {
			if now.Before(p.ch.ExpiresAt) {
				live = append(live, p)
			}
		}
		reqs = live
		screen := a.render(st, reqs, status, now)
		mu.Unlock()
		if tty {
			fmt.Fprint(a.stdout, "\x1b[H\x1b[2J"+strings.ReplaceAll(screen, "\n", "\r\n"))
		} else {
			fmt.Fprint(a.stdout, screen)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-redraw:
		case line, ok := <-lines:
			if !ok || line == "q" {
				return nil
			}
			mu.Lock()
			if len(reqs) == 0 {
				if line != "" {
					status = "There is no pending request."
				}
				mu.Unlock()
				continue
			}
			p, several := reqs[len(reqs)-1], len(reqs) > 1
			mu.Unlock()
			decision, number := deviceproto.DecisionApprove, line
			switch strings.ToLower(line) {
			case "d":
				decision, number = deviceproto.DecisionDeny, ""
			case "f":
				decision, number = deviceproto.DecisionFraud, ""
			case "":
				continue
			}
			if decision == deviceproto.DecisionApprove && several {
				// Which request is the browser's is not known here: approve none (see
				// severalWaiting).
				mu.Lock()
				status = fmt.Sprintf("%d requests are waiting and latch cannot tell which one is yours, so it approved none. If only one is yours, type f: someone else knows your password.", len(reqs))
				mu.Unlock()
				continue
			}
			res, err := p.c.answer(ctx, p.ch.ID, decision, number)
			mu.Lock()
			reqs = reqs[:0:0]
			switch {
			case err != nil:
				status = "Not answered: " + err.Error()
			case res.State == "approved":
				status = fmt.Sprintf("Approved. (%s from %s)", p.ch.Kind, p.ch.IP)
			case res.Reason == "wrong_number":
				status = "Denied: the number did not match the one in the browser."
			case res.Reason == "fraud":
				status = "Denied and reported. Your administrators and you were told."
			default:
				status = "Denied."
			}
			mu.Unlock()
		}
	}
}

func (a *app) render(st *State, reqs []pending, status string, now time.Time) string {
	var b strings.Builder
	b.WriteString("Latch\n\n")
	left := 30 - now.Unix()%30
	es := a.entries(st)
	if len(es) == 0 {
		b.WriteString("  No accounts yet: latch activate CODE --server URL, or latch add otpauth://...\n")
	}
	for _, e := range es {
		code := e.code
		if len(code) == 6 {
			code = code[:3] + " " + code[3:]
		}
		fmt.Fprintf(&b, "  %-40s %s  %2ds %s\n", e.label, code, left, strings.Repeat("█", int(left)/3))
	}
	b.WriteString("\n")
	for _, p := range reqs {
		ch := p.ch
		what := "Sign-in request"
		if ch.Kind == deviceproto.ChallengeAddDevice {
			what = fmt.Sprintf("Add device %q", ch.DeviceName)
		}
		fmt.Fprintf(&b, "▶ %s for %s\n", what, ch.Username)
		fmt.Fprintf(&b, "    Application: %s\n    Browser:     %s\n    IP address:  %s\n    Time:        %s (expires in %ds)\n",
			ch.Application, ch.Browser, ch.IP, ch.Time.Local().Format("15:04:05"), int(ch.ExpiresAt.Sub(now).Seconds()))
		fmt.Fprintf(&b, "    Type the %d-digit number shown in the browser and press Enter; d to deny; f if this wasn't you.\n", ch.NumberLength)
	}
	b.WriteString("\n" + status + "\n> ")
	return b.String()
}

// terminalQR draws a QR code with Unicode half blocks, two modules per character cell.
func terminalQR(content string) (string, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	return drawQR(code), nil
}

func drawQR(code barcode.Barcode) string {
	n := code.Bounds().Dx()
	dark := func(x, y int) bool {
		if x < 0 || y < 0 || x >= n || y >= n {
			return false
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r < 0x8000
	}
	var b strings.Builder
	for y := -2; y < n+2; y += 2 {
		for x := -2; x < n+2; x++ {
			top, bot := dark(x, y), dark(x, y+1)
			switch {
			case top && bot:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bot:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
