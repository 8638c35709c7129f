package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/deviceproto"
)

func TestVaultRoundTripAndWrongPassphrase(t *testing.T) {
	home := t.TempDir()
	v := &Vault{home: home, passphrase: func() (string, error) { return "right passphrase", nil }}
	st := &State{Accounts: []Account{{Issuer: "Example", Name: "bob@example.com", Secret: []byte("12345678901234567890"), Digits: 6, Period: 30, Algorithm: "SHA1"}}}
	if err := v.Save(st); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(home, vaultFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(home, vaultFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if bytes.Contains(raw, []byte("bob@example.com")) || bytes.Contains(raw, []byte("Example")) {
		t.Error("the vault file holds plain text")
	}
	got, err := (&Vault{home: home, passphrase: func() (string, error) { return "right passphrase", nil }}).Load()
	if err != nil || len(got.Accounts) != 1 || got.Accounts[0].Name != "bob@example.com" {
		t.Fatalf("load: %v %+v", err, got)
	}
	if _, err := (&Vault{home: home, passphrase: func() (string, error) { return "wrong", nil }}).Load(); err != errWrongPassphrase {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// An altered header (weaker KDF) does not open either.
	tampered := bytes.Replace(raw, []byte(`"time": 2`), []byte(`"time": 1`), 1)
	os.WriteFile(filepath.Join(home, vaultFile), tampered, 0o600)
	if _, err := (&Vault{home: home, passphrase: func() (string, error) { return "right passphrase", nil }}).Load(); err == nil {
		t.Fatal("a tampered header opened")
	}
}

func TestAddAndCodesRFC6238(t *testing.T) {
	t.Setenv("LATCH_PASSPHRASE", "p")
	home := t.TempDir()
	var out, errb bytes.Buffer
	// RFC 6238 appendix B: SHA1 secret "12345678901234567890", T = 59 s → 94287082 (8 digits).
	uri := "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&digits=8"
	if err := run(context.Background(), []string{"--home", home, "add", uri}, nil, &out, &errb); err != nil {
		t.Fatalf("add: %v %s", err, errb.String())
	}
	a := &app{vault: &Vault{home: home, passphrase: func() (string, error) { return "p", nil }}, stdout: &out, now: func() time.Time { return time.Unix(59, 0) }}
	out.Reset()
	if err := a.codes(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "Example:alice 94287082" {
		t.Fatalf("codes = %q", got)
	}
	if err := run(context.Background(), []string{"--home", home, "add", "otpauth://hotp/x?secret=AAAA"}, nil, &out, &errb); err == nil {
		t.Fatal("a HOTP URI was imported")
	}
}

func TestReadEvents(t *testing.T) {
	stream := ": ping\n\nevent: challenge\nid: 1\ndata: {\"id\":\"abc\",\"kind\":\"login\",\"ip\":\"192.0.2.1\"}\n\nevent: other\ndata: {\"id\":\"x\"}\n\nevent: challenge\ndata: not json\n\n"
	var got []deviceproto.Challenge
	readEvents(strings.NewReader(stream), func(c deviceproto.Challenge) { got = append(got, c) })
	if len(got) != 1 || got[0].ID != "abc" || got[0].IP != "192.0.2.1" {
		t.Fatalf("events = %+v", got)
	}
	long := "event: challenge\ndata: " + strings.Repeat("a", maxEventLine+1) + "\n\n"
	if err := readEvents(strings.NewReader(long), func(deviceproto.Challenge) { t.Error("oversize event delivered") }); err == nil || err.Error() == "EOF" {
		t.Fatalf("oversize line: %v", err)
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--home", t.TempDir(), "activate", "NOTACODE"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("activate without --server: %v", err)
	}
	if err := run(context.Background(), []string{"--home", t.TempDir(), "approve"}, nil, &out, &errb); err == nil || !strings.Contains(err.Error(), "--number") {
		t.Fatalf("approve without a number: %v", err)
	}
}

// TestHelp: latch help, -h and --help print every command to standard output and exit 0; a
// command's --help prints its own flags only (approve has --number, deny --fraud); a wrong
// flag is an error that says where the flags are listed, printed once, exit 2 (a usage
// error, as latchkey's).
func TestHelp(t *testing.T) {
	home := t.TempDir()
	latch := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"--home", home}, args...), nil, &out, &errb)
		return out.String(), errb.String(), err
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, errOut, err := latch(args...)
		if exitCode(err, io.Discard) != 0 || errOut != "" {
			t.Errorf("latch %v: %v, standard error %q", args, err, errOut)
		}
		for _, cmd := range []string{"activate", "--transfer", "codes", "accounts", "devices", "add", "approve --number", "deny [--fraud]", "switch-device", "LATCH_PASSPHRASE"} {
			if !strings.Contains(out, cmd) {
				t.Errorf("latch %v does not mention %q:\n%s", args, cmd, out)
			}
		}
	}
	for _, tt := range []struct{ cmd, has, hasNot string }{
		{"approve", "-number", "-fraud"},
		{"deny", "-fraud", "-number"},
		{"activate", "-transfer", "-fraud"},
		{"switch-device", "-account", "-number"},
		{"codes", "-home", "-number"},
		{"accounts", "-home", "-number"},
		{"devices", "-home", "-number"},
		{"add", "-home", "-number"},
		{"remove", "-home", "-number"},
	} {
		out, _, err := latch(tt.cmd, "--help")
		if exitCode(err, io.Discard) != 0 || !strings.HasPrefix(out, "usage: latch [--home DIR] "+tt.cmd+" ") || !strings.Contains(out, tt.has) || strings.Contains(out, tt.hasNot) {
			t.Errorf("latch %s --help = %v:\n%s", tt.cmd, err, out)
		}
	}
	for _, args := range [][]string{{"approve", "--fraud"}, {"deny", "--number", "1"}, {"--bogus"}} {
		out, errOut, err := latch(args...)
		var printed bytes.Buffer
		if exitCode(err, &printed) != 2 || out != "" || errOut != "" || !strings.Contains(printed.String(), "help") || strings.Count(printed.String(), "not defined") != 1 {
			t.Errorf("latch %v: %v, standard output %q, standard error %q, printed %q", args, err, out, errOut, printed.String())
		}
	}
	// Every other wrong command line is a usage error too; a failure that is not (no vault
	// yet) exits 1.
	for _, args := range [][]string{{"nope"}, {"codes", "extra"}, {"approve"}, {"approve", "--number", "1", "extra"}, {"deny", "x"}, {"activate"}, {"activate", "ABCDE-FGHJK"}, {"remove"}, {"switch-device", "x"},
		{"activate", "ABCDE-FGHJK", "--server", "127.0.0.1:8080"}, {"activate", "ABCDE-FGHJK", "--server", "localhost:8080"},
		{"activate", "ABCDE-FGHJK", "--server", "http://localhost:8080", "--timeout", "0s"},
		{"approve", "--number", "12", "--timeout", "0s"}, {"deny", "--timeout", "-1s"}} {
		if _, _, err := latch(args...); exitCode(err, io.Discard) != 2 {
			t.Errorf("latch %v: %v (exit %d), want exit 2", args, err, exitCode(err, io.Discard))
		}
	}
	if _, _, err := latch("codes"); exitCode(err, io.Discard) != 1 {
		t.Errorf("latch codes without a vault: %v (exit %d), want 1", err, exitCode(err, io.Discard))
	}
}

// TestCommandsTakeFlagsAndRefuseExtraArguments: a command given --home after its name uses
// that folder; codes, accounts and devices refuse an argument instead of ignoring it.
func TestCommandsTakeFlagsAndRefuseExtraArguments(t *testing.T) {
	t.Setenv("LATCH_PASSPHRASE", "p")
	home := t.TempDir()
	var out, errb bytes.Buffer
	uri := "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"
	if err := run(context.Background(), []string{"add", uri, "--home", home}, nil, &out, &errb); err != nil {
		t.Fatalf("add --home after the command: %v", err)
	}
	if err := run(context.Background(), []string{"add", uri, "--home", home}, nil, &out, &errb); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("the same account added twice: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"--home", t.TempDir(), "codes", "--home", home}, nil, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "Example:alice ") {
		t.Errorf("codes --home: %v, %q", err, out.String())
	}
	for _, cmd := range []string{"codes", "accounts", "devices"} {
		if err := run(context.Background(), []string{"--home", home, cmd, "extra"}, nil, &out, &errb); err == nil || !strings.Contains(err.Error(), "no arguments") {
			t.Errorf("%s extra: %v", cmd, err)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"--home", home, "remove", "Example:alice"}, nil, &out, &errb); err != nil || !strings.Contains(out.String(), "Removed") {
		t.Errorf("remove: %v, %q", err, out.String())
	}
	if err := run(context.Background(), []string{"--home", home, "codes"}, nil, &out, &errb); err == nil {
		t.Error("codes after the only account was removed")
	}
}
