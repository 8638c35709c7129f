package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSupportConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("support:\n  types:\n    - {id: vpn, name: VPN access}\n    - {id: other, name: Other}\n  checks:\n    - {id: badge, name: Showed the staff badge on video}\n  tickets_per_email: 3\n"), 0o600)
	cfg, _, err := parse("serve", []string{"--config", good}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Support.Types) != 2 || cfg.Support.Types[0].ID != "vpn" || cfg.Support.Types[0].Name != "VPN access" || cfg.Support.Checks[0].ID != "badge" || cfg.Support.TicketsPerEmail != 3 {
		t.Errorf("Support = %+v", cfg.Support)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("support:\n  types:\n    - {id: \"Lost Phone\", name: Lost}\n    - {id: other, name: \"\"}\n    - {id: other, name: Other}\n  checks:\n    - {id: x}\n  tickets_per_email: -1\n"), 0o600)
	_, _, err = parse("serve", []string{"--config", bad}, env(nil), &bytes.Buffer{}, append(commonFlags, serveFlags...), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`support.types 1: the id "Lost Phone"`, "support.types 2: the name", `support.types 3: the id "other" appears twice`, "support.checks 1: the name", "tickets_per_email"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
