package pgtest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a PostgreSQL server of one test, apart from the shared one, so that the test can
// stop and start it (fault tests) without disturbing the others. It is removed when the test
// ends.
type Server struct {
	s   server
	seq atomic.Int64
}

// NewServer starts a dedicated server. Like Start, it skips the test when PostgreSQL is not
// available, and fails it under CI=true.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	srv := &Server{}
	err := srv.s.start()
	tb.Cleanup(func() {
		if srv.s.dir != "" {
			_ = srv.s.ctl("stop", "-m", "immediate")
			os.RemoveAll(srv.s.dir)
		}
	})
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("pgtest: PostgreSQL is required under CI=true: %v", err)
		}
		tb.Skipf("pgtest: PostgreSQL not available: %v", err)
	}
	return srv
}

// Database returns the URL of a new, empty database on this server.
func (srv *Server) Database(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("d%d", srv.seq.Add(1))
	admin, err := sql.Open("pgx", srv.s.url("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return srv.s.url(name)
}

// Stop shuts the server down ("fast": open sessions are ended, as in a restart by an
// operator) and waits until it is down.
func (srv *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := srv.s.ctl("stop", "-m", "fast", "-t", "60"); err != nil {
		tb.Fatalf("pgtest: stop: %v", err)
	}
}

// Start starts the stopped server again on the same port and waits until it accepts
// connections.
func (srv *Server) Start(tb testing.TB) {
	tb.Helper()
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", srv.s.port, srv.s.dir)
	if err := srv.s.ctl("start", "-l", filepath.Join(srv.s.dir, "log"), "-t", "60", "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(srv.s.dir, "log"))
		tb.Fatalf("pgtest: start: %v\n%s", err, log)
	}
}

// Restart stops the server and starts it again.
func (srv *Server) Restart(tb testing.TB) {
	tb.Helper()
	srv.Stop(tb)
	srv.Start(tb)
}

// ctl runs pg_ctl on the server's data folder and waits for the action to finish.
func (s *server) ctl(action string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, "pg_ctl"), append([]string{action, "-D", filepath.Join(s.dir, "data"), "-w"}, args...)...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	runAs(cmd, s.cred)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s", action, err, strings.TrimSpace(string(out)))
	}
	return nil
}
