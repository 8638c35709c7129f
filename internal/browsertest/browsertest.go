// Package browsertest starts a real headless Chromium for end-to-end tests and saves
// screenshots of what it shows.
//
// When no Chromium is installed the test is skipped — or, with CI=true, it fails, because CI
// must never pass without the browser tests.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	if p := os.Getenv("LATCHKEY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh profile and returns a context for a tab in it.
// The browser stops when the test ends. Every action in the context is bounded by timeout.
func New(tb testing.TB, timeout time.Duration) context.Context {
	tb.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("browsertest: Chromium is required under CI=true; install Debian's chromium package (make test does)")
		}
		tb.Skip("browsertest: no Chromium found; install Debian's chromium package")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 900),
		// The machine's network is closed: keep Chromium from dialling out at every start.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("browsertest: start Chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	tb.Cleanup(cancel)
	return ctx
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Dir is where screenshots go: $LATCHKEY_SCREENSHOTS, or latchkey-screenshots in the
// system's temporary folder.
func Dir() string {
	if d := os.Getenv("LATCHKEY_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "latchkey-screenshots")
}

// Screenshot saves a full-page PNG of the tab as DIR/<name>.png and logs the path.
func Screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(Dir(), 0o755); err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(Dir(), unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("screenshot: %s", p)
}
