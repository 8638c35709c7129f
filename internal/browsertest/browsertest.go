// Package browsertest starts a real headless Chromium for end-to-end tests and saves
// screenshots of what it shows.
//
// When no Chromium is installed the test is skipped — or, with CI=true, it fails, because CI
// must never pass without the browser tests.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// candidates are the names Chromium is found under, in order: Debian's package first.
var candidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findChromium returns the path of a Chromium or Chrome binary, or "". $LATCHKEY_CHROMIUM
// names one explicitly.
func findChromium() string {
	if p := os.Getenv("LATCHKEY_CHROMIUM"); p != "" {
		if p, err := exec.LookPath(p); err == nil {
			return p
		}
		return ""
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh profile in a temporary folder and returns a
// context for a tab in it. The browser stops when the test ends; if the test failed, the
// browser's own output is logged. Every action in the context is bounded by timeout.
//
// Without Chromium the test is skipped, or fails when the environment has CI=true.
func New(tb testing.TB, timeout time.Duration) context.Context {
	tb.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("browsertest: Chromium is required under CI=true and was not found (tried $LATCHKEY_CHROMIUM, %v); install Debian's chromium package (make deps does)", candidates)
		}
		tb.Skipf("browsertest: no Chromium found (tried $LATCHKEY_CHROMIUM, %v); install Debian's chromium package, or set CI=true to make this a failure", candidates)
	}
	out := new(syncBuffer)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
		// The test machine's network may be closed: keep Chromium from dialling out.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Cleanups run last-in first-out: the browser stops before its profile folder is removed.
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if tb.Failed() {
			tb.Logf("browsertest: Chromium's output (last 4 KiB):\n%s", out.tail(4096))
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("browsertest: start %s: %v", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	tb.Cleanup(cancel)
	return ctx
}

// syncBuffer collects the browser's output, which arrives from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.buf.Bytes()
	return string(p[max(0, len(p)-n):])
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Dir is where screenshots go: $LATCHKEY_SCREENSHOTS, or latchkey-screenshots in the
// system's temporary folder. It is never inside the repository.
func Dir() string {
	if d := os.Getenv("LATCHKEY_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "latchkey-screenshots")
}

// Screenshot saves a full-page PNG of the tab as Dir()/<name>.png, replacing an older one
// of the same name, logs the path and returns it. Characters other than letters, digits,
// '-' and '_' in name become '_'.
func Screenshot(tb testing.TB, ctx context.Context, name string) string {
	tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(Dir(), 0o755); err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(Dir(), unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	tb.Logf("screenshot: %s", p)
	return p
}
