package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanEnv unsets every TWOFOLD_* setting variable (and the master key) for the test.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, s := range settings {
		t.Setenv(envName(s), "")
	}
	t.Setenv("TWOFOLD_MASTER_KEY", "")
	t.Setenv("TWOFOLD_MASTER_KEY_PREVIOUS", "")
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "twofold.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// check runs `twofold config check` in process: the effective settings, or the problems.
func check(t *testing.T, args ...string) (map[string]any, []string) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"config", "check"}, args...), &out)
	var cf checkFailed
	if errors.As(err, &cf) {
		var lines []string
		for _, p := range cf {
			lines = append(lines, p.Error())
		}
		return nil, lines
	}
	if err != nil {
		t.Fatalf("config check %v: %v", args, err)
	}
	var eff map[string]any
	if err := json.Unmarshal(out.Bytes(), &eff); err != nil {
		t.Fatalf("config check printed %q: %v", out.String(), err)
	}
	return eff, nil
}

func TestConfig_FlagsBeatEnvironmentBeatsFileBeatsDefaults(t *testing.T) {
	file := `{"addr": "127.0.0.1:7001", "data": "/srv/file", "ip-budget": 50, "behind-proxy": true,
		"trusted-proxies": ["10.0.0.0/8", "fd00::/8"], "client-ip-header": "forwarded", "issuer": "https://file.example"}`
	for _, tc := range []struct {
		name  string
		file  string
		env   map[string]string
		flags []string
		want  map[string]any
	}{
		{"defaults alone", "", nil, nil,
			map[string]any{"addr": "127.0.0.1:8080", "data": "./data", "ip-budget": 0.0, "behind-proxy": false, "issuer": "", "trusted-proxies": []any{}, "client-ip-header": "x-forwarded-for"}},
		{"the file over defaults", file, nil, nil,
			map[string]any{"addr": "127.0.0.1:7001", "data": "/srv/file", "ip-budget": 50.0, "behind-proxy": true, "issuer": "https://file.example", "trusted-proxies": []any{"10.0.0.0/8", "fd00::/8"}, "client-ip-header": "forwarded"}},
		{"the environment over the file", file,
			map[string]string{"TWOFOLD_ADDR": "127.0.0.1:7002", "TWOFOLD_DATA": "/srv/env", "TWOFOLD_IP_BUDGET": "60", "TWOFOLD_TRUSTED_PROXIES": "192.168.0.0/16"}, nil,
			map[string]any{"addr": "127.0.0.1:7002", "data": "/srv/env", "ip-budget": 60.0, "behind-proxy": true, "issuer": "https://file.example", "trusted-proxies": []any{"192.168.0.0/16"}}},
		{"flags over the environment and the file", file,
			map[string]string{"TWOFOLD_ADDR": "127.0.0.1:7002", "TWOFOLD_ISSUER": "https://env.example"},
			[]string{"--addr", "127.0.0.1:7003", "--ip-budget", "70", "--behind-proxy=false"},
			map[string]any{"addr": "127.0.0.1:7003", "data": "/srv/file", "ip-budget": 70.0, "behind-proxy": false, "issuer": "https://env.example", "trusted-proxies": []any{"10.0.0.0/8", "fd00::/8"}}},
		{"the environment without a file", "",
			map[string]string{"TWOFOLD_STORE": "postgres://db/twofold", "TWOFOLD_REDIS": "redis://cache:6379", "TWOFOLD_ISSUER": "https://env.example"}, nil,
			map[string]any{"store": "postgres://db/twofold", "redis": "redis://cache:6379", "issuer": "https://env.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eff, problems := checkWith(t, tc.file, tc.env, tc.flags)
			if problems != nil {
				t.Fatalf("problems: %q", problems)
			}
			for k, want := range tc.want {
				if got, _ := json.Marshal(eff[k]); string(got) != mustJSON(want) {
					t.Errorf("%s = %s, want %s", k, got, mustJSON(want))
				}
			}
		})
	}
}

// checkWith runs config check with a config file holding file (none if empty), the
// environment env and the flags.
func checkWith(t *testing.T, file string, env map[string]string, flags []string) (map[string]any, []string) {
	t.Helper()
	cleanEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	if file != "" {
		flags = append([]string{"--config", writeConfig(t, file)}, flags...)
	}
	return check(t, flags...)
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestConfigCheck_ReportsEveryProblemAtOnce_OneLineEach(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		env   map[string]string
		flags []string
		want  []string // one substring per expected problem, in order
	}{
		{"unknown keys are named", `{"addr": "127.0.0.1:1", "listen": ":80", "tls_cert": "x"}`, nil, nil,
			[]string{`unknown keys "listen", "tls_cert"`}},
		{"file, environment and validation problems together",
			`{"bogus": 1, "ip-budget": "many", "tls-cert": "/etc/cert.pem", "trusted-proxies": [10]}`,
			map[string]string{"TWOFOLD_STORE": "mysql://db", "TWOFOLD_BEHIND_PROXY": "perhaps", "TWOFOLD_CLIENT_IP_HEADER": "x-real-ip", "TWOFOLD_TRUSTED_PROXIES": "10.0.0.0/8,nope"},
			[]string{"--addr", "0.0.0.0:80", "--redis", "memcached://x"},
			[]string{`unknown keys "bogus"`, `"trusted-proxies" must be`, "TWOFOLD_BEHIND_PROXY", `"ip-budget": "many"`, "--store must be a postgres:// URL", "--redis must be", "--tls-cert and --tls-key go together", `--client-ip-header "x-real-ip" must be`, `--trusted-proxies: "nope"`}},
		{"a file that is not JSON", `addr = "x"`, nil, []string{"--addr", "nope"},
			[]string{"not a JSON object", `--addr "nope" must be HOST:PORT`}},
		{"profiles offered beyond this host", "", nil, []string{"--pprof-addr", "0.0.0.0:6060"},
			[]string{`--pprof-addr "0.0.0.0:6060" must be a loopback HOST:PORT`}},
		{"a missing file", "", nil, []string{"--config", "/nonexistent/twofold.json"},
			[]string{"--config: open /nonexistent/twofold.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := checkWith(t, tc.file, tc.env, tc.flags)
			if len(problems) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(problems), len(tc.want), strings.Join(problems, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(problems[i], w) || strings.Contains(problems[i], "\n") {
					t.Errorf("problem %d = %q, want one line containing %q", i, problems[i], w)
				}
			}
		})
	}
}

func TestConfigCheck_EffectiveConfig_RedactsSecrets(t *testing.T) {
	cleanEnv(t)
	t.Setenv("TWOFOLD_MASTER_KEY", "c2VjcmV0LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE=")
	t.Setenv("TWOFOLD_REDIS", "redis://:redispass@cache:6379/0")
	cfg := writeConfig(t, `{"store": "postgres://twofold:pgpass@db:5432/twofold?sslmode=require"}`)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "check", "--config", cfg}, &out); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pgpass", "redispass", "c2VjcmV0LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE="} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("config check prints %q:\n%s", secret, out.String())
		}
	}
	for _, kept := range []string{"db:5432/twofold", "cache:6379", "from TWOFOLD_MASTER_KEY (redacted)"} {
		if !strings.Contains(out.String(), kept) {
			t.Errorf("config check lacks %q:\n%s", kept, out.String())
		}
	}
}

// pgx also takes the password, and the client key's, as query parameters
// (?password=…&sslpassword=…): config check hides them as it hides the URL's userinfo.
func TestConfigCheck_PasswordsInTheStoreURLsQuery_Redacted(t *testing.T) {
	cleanEnv(t)
	cfg := writeConfig(t, `{"store": "postgres://twofold@db:5432/twofold?sslmode=require&password=pgquerypass&sslpassword=keypass&PassWord=mixedcase"}`)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "check", "--config", cfg}, &out); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pgquerypass", "keypass", "mixedcase"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("config check prints %q:\n%s", secret, out.String())
		}
	}
	for _, kept := range []string{"twofold@db:5432/twofold", "sslmode=require"} {
		if !strings.Contains(out.String(), kept) {
			t.Errorf("config check lacks %q:\n%s", kept, out.String())
		}
	}
}

// The admin subcommands read --data and --store from the same file serve uses, so
// `users reset --config F` acts on the store serve runs on; serve-only keys are no error.
func TestConfig_AdminCommandsTakeDataFromTheFile(t *testing.T) {
	cleanEnv(t)
	data := t.TempDir()
	cfg := writeConfig(t, `{"addr": "127.0.0.1:9", "data": `+mustJSON(data)+`}`)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "--config", cfg}, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "twofold.db")); err != nil {
		t.Errorf("audit --config did not open the file's --data: %v", err)
	}
}
