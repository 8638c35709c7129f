// Command latch is the Latch authenticator app: the desktop MFA app of Latchkey and the
// reference client of its device protocol (docs/device-protocol.md). It shows 6-digit codes
// for any TOTP account and answers Latchkey push requests with number matching.
//
//	latch [--home DIR] activate CODE_OR_URI [--server URL] [--name NAME]
//	latch [--home DIR] activate --transfer CODE_OR_URI [--server URL]
//	latch [--home DIR] codes | accounts | devices
//	latch [--home DIR] add otpauth://totp/...
//	latch [--home DIR] approve --number N [--timeout 30s]
//	latch [--home DIR] deny [--fraud] [--timeout 30s]
//	latch [--home DIR] remove ACCOUNT
//	latch [--home DIR] switch-device [--account ACCOUNT]
//	latch [--home DIR]                      the interactive terminal view
//
// State (device private keys, seeds) lives in an encrypted vault under --home; the passphrase
// comes from LATCH_PASSPHRASE when set, else the OS keyring, else a prompt on the terminal.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/latchkey/latchkey/internal/deviceproto"
	"github.com/latchkey/latchkey/internal/totp"
)

// usage is what latch help (and -h, --help) prints.
const usage = `Latch, the authenticator app of Latchkey: 6-digit codes and push approvals.

Usage:
  latch [--home DIR] activate CODE_OR_URI [--server URL] [--name NAME]
                                    activate this device with the QR code's URI, or with the
                                    short code and the server's URL
  latch [--home DIR] activate --transfer CODE_OR_URI [--server URL]
                                    take over the registration of another device
  latch [--home DIR] codes          print the current code of every account, one per line
  latch [--home DIR] accounts       list the accounts
  latch [--home DIR] devices        list the devices registered with the account
  latch [--home DIR] add otpauth://totp/...
                                    add an account of any service by its otpauth URI
  latch [--home DIR] approve --number N [--timeout 30s]
                                    wait for a sign-in request and answer it with the number
                                    shown in the browser (none while several wait)
  latch [--home DIR] deny [--fraud] [--timeout 30s]
                                    deny the most recent request (--fraud: this wasn't me)
  latch [--home DIR] remove ACCOUNT remove an account from this vault (as accounts lists it)
  latch [--home DIR] switch-device [--account ACCOUNT]
                                    print a one-time transfer code for a new device
  latch [--home DIR]                the interactive view: codes and requests as they come

The vault (device keys, seeds) is under --home, by default latch in the user's config folder
(~/.config/latch on Linux). Its passphrase comes from LATCH_PASSPHRASE when set, else the OS
keyring, else a prompt.
latch COMMAND --help lists the command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C: said as such (a command that knows more says what it left undone), not
		// as a failure to reach the server; exit 130, as a shell reports SIGINT.
		if !errors.Is(err, errInterrupted) {
			err = errInterrupted
		}
		fmt.Fprintln(os.Stderr, "latch:", err)
		os.Exit(130)
	}
	code := exitCode(err, os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode prints err (when there is one) and returns the process's exit code: 0 for none
// and for -h or --help (whose usage went to standard output), 2 for a command line that is
// wrong (usageError: a flag, an argument, a command), 1 for anything else, like latchkey.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "latch:", err)
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// errInterrupted: the command was stopped by Ctrl-C (main exits 130).
var errInterrupted = errors.New("interrupted")

// usageError is a command line that is wrong: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef is a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// app is one invocation.
type app struct {
	vault  *Vault
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

func defaultHome() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".latch"
	}
	return filepath.Join(dir, "latch")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("latch", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // main prints the error once
	fs.Usage = func() {}
	home := fs.String("home", defaultHome(), "folder of the vault")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return err
	} else if err != nil {
		return usagef("%w (latch help lists the commands and flags)", err)
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	a.vault = &Vault{home: *home, passphrase: a.passphrase, env: os.Getenv("LATCH_PASSPHRASE") != "", ring: osKeyring{timeout: 5 * time.Second}}
	rest := fs.Args()
	if len(rest) == 0 {
		return a.view(ctx)
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "activate":
		return a.activate(ctx, rest)
	case "codes":
		return a.noArgs("codes", rest, a.codes)
	case "accounts":
		return a.noArgs("accounts", rest, a.accounts)
	case "add":
		return a.add(rest)
	case "remove":
		return a.remove(rest)
	case "devices":
		return a.noArgs("devices", rest, func() error { return a.devices(ctx) })
	case "approve":
		return a.respond(ctx, "approve", rest)
	case "deny":
		return a.respond(ctx, "deny", rest)
	case "switch-device":
		return a.switchDevice(ctx, rest)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown command %q (try latch help)", cmd)
}

// flags returns the flag set of the command what and the function that parses its
// arguments (parseFlags): -h or --help prints the command's synopsis and flags to standard
// output and returns flag.ErrHelp, which exits 0; a wrong flag is an error that says where
// the flags are listed.
//
// Every command also takes --home after its name (latch codes --home DIR), which sets the
// vault's folder as before it: the vault is read only after the flags are parsed.
func (a *app) flags(what, synopsis string) (*flag.FlagSet, func(args []string) ([]string, error)) {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the errors reach main, which prints them once
	fs.Usage = func() {}
	fs.StringVar(&a.vault.home, "home", a.vault.home, "folder of the vault")
	return fs, func(args []string) ([]string, error) {
		pos, err := parseFlags(fs, args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(a.stdout, "usage: latch [--home DIR] %s %s\n", what, synopsis)
			fs.SetOutput(a.stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		} else if err != nil {
			err = usagef("%s: %w (latch %s --help lists them)", what, err, what)
		}
		return pos, err
	}
}

// noArgs runs f for a command that takes no arguments, after its flags (-h and --help print
// its usage and run nothing; an argument is an error).
func (a *app) noArgs(what string, args []string, f func() error) error {
	_, parse := a.flags(what, "")
	pos, err := parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q (latch %s --help)", what, pos[0], what)
	}
	return f()
}

// oneArg parses the flags of a command that takes exactly one argument and returns it; with
// none or several it returns usage as the error.
func (a *app) oneArg(what, synopsis, usage string, args []string) (string, error) {
	_, parse := a.flags(what, synopsis)
	pos, err := parse(args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("%s", usage)
	}
	return pos[0], nil
}

// parseFlags parses flags that may come before or after positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (a *app) passphrase() (string, error) {
	if p := os.Getenv("LATCH_PASSPHRASE"); p != "" {
		return p, nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("set LATCH_PASSPHRASE, or run latch in a terminal to type the vault's passphrase")
	}
	fmt.Fprint(a.stderr, "Vault passphrase: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("the passphrase must not be empty")
	}
	return string(b), nil
}

func (a *app) activate(ctx context.Context, args []string) error {
	fs, parse := a.flags("activate", "CODE_OR_URI [--server URL] [--name NAME] [--transfer]")
	server := fs.String("server", "", "the Latchkey server's URL (with a short code)")
	transfer := fs.Bool("transfer", false, "take over a registration with a transfer code")
	host, _ := os.Hostname()
	name := fs.String("name", host, "this device's name, shown on the Security page")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for approval by another device")
	pos, err := parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: latch activate CODE_OR_URI [--server URL] [--transfer]")
	}
	code := pos[0]
	if strings.HasPrefix(code, deviceproto.Scheme+"://") {
		kind, srv, c, err := deviceproto.ParseURI(code)
		if err != nil {
			return err
		}
		if kind == deviceproto.KindTransfer {
			*transfer = true
		}
		*server, code = srv, c
	}
	if *server == "" {
		return usagef("--server URL is needed with a short code")
	}
	if u, err := url.Parse(*server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--server %q must be the server's URL, like https://login.example.com", *server)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be more than 0, like 2m")
	}
	if *name == "" {
		*name = "Latch on " + runtime.GOOS
	}
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	// The vault must be able to keep the new key before the server registers it: a code
	// redeemed (a transfer: the old device cut off) for a key that is then lost leaves the
	// account with a device nobody holds.
	if err := a.vault.Prepare(); err != nil {
		return err
	}
	key, err := deviceproto.GenerateKey()
	if err != nil {
		return err
	}
	pub, err := deviceproto.EncodePublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	c := newClient(*server, key, 0)
	path := deviceproto.PathActivate
	if *transfer {
		path = deviceproto.PathRedeem
	}
	var res deviceproto.ActivateResponse
	status, err := c.do(ctx, "POST", path, deviceproto.ActivateRequest{Code: code, PublicKey: pub, Name: *name, Platform: runtime.GOOS}, &res)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	reg := Registration{Server: c.server, DeviceID: res.DeviceID, Username: res.Username, Issuer: res.Issuer, Name: res.Name, PrivateKey: der, State: res.State, AddedAt: a.now().UTC()}
	if status == 202 || res.State == deviceproto.StatePendingApproval {
		fmt.Fprintf(a.stdout, "Approve this device on your other device: type %s\n", res.Number)
		c.device = res.DeviceID
		info, err := a.waitApproval(ctx, c, *timeout)
		if err != nil {
			return err
		}
		res.DeviceInfo = *info
	}
	if res.TOTP == nil {
		return errors.New("the server sent no offline-code seed")
	}
	if reg.Seed, err = totp.Decode(res.TOTP.Secret); err != nil {
		return fmt.Errorf("offline-code seed: %w", err)
	}
	reg.State = deviceproto.StateActive
	// A transfer replaces an older registration of the same device in this vault.
	kept := st.Registrations[:0]
	for _, r := range st.Registrations {
		if !(r.Server == reg.Server && r.DeviceID == reg.DeviceID) {
			kept = append(kept, r)
		}
	}
	st.Registrations = append(kept, reg)
	if err := a.vault.Save(st); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Activated %q for %s on %s.\n", reg.Name, reg.Username, reg.Server)
	return nil
}

func (a *app) waitApproval(ctx context.Context, c *client, timeout time.Duration) (*deviceproto.DeviceInfo, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var info deviceproto.DeviceInfo
		if _, err := c.do(ctx, "GET", deviceproto.PathDevice, nil, &info); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403) {
				return nil, fmt.Errorf("the new device was not approved: %w", err)
			}
		} else if info.State == deviceproto.StateActive {
			return &info, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, errors.New("no approval came in time; start again with a new activation code")
}

// entry is one line of `latch codes`.
type entry struct {
	label string
	code  string
}

func (a *app) entries(st *State) []entry {
	now := a.now()
	var out []entry
	for _, r := range st.Registrations {
		if r.Seed != nil {
			out = append(out, entry{r.Issuer + ":" + r.Username, totp.Code(r.Seed, totp.Step(now))})
		}
	}
	for _, ac := range st.Accounts {
		period := int64(max(ac.Period, 1))
		out = append(out, entry{label(ac), totp.CodeCustom(ac.Secret, now.Unix()/period, ac.Digits, totp.Algorithm(ac.Algorithm))})
	}
	return out
}

func label(ac Account) string {
	if ac.Issuer == "" {
		return ac.Name
	}
	return ac.Issuer + ":" + ac.Name
}

func (a *app) codes() error {
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	es := a.entries(st)
	if len(es) == 0 {
		return errors.New("no accounts yet: latch activate or latch add")
	}
	for _, e := range es {
		fmt.Fprintf(a.stdout, "%s %s\n", e.label, e.code)
	}
	return nil
}

// regLabel is how latch accounts names a Latchkey registration.
func regLabel(r Registration) string { return r.Issuer + ":" + r.Username }

// remove deletes an account from the vault, by the name latch accounts shows: a TOTP account,
// or a Latchkey registration (this device's key for it: the server keeps listing the device
// until it is removed on the Security page).
func (a *app) remove(args []string) error {
	name, err := a.oneArg("remove", "ACCOUNT", "usage: latch remove ACCOUNT (as latch accounts lists it)", args)
	if err != nil {
		return err
	}
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	n := len(st.Registrations) + len(st.Accounts)
	st.Registrations = slices.DeleteFunc(st.Registrations, func(r Registration) bool { return regLabel(r) == name })
	st.Accounts = slices.DeleteFunc(st.Accounts, func(ac Account) bool { return label(ac) == name })
	if removed := n - len(st.Registrations) - len(st.Accounts); removed == 0 {
		return fmt.Errorf("no account %q in this vault (latch accounts lists them)", name)
	}
	if err := a.vault.Save(st); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Removed %s from this vault.\n", name)
	return nil
}

func (a *app) accounts() error {
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	for _, r := range st.Registrations {
		fmt.Fprintf(a.stdout, "%s\tLatchkey device %d %q on %s\n", regLabel(r), r.DeviceID, r.Name, r.Server)
	}
	for _, ac := range st.Accounts {
		fmt.Fprintf(a.stdout, "%s\tTOTP, %d digits, %d s, %s\n", label(ac), ac.Digits, ac.Period, ac.Algorithm)
	}
	return nil
}

func (a *app) add(args []string) error {
	uri, err := a.oneArg("add", "otpauth://totp/ISSUER:ACCOUNT?secret=BASE32", "usage: latch add otpauth://totp/ISSUER:ACCOUNT?secret=BASE32", args)
	if err != nil {
		return err
	}
	k, err := totp.ParseURI(uri)
	if err != nil {
		return err
	}
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	ac := Account{Issuer: k.Issuer, Name: k.Account, Secret: k.Secret, Digits: k.Digits, Period: k.Period, Algorithm: string(k.Algorithm)}
	for _, o := range st.Accounts {
		if label(o) == label(ac) && bytes.Equal(o.Secret, ac.Secret) {
			return fmt.Errorf("%s is in the vault already", label(ac))
		}
	}
	st.Accounts = append(st.Accounts, ac)
	if err := a.vault.Save(st); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Added %s.\n", label(st.Accounts[len(st.Accounts)-1]))
	return nil
}

func (a *app) devices(ctx context.Context) error {
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	if len(st.Registrations) == 0 {
		return errors.New("this device is not activated with a Latchkey server")
	}
	var failed error
	for _, r := range st.Registrations {
		c, err := clientFor(&r)
		if err != nil {
			return err
		}
		var out deviceproto.DevicesResponse
		if _, err := c.do(ctx, "GET", deviceproto.PathDevices, nil, &out); err != nil {
			// One account's refusal (this device was removed there) does not hide the others.
			failed = fmt.Errorf("%s on %s: %w", r.Username, r.Server, err)
			fmt.Fprintf(a.stdout, "%s on %s: %v\n", r.Username, r.Server, err)
			continue
		}
		fmt.Fprintf(a.stdout, "%s on %s:\n", r.Username, r.Server)
		for _, d := range out.Devices {
			var tags []string
			if d.This {
				tags = append(tags, "this device")
			}
			if d.Primary {
				tags = append(tags, "primary")
			}
			if d.State == deviceproto.StatePendingApproval {
				tags = append(tags, "waiting for approval")
			} else if d.State != deviceproto.StateActive {
				tags = append(tags, d.State)
			}
			used := "never used"
			if d.LastUsedAt != nil {
				used = "last used " + d.LastUsedAt.Local().Format("2 Jan 2006 15:04")
			}
			fmt.Fprintf(a.stdout, "  %-24s %-8s added %s, %s  %s\n", d.Name, d.Platform, d.CreatedAt.Local().Format("2 Jan 2006"), used, strings.Join(tags, ", "))
		}
	}
	return failed
}

// respond waits for a pending request on any registration and answers it: approve with the
// number, or deny (--fraud: "this wasn't me"). It fails when nothing was approved or denied.
func (a *app) respond(ctx context.Context, what string, args []string) error {
	number, fraud := new(string), new(bool) // approve has --number, deny --fraud
	synopsis := "[--fraud] [--timeout 30s]"
	if what == "approve" {
		synopsis = "--number N [--timeout 30s]"
	}
	fs, parse := a.flags(what, synopsis)
	if what == "approve" {
		number = fs.String("number", "", "the number shown in the browser")
	} else {
		fraud = fs.Bool("fraud", false, "deny and report: this wasn't me")
	}
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for a request")
	if pos, err := parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q (latch %s --help)", what, pos[0], what)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be more than 0, like 30s")
	}
	decision := deviceproto.DecisionDeny
	if what == "approve" {
		if *number == "" {
			return usagef("approve needs --number N, the number shown in the browser")
		}
		decision = deviceproto.DecisionApprove
	} else if *fraud {
		decision = deviceproto.DecisionFraud
	}
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	if len(st.Registrations) == 0 {
		return errors.New("this device is not activated with a Latchkey server")
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var lastErr error
	refused := map[int]error{} // registrations the server refuses (this device was removed there)
	for ctx.Err() == nil {
		began := time.Now()
		for i, r := range st.Registrations {
			if refused[i] != nil {
				continue
			}
			c, err := clientFor(&r)
			if err != nil {
				return err
			}
			// One registration long-polls until shortly before the deadline, so that the
			// poll ends with an answer, not with the deadline; several take turns quickly.
			wait := time.Duration(0)
			if len(st.Registrations) == 1 {
				wait = min(25*time.Second, time.Until(deadlineOf(ctx))-time.Second)
			}
			chs, err := c.poll(ctx, max(wait, 0))
			if err != nil {
				var ae *apiError
				switch {
				case ctx.Err() != nil:
					// The time is up (or latch was interrupted) during the poll.
				case errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403):
					refused[i] = fmt.Errorf("%s on %s: %w", r.Username, r.Server, err)
					fmt.Fprintf(a.stderr, "latch: %v\n", refused[i])
				case errors.As(err, &ae):
					return fmt.Errorf("%s on %s: %w", r.Username, r.Server, err)
				default:
					lastErr = err
				}
				continue
			}
			if len(chs) == 0 {
				continue
			}
			if decision == deviceproto.DecisionApprove && len(chs) > 1 {
				// The number was read in one browser, and latch cannot tell which request is
				// that browser's: someone who knows the password may have started another just
				// after. Approving a guess could sign them in.
				return severalWaiting(chs)
			}
			ch := chs[len(chs)-1] // the most recent
			res, err := c.answer(ctx, ch.ID, decision, *number)
			if err != nil {
				return err
			}
			if res.State == "approved" {
				fmt.Fprintf(a.stdout, "Approved the %s request from %s (%s).\n", kindText(ch.Kind), ch.IP, ch.Browser)
				return nil
			}
			if decision == deviceproto.DecisionApprove {
				return fmt.Errorf("not approved: %s", reasonText(res.Reason))
			}
			fmt.Fprintf(a.stdout, "Denied the %s request from %s (%s)%s.\n", kindText(ch.Kind), ch.IP, ch.Browser, map[bool]string{true: " and reported it", false: ""}[*fraud])
			return nil
		}
		if len(refused) == len(st.Registrations) {
			return refused[0]
		}
		// A round that came back at once (an unreachable server, a poll cut short, several
		// registrations) waits a second before the next, so latch never spins.
		if d := time.Second - time.Since(began); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
	if parent.Err() != nil {
		return fmt.Errorf("%w; nothing was answered", errInterrupted)
	}
	if lastErr != nil {
		return lastErr
	}
	return errors.New("no pending sign-in request")
}

// kindText names a request's kind in plain words.
// severalWaiting refuses to approve while more than one request waits, and lists them.
func severalWaiting(chs []deviceproto.Challenge) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests are waiting, and latch cannot tell which one is yours, so it approved none:", len(chs))
	for _, ch := range chs {
		fmt.Fprintf(&b, "\n  a %s request from %s (%s)", kindText(ch.Kind), ch.IP, ch.Browser)
	}
	b.WriteString("\nIf only one is yours, someone else knows your password: deny them with `latch deny --fraud` and change your password. Otherwise let them expire and sign in again.")
	return errors.New(b.String())
}

func kindText(kind string) string {
	switch kind {
	case "login":
		return "sign-in"
	case "add_device":
		return "new-device"
	}
	return kind
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(25 * time.Second)
	}
	return d
}

func reasonText(r string) string {
	switch r {
	case "wrong_number":
		return "the number did not match; the request was denied"
	case "fraud":
		return "reported as not yours"
	}
	return "denied"
}

func (a *app) switchDevice(ctx context.Context, args []string) error {
	fs, parse := a.flags("switch-device", "[--account ACCOUNT]")
	account := fs.String("account", "", "the account to move, as latch accounts lists it (needed when there are several)")
	pos, err := parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("switch-device takes no arguments, got %q (latch switch-device --help)", pos[0])
	}
	st, err := a.vault.Load()
	if err != nil {
		return err
	}
	if len(st.Registrations) == 0 {
		return errors.New("this device is not activated with a Latchkey server")
	}
	var found []Registration
	for _, r := range st.Registrations {
		if *account == "" || *account == regLabel(r) || *account == r.Username {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, r := range st.Registrations {
			names = append(names, regLabel(r))
		}
		if len(found) == 0 {
			return fmt.Errorf("no Latchkey account %q in this vault; it has %s", *account, strings.Join(names, ", "))
		}
		return fmt.Errorf("this vault has several Latchkey accounts: choose one with --account (%s)", strings.Join(names, ", "))
	}
	r := found[0]
	c, err := clientFor(&r)
	if err != nil {
		return err
	}
	var out deviceproto.TransferResponse
	if _, err := c.do(ctx, "POST", deviceproto.PathTransfer, nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Transfer code: %s (valid until %s, once)\n", out.Code, out.ExpiresAt.Local().Format("15:04"))
	fmt.Fprintf(a.stdout, "On the new device: latch activate --transfer %s --server %s\n", out.Code, r.Server)
	fmt.Fprintf(a.stdout, "Or scan: %s\n", out.URI)
	if qr, err := terminalQR(out.URI); err == nil {
		fmt.Fprint(a.stdout, qr)
	}
	fmt.Fprintln(a.stdout, "This device stops working as soon as the new one takes over.")
	return nil
}

// readLine reads one line from r (for the line-based view).
func readLines(r io.Reader, out chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out <- strings.TrimSpace(sc.Text())
	}
	close(out)
}
