package browsertest_test

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/internal/browsertest"
)

func TestDir(t *testing.T) {
	for _, tt := range []struct {
		name, env, want string
	}{
		{name: "default", env: "", want: filepath.Join(os.TempDir(), "latchkey-screenshots")},
		{name: "from the environment", env: "/srv/shots", want: "/srv/shots"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LATCHKEY_SCREENSHOTS", tt.env)
			if got := browsertest.Dir(); got != tt.want {
				t.Errorf("Dir() = %q, want %q", got, tt.want)
			}
		})
	}
}

// fakeTB records how New gives up. Skipf and Fatalf end the goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestNoChromium(t *testing.T) {
	t.Setenv("LATCHKEY_CHROMIUM", filepath.Join(t.TempDir(), "no-such-chromium"))
	for _, tt := range []struct {
		ci                    string
		wantSkip, wantFailure bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantFailure: true},
	} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				browsertest.New(f, time.Minute)
				t.Error("New returned without Chromium")
			}()
			<-done
			if got := f.skipped != ""; got != tt.wantSkip {
				t.Errorf("skipped = %v (%q), want %v", got, f.skipped, tt.wantSkip)
			}
			if got := f.fatal != ""; got != tt.wantFailure {
				t.Errorf("failed = %v (%q), want %v", got, f.fatal, tt.wantFailure)
			}
			if msg := f.skipped + f.fatal; !strings.Contains(msg, "Chromium") {
				t.Errorf("message %q does not say what is missing", msg)
			}
		})
	}
}

// TestBrowserScreenshot starts the real browser, opens a page taller than the window and
// checks that the screenshot holds the whole page.
func TestBrowserScreenshot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>t</title><body style="margin:0"><h1 id="h">Hello</h1><div style="height:2000px"></div></body>`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	t.Setenv("LATCHKEY_SCREENSHOTS", dir)

	ctx := browsertest.New(t, time.Minute)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("#h"))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#h")))
	if err != nil || got != "Hello" {
		t.Fatalf("Text(#h) = %q, %v, want %q", got, err, "Hello")
	}

	path := browsertest.Screenshot(t, ctx, "a/b c")
	if want := filepath.Join(dir, "a_b_c.png"); path != want {
		t.Errorf("Screenshot path = %q, want %q", path, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if cfg.Width != 1280 || cfg.Height < 2000 {
		t.Errorf("screenshot is %d×%d, want 1280 wide and the whole 2000+ px page", cfg.Width, cfg.Height)
	}
}
