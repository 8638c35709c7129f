package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildServer compiles cmd/latchkey into dir and returns the binary's path. It runs the go
// command in the module's root, found with `go env GOMOD`, so that the harness works from
// any folder of the module (go run ./bench from the root, go test in bench/).
func buildServer(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the latchkey module: run the harness from the repository")
	}
	bin := filepath.Join(dir, "latchkey")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/latchkey")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/latchkey: %v\n%s", err, b)
	}
	return bin, nil
}

// newKey returns a random base64 32-byte key, the format of the server's key files and of
// LATCHKEY_SESSION_KEY / LATCHKEY_SECRETS_KEY.
func newKey() (raw []byte, encoded string) {
	raw = make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err)
	}
	return raw, base64.StdEncoding.EncodeToString(raw)
}

// server is a running `latchkey serve` process.
type server struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	startup time.Duration // from exec to /readyz answering 200
	done    chan error
}

var listenRe = regexp.MustCompile(`msg="latchkey listening" addr=(\S+)`)

// writeConfig writes the server's configuration file into dir and returns its path. It
// trusts the harness, on 127.0.0.1, as a reverse proxy: every simulated client sends its own
// address in X-Forwarded-For (see newRequest), as the users behind a proxy of a real
// deployment, so that the per-IP limits of internal/login count each user apart instead of
// all of them as one address. It turns the workday rule off: the harness runs at the real
// time, and a run across 19:00 in the server's zone would otherwise see its sessions end.
func writeConfig(dir string) (string, error) {
	path := filepath.Join(dir, "latchkey.yaml")
	const config = "# Written by the benchmark harness (bench/server.go).\ntrusted_proxies: [\"127.0.0.1/32\"]\nsession:\n  workday_end: \"\"\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// startServer runs `bin serve` on a free loopback port with the given data folder, database
// and configuration file (writeConfig), and waits until /readyz answers 200. Its standard
// error (the log) goes to DATA/../NAME.log; the harness reads it only to learn the
// listening address.
func startServer(ctx context.Context, name, bin, data, database, config string, env []string) (*server, error) {
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--config", config}
	if database != "" {
		args = append(args, "--database", database)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	logPath := filepath.Join(filepath.Dir(data), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = logf
	s := &server{cmd: cmd, logPath: logPath, done: make(chan error, 1)}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		// Copy the log to the file, and pick the address out of it on the way.
		defer logf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !found {
				if m := listenRe.FindStringSubmatch(line); m != nil {
					found = true
					addr <- m[1]
				}
			}
		}
		_, _ = io.Copy(logf, pr)
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		return nil, fmt.Errorf("latchkey serve exited before listening: %v\n%s", err, tail(logPath))
	case <-time.After(30 * time.Second):
		s.kill()
		return nil, fmt.Errorf("latchkey serve did not listen within 30 s\n%s", tail(logPath))
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.startup = time.Since(begin)
				c.CloseIdleConnections()
				return s, nil
			}
		}
		if time.Since(begin) > 30*time.Second {
			s.kill()
			return nil, fmt.Errorf("/readyz did not answer 200 within 30 s\n%s", tail(logPath))
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// cluster is the nodes of a run: one on SQLite, --nodes on PostgreSQL, sharing the database
// and the keys as the nodes of a deployment do. The harness is their load balancer: worker
// w sends its requests to node w modulo the count.
type cluster []*server

// urls returns the nodes' base URLs.
func (c cluster) urls() urls {
	u := make(urls, len(c))
	for i, s := range c {
		u[i] = s.url
	}
	return u
}

func (c cluster) pids() []int {
	p := make([]int, len(c))
	for i, s := range c {
		p[i] = s.pid()
	}
	return p
}

// maxRSS is the largest field (VmRSS, VmHWM) of the nodes: each node's memory is what a
// deployment sizes, so the figures are the largest node's.
func (c cluster) maxRSS(field string) (uint64, error) {
	var m uint64
	for _, s := range c {
		v, err := rss(s.pid(), field)
		if err != nil {
			return 0, err
		}
		m = max(m, v)
	}
	return m, nil
}

func (c cluster) kill() {
	for _, s := range c {
		s.kill()
	}
}

// stop stops every node (SIGTERM) and returns the first error.
func (c cluster) stop() error {
	var first error
	for _, s := range c {
		if err := s.stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// urls are the base URLs of the nodes.
type urls []string

// at is the node of worker w.
func (u urls) at(w int) string { return u[w%len(u)] }

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop ends the server with SIGTERM (graceful shutdown) and waits for it.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("latchkey serve: %v\n%s", err, tail(s.logPath))
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("latchkey serve did not stop within 30 s of SIGTERM")
	}
}

// tail returns the last lines of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// rss reads a field (VmRSS, VmHWM) of /proc/PID/status, in bytes.
func rss(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
