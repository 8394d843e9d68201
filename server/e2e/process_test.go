package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// binary is the twofold command built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "twofold-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "twofold")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/twofold").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is `twofold serve` running as its own process, its log lines collected.
type process struct {
	cmd  *exec.Cmd
	URL  string
	done chan error
	mu   sync.Mutex
	logs []string
}

// startProcess runs `twofold serve` on dataDir and waits until it listens.
func startProcess(t *testing.T, dataDir string) *process {
	t.Helper()
	return serveArgs(t, nil, "--addr", "127.0.0.1:0", "--data", dataDir)
}

// serveArgs runs `twofold serve args...` with env added to the environment, over http.
func serveArgs(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p, err := launch(t, env, "http", args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch runs `twofold serve args...`, waits until it logs that it listens, and kills it
// when the test ends, showing its last log lines if the test failed. It returns an error
// rather than failing, so several can be started from goroutines.
func launch(t *testing.T, env []string, scheme string, args ...string) (*process, error) {
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return launchCmd(t, cmd, scheme)
}

// launchCmd is launch for a command that runs `twofold serve` some other way.
func launchCmd(t *testing.T, cmd *exec.Cmd, scheme string) (*process, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "twofold serving" {
				addr <- line.Addr
			}
			if line.Msg != "request" {
				p.mu.Lock()
				p.logs = append(p.logs, sc.Text())
				p.mu.Unlock()
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("twofold serve %s, last log lines:\n%s", p.URL, p.tail(20))
		}
	})
	select {
	case a := <-addr:
		p.URL = scheme + "://" + a
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("twofold serve exited: %v\n%s", err, p.tail(20))
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("twofold serve did not start listening within 30s")
	}
}

// tail is the process's last n log lines.
func (p *process) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs[max(0, len(p.logs)-n):], "\n")
}

// logged reports whether the process logged msg.
func (p *process) logged(msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		var line struct{ Msg string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == msg {
			return true
		}
	}
	return false
}

// waitLogged waits until the process logs msg.
func (p *process) waitLogged(t *testing.T, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !p.logged(msg) {
		if time.Now().After(deadline) {
			t.Fatalf("the verifier did not log %q within 10s; logs:\n%s", msg, p.tail(50))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	return output(t, exec.Command(binary, args...))
}

// output is what cmd writes to stdout; a failure fails the test, showing its stderr.
func output(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr)
	}
	return out
}

// signedIn starts `twofold serve` as a process on a fresh data directory with the app
// "shop" made by the CLI, enrolls user and signs them in with a code, which it returns.
func signedIn(t *testing.T, user string) (*process, *verifier, enrolled, string) {
	t.Helper()
	data := t.TempDir()
	var app wire.AppCreated
	if err := json.Unmarshal(runCLI(t, "apps", "create", "--data", data, "--id", "shop", "--origin", origin), &app); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, data)
	v := &verifier{t: t, URL: p.URL, Data: data, APIKey: app.APIKey, Clock: &clock{}}
	e := v.enroll(user)
	c := code(t, e.Secret, time.Now().Add(30*time.Second))
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c}); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	return p, v, e, c
}

// A success is durable before it is answered: a kill -9 right after it does not bring
// the code back.
func TestVerify_KilledRightAfterSuccess_CodeStaysUsed(t *testing.T) {
	p, v, e, c := signedIn(t, "hank")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil // let Cleanup's wait return

	v.URL = startProcess(t, v.Data).URL
	r := v.ticket("hank").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c})
	if r.Status != 409 || r.errCode() != wire.CodeCodeAlreadyUsed {
		t.Fatalf("code after kill -9 and restart: %d %s, want 409 code_already_used", r.Status, r.Raw)
	}
	// The ticket issued before the crash still works: tickets survive a restart.
	if s := e.call("GET", "/v1/session", nil); s.Status != 200 {
		t.Fatalf("ticket after restart: %d %s", s.Status, s.Raw)
	}
}

func TestServe_SIGTERM_ShutsDownCleanly(t *testing.T) {
	p := startProcess(t, t.TempDir())
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		p.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
}

func TestCLI_BadFlags_OneLineAndExit2(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--addr"},
		{"serve", "--addr", "nonsense"},
		{"serve", "--addr", "0.0.0.0:8080", "--data", t.TempDir()},
		{"serve", "--bogus"},
		{"apps", "create", "--data", t.TempDir(), "--id", "Bad Id", "--origin", "ftp://x"},
		{"frobnicate"},
		// Values that name something unusable are the caller's mistake as much.
		{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"},
		{"serve", "--addr", "127.0.0.1:0", "--data", "/etc/passwd"},
		// Reading a trail never creates one: a mistyped path is not an empty, verified trail.
		{"audit", "--data", filepath.Join(t.TempDir(), "typo")},
		{"audit", "verify", "--data", filepath.Join(t.TempDir(), "typo")},
		{"apps", "create", "--data", t.TempDir(), "--id", "help", "--origin", "https://help.example", "--admin-of", "shop"},
		{"apps", "create", "--data", t.TempDir(), "--id", "help", "--origin", "https://help.example", "--admin", "--admin-of", "nope"},
		{"keys", "withdraw-signing", "--data", t.TempDir()},
		{"keys", "withdraw-signing", "--data", t.TempDir(), "--kid", "no-such-kid"},
	} {
		cmd := exec.CommandContext(context.Background(), binary, args...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit 2", args, err)
		}
		if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 1 || !strings.HasPrefix(string(out), "twofold: ") {
			t.Errorf("%v: want one line, got %q", args, out)
		}
	}
}
