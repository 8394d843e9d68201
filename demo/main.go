// Command demo is a small web site that uses twofold for its second factor: its own
// password sign-in and sign-up (argon2id), then the browser SDK's components for setting up
// an authenticator, signing in with a code, a passkey or a recovery code, and an account
// security page. Its backend checks every token with server/client.
//
//	demo -addr 127.0.0.1:3000 -verifier http://127.0.0.1:8080 -app data/demo-app.json -sdk sdk-js/dist -data data
//
// `make run` starts it next to the verifier (see demo/cmd/run).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type config struct {
	Addr     string // where to listen
	Origin   string // the URL people open; default http://localhost:PORT
	Verifier string // the verifier's URL, as browsers reach it and as its tokens name it
	AppFile  string // {"id","api_key"} as `twofold apps create` printed it
	SDK      string // the built browser SDK (sdk-js/dist)
	Data     string // users file and session key
}

func main() {
	var c config
	flag.StringVar(&c.Addr, "addr", "127.0.0.1:3000", "HOST:PORT to listen on")
	flag.StringVar(&c.Origin, "origin", "", "the URL people open (default http://localhost:PORT; WebAuthn and the SDK need localhost, not 127.0.0.1)")
	flag.StringVar(&c.Verifier, "verifier", "http://127.0.0.1:8080", "the twofold verifier's URL (its token issuer)")
	flag.StringVar(&c.AppFile, "app", "data/demo-app.json", "the app's id and API key, as `twofold apps create` printed them")
	flag.StringVar(&c.SDK, "sdk", "sdk-js/dist", "the built browser SDK (make wasm)")
	flag.StringVar(&c.Data, "data", "data", "directory for the demo's users and session key")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	if c.Origin == "" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		c.Origin = "http://localhost:" + port
	}
	var app struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	raw, err := os.ReadFile(c.AppFile)
	if err != nil {
		return fmt.Errorf("-app: %w (register the demo with `twofold apps create`; make run does)", err)
	}
	if err := json.Unmarshal(raw, &app); err != nil || app.ID == "" || app.APIKey == "" {
		return fmt.Errorf("-app %s: not the JSON `twofold apps create` prints", c.AppFile)
	}
	if _, err := os.Stat(filepath.Join(c.SDK, "index.js")); err != nil {
		return fmt.Errorf("-sdk %s has no index.js: run make wasm", c.SDK)
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return err
	}
	h, err := newServer(c, app.ID, app.APIKey, slog.Default())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	slog.Info("demo serving", "open", c.Origin, "listen", ln.Addr().String(), "verifier", c.Verifier)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
