package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serve takes its settings from --config and TWOFOLD_* variables, the variable winning:
// the file names the data directory and a port, TWOFOLD_ADDR moves it to another.
func TestServe_ConfigFileAndEnvironment_AreWhatItServesWith(t *testing.T) {
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "twofold.json")
	body, _ := json.Marshal(map[string]any{"addr": "127.0.0.1:1", "data": data, "issuer": "https://mfa.example"})
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	p := serveArgs(t, []string{"TWOFOLD_ADDR=127.0.0.1:0"}, "--config", cfg)
	r, err := client.Get(p.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct{ Issuer string }
	json.NewDecoder(r.Body).Decode(&disc)
	r.Body.Close()
	if disc.Issuer != "https://mfa.example" {
		t.Errorf("issuer %q, want the file's https://mfa.example", disc.Issuer)
	}
	if _, err := os.Stat(filepath.Join(data, "twofold.db")); err != nil {
		t.Errorf("serve did not use the file's data directory: %v", err)
	}
}

// The real binary's `config check`: exit 2 and one stderr line per problem, or exit 0
// and the effective settings as JSON on stdout.
func TestConfigCheck_Binary_ExitCodeAndOneLinePerProblem(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"adress": "0.0.0.0:80", "store": "mysql://x"}`), 0o600)
	for _, tc := range []struct {
		name     string
		args     []string
		exit     int
		problems []string
	}{
		{"a good config", []string{"--data", t.TempDir()}, 0, nil},
		{"four problems", []string{"--config", bad, "--addr", "0.0.0.0:80", "--tls-key", "k.pem"}, 2,
			[]string{`unknown keys "adress"`, "--addr 0.0.0.0:80 is not a loopback address", "--store must be a postgres:// URL", "--tls-cert and --tls-key go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"config", "check"}, tc.args...)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.exit {
				t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, tc.exit, stderr.String())
			}
			if tc.exit == 0 {
				var eff map[string]any
				if err := json.Unmarshal([]byte(stdout.String()), &eff); err != nil || eff["addr"] != "127.0.0.1:8080" {
					t.Errorf("stdout %q is not the effective config: %v", stdout.String(), err)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != len(tc.problems) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.problems), stderr.String())
			}
			for i, w := range tc.problems {
				if !strings.HasPrefix(lines[i], "twofold: ") || !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q, want twofold: ...%s", i, lines[i], w)
				}
			}
		})
	}
}
