// Command run is what `make run` runs: it registers the demo app with the verifier on the
// first run, starts the verifier (bin/twofold serve) and the demo (bin/demo), waits until
// both answer, prints their URLs, and stops both on Ctrl-C (or when either one exits).
//
//	run -twofold bin/twofold -demo bin/demo -data ./data -verifier-addr 127.0.0.1:8080 -demo-addr 127.0.0.1:3000
//
// A port of 0 picks a free one (the end-to-end test does this).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

type config struct {
	Twofold, Demo, Data, SDK string
	VerifierAddr, DemoAddr   string
}

func main() {
	var c config
	flag.StringVar(&c.Twofold, "twofold", "bin/twofold", "the twofold binary")
	flag.StringVar(&c.Demo, "demo", "bin/demo", "the demo binary")
	flag.StringVar(&c.Data, "data", "./data", "data directory of both (the verifier's SQLite store, the demo's users)")
	flag.StringVar(&c.SDK, "sdk", "sdk-js/dist", "the built browser SDK")
	flag.StringVar(&c.VerifierAddr, "verifier-addr", "127.0.0.1:8080", "HOST:PORT of the verifier")
	flag.StringVar(&c.DemoAddr, "demo-addr", "127.0.0.1:3000", "HOST:PORT of the demo")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

// freeAddr replaces a :0 port with a free one, since the demo's origin (registered with the
// verifier) must be known before either starts.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// appFile is the demo's registration, as `twofold apps create` printed it, plus the
// origins it was registered with (so a changed port is noticed).
type appFile struct {
	ID      string   `json:"id"`
	APIKey  string   `json:"api_key"`
	Origins []string `json:"origins,omitempty"`
}

// register creates the app "demo" for origins unless data/demo-app.json exists.
func register(c config, origins []string) (string, error) {
	file := filepath.Join(c.Data, "demo-app.json")
	raw, err := os.ReadFile(file)
	if err == nil {
		var a appFile
		switch {
		case json.Unmarshal(raw, &a) != nil:
			return "", fmt.Errorf("%s is not the JSON `twofold apps create` prints; delete it (or the whole %s) to register again", file, c.Data)
		case len(a.Origins) == 0:
			fmt.Fprintf(os.Stderr, "run: note: %s was written by an earlier make run, which also registered http://127.0.0.1:3000; if passkeys fail, delete %s to register again.\n", file, c.Data)
		case !slices.Equal(a.Origins, origins):
			fmt.Fprintf(os.Stderr, "run: warning: the demo app was registered for %v, not %v; browsers will be refused. Delete %s (or the whole %s) to register again.\n", a.Origins, origins, file, c.Data)
		}
		return file, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return "", err
	}
	args := []string{"apps", "create", "--data", c.Data, "--id", "demo", "--name", "twofold demo"}
	for _, o := range origins {
		args = append(args, "--origin", o)
	}
	cmd := exec.Command(c.Twofold, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s apps create: %w", c.Twofold, err)
	}
	var a appFile
	if err := json.Unmarshal(out.Bytes(), &a); err != nil || a.APIKey == "" {
		return "", fmt.Errorf("%s apps create printed %q", c.Twofold, out.String())
	}
	a.Origins = origins
	b, _ := json.MarshalIndent(a, "", "  ")
	return file, os.WriteFile(file, append(b, '\n'), 0o600)
}

func run(ctx context.Context, c config) error {
	var err error
	if c.VerifierAddr, err = freeAddr(c.VerifierAddr); err != nil {
		return fmt.Errorf("-verifier-addr: %w", err)
	}
	if c.DemoAddr, err = freeAddr(c.DemoAddr); err != nil {
		return fmt.Errorf("-demo-addr: %w", err)
	}
	_, demoPort, _ := net.SplitHostPort(c.DemoAddr)
	origin := "http://localhost:" + demoPort
	verifierURL := "http://" + c.VerifierAddr
	// Only the localhost origin: the SDK refuses plain http on an IP address, WebAuthn needs
	// a domain, and the demo sends 127.0.0.1 visitors to localhost.
	file, err := register(c, []string{origin})
	if err != nil {
		return err
	}

	exited := make(chan error, 2)
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // logs; stdout is for the URLs
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { exited <- fmt.Errorf("%s exited: %v", filepath.Base(name), cmd.Wait()) }()
		return cmd, nil
	}
	var procs []*exec.Cmd
	stopAll := func() {
		for _, p := range procs {
			p.Process.Signal(os.Interrupt)
		}
		deadline := time.After(15 * time.Second)
		for range procs {
			select {
			case <-exited:
			case <-deadline:
				for _, p := range procs {
					p.Process.Kill()
				}
				return
			}
		}
	}
	v, err := start(c.Twofold, "serve", "--addr", c.VerifierAddr, "--data", c.Data)
	if err != nil {
		return err
	}
	procs = append(procs, v)
	if err := waitFor(ctx, verifierURL+"/readyz", exited); err != nil {
		stopAll()
		return err
	}
	d, err := start(c.Demo, "-addr", c.DemoAddr, "-origin", origin, "-verifier", verifierURL, "-app", file, "-sdk", c.SDK, "-data", c.Data)
	if err != nil {
		stopAll()
		return err
	}
	procs = append(procs, d)
	if err := waitFor(ctx, "http://"+c.DemoAddr+"/healthz", exited); err != nil {
		stopAll()
		return err
	}
	fmt.Printf("verifier: %s\n", verifierURL)
	fmt.Printf("demo:     %s   <- open this one (localhost, not 127.0.0.1: passkeys need it)\n", origin)
	fmt.Println("Ctrl-C stops both.")
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "run: stopping")
		stopAll()
		return nil
	case err := <-exited:
		procs = slices.DeleteFunc(procs, func(p *exec.Cmd) bool { return p.ProcessState != nil })
		stopAll()
		return err
	}
}

// waitFor polls url until it answers 200, a process exits, or 30 s pass.
func waitFor(ctx context.Context, url string, exited chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer within 30 s", url)
}
