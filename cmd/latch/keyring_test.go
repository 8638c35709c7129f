package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSecretService runs a real freedesktop Secret Service for one test: a private D-Bus
// session bus and an unlocked GNOME Keyring on it, both stopped at the end. It returns the
// environment that points a process at them. Under CI=true a missing daemon is a failure.
func startSecretService(t *testing.T) []string {
	t.Helper()
	for _, bin := range []string{"dbus-daemon", "gnome-keyring-daemon"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", bin, err)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	home := t.TempDir()
	// No XDG_RUNTIME_DIR: the daemon then prints its control folder when it is ready.
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}

	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1")
	bus.Env = env
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	env = append(env, "DBUS_SESSION_BUS_ADDRESS="+strings.TrimSpace(addr))

	ring := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	ring.Env = env
	ring.Stdin = strings.NewReader("keyring password")
	rout, err := ring.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Process.Kill(); ring.Wait() })
	ready := make(chan error, 1)
	go func() {
		// The daemon prints its control variables once it serves the bus.
		_, err := bufio.NewReader(rout).ReadString('\n')
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("gnome-keyring-daemon: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gnome-keyring-daemon did not start")
	}
	return env
}

func buildLatch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func vaultSource(t *testing.T, home string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(home, vaultFile))
	if err != nil {
		t.Fatal(err)
	}
	var f vaultFileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "alice") {
		t.Error("the vault file holds plain text")
	}
	return f.Header.Source
}

// TestVaultKeyring shows SPEC's order (LATCH_PASSPHRASE when set, else the OS keyring, else a
// prompt) with the latch binary and a real Secret Service.
func TestVaultKeyring(t *testing.T) {
	env := startSecretService(t)
	bin := buildLatch(t)
	uri := "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"
	latch := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// No LATCH_PASSPHRASE and no terminal: the keyring keeps a random passphrase.
	home := t.TempDir()
	if out, err := latch(env, "--home", home, "add", uri); err != nil {
		t.Fatalf("add with the keyring: %v\n%s", err, out)
	}
	if s := vaultSource(t, home); s != sourceKeyring {
		t.Fatalf("vault source %q, want keyring", s)
	}
	out, err := latch(env, "--home", home, "codes")
	if err != nil || !strings.Contains(out, "Example") {
		t.Fatalf("codes with the keyring: %v\n%s", err, out)
	}

	// LATCH_PASSPHRASE, when set, comes first: a wrong one does not open the keyring's vault.
	if out, err := latch(append(env, "LATCH_PASSPHRASE=not the one"), "--home", home, "codes"); err == nil || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("a wrong LATCH_PASSPHRASE opened the vault: %v\n%s", err, out)
	}

	// The keyring gone (no session bus): a clear error, and the vault is unchanged.
	before, _ := os.ReadFile(filepath.Join(home, vaultFile))
	noBus := []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(t.TempDir(), "none")}
	if out, err := latch(noBus, "--home", home, "codes"); err == nil || !strings.Contains(out, "kept in the OS keyring") {
		t.Fatalf("without the keyring: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(filepath.Join(home, vaultFile)); string(after) != string(before) {
		t.Fatal("a failed open changed the vault")
	}

	// With LATCH_PASSPHRASE set, a new vault uses it even though a keyring is there.
	home2 := t.TempDir()
	withPass := append(env, "LATCH_PASSPHRASE=a passphrase for the vault")
	if out, err := latch(withPass, "--home", home2, "add", uri); err != nil {
		t.Fatalf("add with LATCH_PASSPHRASE: %v\n%s", err, out)
	}
	if s := vaultSource(t, home2); s != sourcePassphrase {
		t.Fatalf("vault source %q, want passphrase", s)
	}
	if out, err := latch(withPass, "--home", home2, "codes"); err != nil {
		t.Fatalf("codes with LATCH_PASSPHRASE: %v\n%s", err, out)
	}

	// Neither a keyring, nor LATCH_PASSPHRASE, nor a terminal: refused, nothing written.
	home3 := t.TempDir()
	if out, err := latch(noBus, "--home", home3, "add", uri); err == nil || !strings.Contains(out, "LATCH_PASSPHRASE") {
		t.Fatalf("no key source: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home3, vaultFile)); !os.IsNotExist(err) {
		t.Fatalf("a vault was written without a key: %v", err)
	}
}
