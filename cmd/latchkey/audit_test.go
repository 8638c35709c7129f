package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/sqlstore"
)

// TestAuditVerifyDetectsTampering edits and removes entries behind the server's back (dropping
// the append-only triggers first, as an attacker with database access could) and expects
// `latchkey audit verify` to fail and name the first broken entry.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name, sql string
		want      string
	}{
		{"edited", "UPDATE audit_events SET detail = 'forged' WHERE id = 2", "entry 2"},
		{"removed", "DELETE FROM audit_events WHERE id = 2", "entry 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			for _, name := range []string{"u1", "u2", "u3"} {
				var out, errb bytes.Buffer
				err := run(ctx, []string{"user", "create", "--data", data, "--username", name, "--email", name + "@example.com", "--password-stdin"},
					env(nil), strings.NewReader("a long enough passphrase\n"), &out, &errb)
				if err != nil {
					t.Fatal(err, errb.String())
				}
			}
			cfg := defaultConfig()
			cfg.Data = data
			_, secrets, err := cfg.keys()
			if err != nil {
				t.Fatal(err)
			}
			db, err := sqlstore.Open(ctx, filepath.Join(data, "latchkey.db"), sqlstore.Options{SecretsKey: secrets})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"DROP TRIGGER IF EXISTS audit_events_no_update", "DROP TRIGGER IF EXISTS audit_events_no_delete", tt.sql} {
				if _, err := db.SQL().ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()
			var out, errb bytes.Buffer
			err = run(ctx, []string{"audit", "verify", "--data", data}, env(nil), nil, &out, &errb)
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("audit verify after tampering: %v, output %q", err, out.String())
			}
			if !strings.Contains(out.String(), "BROKEN at "+tt.want) {
				t.Errorf("output %q does not name %s", out.String(), tt.want)
			}
		})
	}
}

// TestReportAudit: what `audit verify` prints and exits with for an intact trail, one with
// entries committed while it ran and not chained yet (PostgreSQL: intact, and says how many
// the next run will check), and a broken one (exit code 1, the entry named).
func TestReportAudit(t *testing.T) {
	for _, tt := range []struct {
		rep  audit.Report
		want string
		code int
	}{
		{audit.Report{Entries: 7}, "audit trail intact: 7 entries\n", 0},
		{audit.Report{Entries: 1}, "audit trail intact: 1 entry\n", 0},
		{audit.Report{Entries: 1, Pending: 1}, "audit trail intact: 1 entry (1 more committed meanwhile, not yet chained)\n", 0},
		{audit.Report{Entries: 7, Pending: 2}, "audit trail intact: 7 entries (2 more committed meanwhile, not yet chained)\n", 0},
		{audit.Report{Entries: 3, FirstBroken: 3, Reason: "its content does not match its hash: the entry was changed"},
			"audit trail BROKEN at entry 3: its content does not match its hash: the entry was changed (3 entries checked)\n", 1},
	} {
		var out bytes.Buffer
		err := reportAudit(&out, tt.rep)
		if out.String() != tt.want {
			t.Errorf("%+v: printed %q, want %q", tt.rep, out.String(), tt.want)
		}
		if code := exitCode(err); (err == nil) != (tt.code == 0) || (err != nil && code != tt.code) {
			t.Errorf("%+v: err %v (exit %d), want exit %d", tt.rep, err, code, tt.code)
		}
	}
}

// TestAuditVerifyNeedsADatabase: audit verify with a data folder that holds no database (a
// mistyped --data) is a usage error that says so, and creates nothing there.
func TestAuditVerifyNeedsADatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"audit", "verify", "--data", dir}, env(nil), nil, &out, &errb)
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "no Latchkey database in "+dir) || strings.Contains(out.String(), "intact") {
		t.Fatalf("audit verify --data %s: %v (exit %d), %q", dir, err, exitCode(err), out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("audit verify created %s: %v", dir, err)
	}
}
