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
)

func TestClientCreateBackchannelLogoutURI(t *testing.T) {
	data := t.TempDir()
	create := func(id, uri string) (string, error) {
		var out, errb strings.Builder
		err := run(context.Background(), []string{"client", "create", "--data", data, "--id", id, "--redirect-uri", "https://app.example/cb", "--backchannel-logout-uri", uri}, env(nil), nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := create("bad", "http://app.example/logout"); err == nil || !strings.Contains(out+err.Error(), "not valid") {
		t.Errorf("a plain-http back-channel URI on a public host: %v\n%s", err, out)
	}
	if out, err := create("app", "https://app.example/backchannel-logout"); err != nil {
		t.Fatalf("client create: %v\n%s", err, out)
	}
	cfg, _, err := parse("client create", []string{"--data", data}, env(nil), &bytes.Buffer{}, commonFlags, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := open(context.Background(), cfg, newLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	db := a.db
	c, err := db.FindOIDCClientByID(context.Background(), "app")
	if err != nil || c.BackchannelLogoutURI != "https://app.example/backchannel-logout" {
		t.Errorf("stored client = %+v, %v", c, err)
	}
	if _, err := db.FindOIDCClientByID(context.Background(), "bad"); err == nil {
		t.Error("the client with a bad URI was stored")
	}
}

func TestConfigWorkday(t *testing.T) {
	file := filepath.Join(t.TempDir(), "latchkey.yaml")
	for _, tt := range []struct {
		yaml, problem string
	}{
		{"session:\n  workday_end: \"18:30\"\n  time_zone: Europe/Madrid\n", ""},
		{"session:\n  workday_end: \"\"\n", ""},
		{"session:\n  workday_end: \"25:00\"\n", "session.workday_end"},
		{"session:\n  time_zone: Mars/Olympus\n", "session.time_zone"},
	} {
		if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cfg, _, err := parse("serve", []string{"--config", file}, env(nil), &errb, append(commonFlags, serveFlags...), nil)
		msg := errb.String()
		if err != nil {
			msg += err.Error()
		}
		if err == nil && tt.problem == "" && (cfg.Session.WorkdayEnd == "19:00" && strings.Contains(tt.yaml, "18:30")) {
			t.Errorf("%q: workday_end = %q, want the file's", tt.yaml, cfg.Session.WorkdayEnd)
		}
		if tt.problem == "" && err != nil {
			t.Errorf("%q: %v\n%s", tt.yaml, err, msg)
		}
		if tt.problem != "" && (err == nil || !strings.Contains(msg, tt.problem)) {
			t.Errorf("%q: %v, want a problem with %s\n%s", tt.yaml, err, tt.problem, msg)
		}
	}
}

// TestTestServersHaveNoWorkday: the servers of this package's tests run without the workday
// rule (see noWorkday), whichever way their configuration is made, and keep the rest of it.
func TestTestServersHaveNoWorkday(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		workday string
	}{
		{"no configuration", withConfig(t), ""},
		{"a configuration without a session block", withConfig(t, "--config", writeConfig(t, "mfa: required")), ""},
		{"a configuration with a session block", []string{"--config", writeConfig(t, "mfa: required\nsession:\n  max_age: 8h\n")}, ""},
		{"a configuration that sets the workday end", []string{"--config", writeConfig(t, "session:\n  workday_end: \"18:30\"\n")}, "18:30"},
	} {
		cfg, _, err := parse("serve", tt.args, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if cfg.Session.WorkdayEnd != tt.workday {
			t.Errorf("%s: workday_end = %q, want %q", tt.name, cfg.Session.WorkdayEnd, tt.workday)
		}
		if strings.Contains(tt.name, "without") && cfg.MFA != "required" {
			t.Errorf("%s: mfa = %q, the file's setting was lost", tt.name, cfg.MFA)
		}
		if strings.Contains(tt.name, "with a session") && (time.Duration(cfg.Session.MaxAge) != 8*time.Hour || cfg.MFA != "required") {
			t.Errorf("%s: max_age = %v, mfa = %q, the file's settings were lost", tt.name, time.Duration(cfg.Session.MaxAge), cfg.MFA)
		}
	}
}
