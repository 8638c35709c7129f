// Package pgtest starts a real PostgreSQL server for tests, from the system's binaries
// (Debian: /usr/lib/postgresql/<version>/bin), with its data in a temporary folder and a
// loopback port. One server serves a whole test binary; each Start call gets a fresh database.
//
// When the binaries are missing or the server cannot start, tests are skipped — or, with
// CI=true, they fail, because CI must never pass without the PostgreSQL tests.
package pgtest

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

type server struct {
	bin  string
	dir  string
	port int
	err  error
	cred *owner // whom the server runs as; nil: this process's user
}

var (
	once   sync.Once
	shared server
	seq    atomic.Int64
)

// Start returns the URL of a new, empty database on the shared test server.
func Start(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { shared.err = shared.start() })
	if shared.err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("pgtest: PostgreSQL is required under CI=true: %v", shared.err)
		}
		tb.Skipf("pgtest: PostgreSQL not available: %v", shared.err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), seq.Add(1))
	admin, err := sql.Open("pgx", shared.url("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return shared.url(name)
}

// Stop stops the shared server; call it from TestMain after m.Run.
func Stop() {
	if shared.dir == "" {
		return
	}
	cmd := exec.Command(filepath.Join(shared.bin, "pg_ctl"), "stop", "-D", filepath.Join(shared.dir, "data"), "-m", "immediate", "-w")
	runAs(cmd, shared.cred)
	_ = cmd.Run()
	os.RemoveAll(shared.dir)
}

// Main runs the tests of a package that uses Start and stops the server afterwards.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// findBin returns the newest /usr/lib/postgresql/<version>/bin holding initdb.
func findBin() (string, error) {
	if b := os.Getenv("LATCHKEY_PG_BIN"); b != "" {
		return b, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin or on PATH (install Debian's postgresql package)")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) start() error {
	bin, err := findBin()
	if err != nil {
		return err
	}
	s.bin = bin
	dir, err := os.MkdirTemp("", "latchkey-pgtest-")
	if err != nil {
		return err
	}
	s.dir = dir
	// PostgreSQL refuses to run as root: run it as the postgres user, owning its folder.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &owner{uid: uid, gid: gid}
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		runAs(cmd, s.cred)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return err
		}
		opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", s.port, dir)
		err = run("pg_ctl", "start", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts)
		if err == nil || attempt == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the port was taken between the probe and the start
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return fmt.Errorf("%v\n%s", err, log)
	}
	return nil
}
