// Command twofold is the verifier and its admin CLI in one binary:
//
//	twofold serve --addr 127.0.0.1:8080 --data ./data
//	twofold serve --store postgres://... --redis redis://... [--redis-prefix twofold:]
//	twofold apps create --data ./data --id demo --origin http://localhost:3000
//	twofold apps create --data ./data --id support --origin https://support.example --admin [--admin-of demo]
//	twofold keys rotate-master --data ./data
//	twofold keys rotate-signing --data ./data [--alg EdDSA] [--publish-ahead 2m]
//	twofold keys withdraw-signing --data ./data --kid KID
//	twofold apps webhook --data ./data --id demo --url https://demo.example/hooks/twofold
//	twofold users reset --data ./data --app demo --user alice --reason "lost phone, ticket #123"
//	twofold audit --data ./data [--user alice] [--app demo] [--since 24h]
//	twofold audit verify --data ./data
//	twofold backup --data ./data --to /backups/twofold-2030-01-02.db
//	twofold serve --config /etc/twofold/twofold.json   (flags > TWOFOLD_* variables > file)
//	twofold config check --config /etc/twofold/twofold.json [serve's flags]
//	twofold version
//
// Output a script reads is JSON on stdout; logs go to stderr. A bad flag is one line on
// stderr and exit status 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/checkpoint"
	"github.com/twofold-dev/twofold/server/internal/clientip"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/tokens"
)

// usageError is a problem with how the command was called: exit 2.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if err == nil {
		return
	}
	var cf checkFailed
	if errors.As(err, &cf) {
		for _, p := range cf {
			fmt.Fprintln(os.Stderr, "twofold: "+p.Error())
		}
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "twofold: "+strings.ReplaceAll(err.Error(), "\n", "; "))
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

const usage = "usage: twofold serve|apps create|apps webhook|keys rotate-master|keys rotate-signing|keys withdraw-signing|users reset|audit|audit verify|backup|config check|version [flags]"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	cmd, rest := args[0], args[1:]
	if subcommand(cmd, rest) {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	cfg := serve.Config{Logger: logger}
	cfg.EnvConfig()
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data", "./data", "directory of the SQLite store and the master key file")
	fs.StringVar(&cfg.Store, "store", "", "postgres://... to use PostgreSQL instead of SQLite")
	// Every subcommand takes them: `users reset` must clear budgets where serve keeps them.
	fs.StringVar(&cfg.Redis, "redis", "", "redis://... to keep attempt budgets in Redis, shared by every instance")
	fs.StringVar(&cfg.MasterKeyCommand, "master-key-command", "", "command (no shell) that prints the master key(s), e.g. \"vault kv get -field=key secret/twofold\"")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", "twofold:", "prefix of every Redis key, for several deployments on one Redis")
	configFile := fs.String("config", "", "JSON file of serve's settings, keys named like the flags; TWOFOLD_* variables and flags win over it")
	var layerErrs []error // config check reports them together with Validate's
	parse := func() error {
		if err := fs.Parse(rest); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd, err)}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))}
		}
		layerErrs = layer(fs, *configFile, os.Getenv)
		if len(layerErrs) > 0 && cmd != "config check" {
			return usageError{errors.Join(layerErrs...)}
		}
		return nil
	}
	switch cmd {
	case "version":
		if err := parse(); err != nil {
			return err
		}
		return printVersion(stdout)
	case "serve", "config check":
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "HOST:PORT to listen on")
		fs.StringVar(&cfg.Issuer, "issuer", "", "public base URL of this verifier (token iss); default http://ADDR")
		fs.BoolVar(&cfg.BehindProxy, "behind-proxy", false, "TLS ends in a proxy in front of this verifier")
		fs.IntVar(&cfg.IPBudget, "ip-budget", 0, "failed attempts one client address may make per 10 minutes (default 200)")
		fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; read again on SIGHUP")
		fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
		fs.StringVar(&cfg.NTP, "ntp", "", "HOST[:PORT] of an NTP server to check this verifier's clock against (none by default)")
		proxies := fs.String("trusted-proxies", "", "CIDR,... of proxies whose forwarding header names the client")
		fs.StringVar(&cfg.ClientIPHeader, "client-ip-header", clientip.XForwardedFor, "the one header --trusted-proxies write: x-forwarded-for or forwarded")
		fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "loopback HOST:PORT to serve Go's profiles on, under /debug/pprof/ (none by default)")
		if err := parse(); err != nil {
			return err
		}
		if *proxies != "" {
			cfg.TrustedProxies = strings.Split(*proxies, ",")
		}
		if cmd == "config check" {
			return configCheck(&cfg, fs, layerErrs, stdout)
		}
		if err := errors.Join(cfg.Validate(true), cfg.CheckTLSFiles()); err != nil {
			return usageError{err}
		}
		serve.TuneRuntime(cfg)
		return serve.Run(ctx, cfg, nil)
	case "apps create":
		var app mfa.NewApp
		var origins multiFlag
		fs.StringVar(&app.ID, "id", "", "app id")
		fs.StringVar(&app.Name, "name", "", "name shown in authenticator apps (default: the id)")
		fs.StringVar(&app.SigningAlg, "alg", "EdDSA", "token algorithm: EdDSA, ES256 or RS256")
		fs.Var(&origins, "origin", "an origin the app's pages live on (repeatable)")
		fs.StringVar(&app.RPID, "rp-id", "", "WebAuthn relying party id (default: the first origin's host)")
		fs.StringVar(&app.PasskeyPolicy, "passkey-policy", "totp_fallback", "totp_fallback, or passkey_only: once a user has a passkey, TOTP stops and its secrets are destroyed")
		fs.StringVar(&app.UserVerification, "user-verification", "required", "WebAuthn user verification: required or preferred")
		fs.StringVar(&app.Attestation, "attestation", "none", "none, or direct: only authenticators on the --aaguid allow-list may register")
		var aaguids multiFlag
		fs.Var(&aaguids, "aaguid", "an allowed authenticator model with --attestation direct (repeatable)")
		admin := fs.Bool("admin", false, "the app's key may call the admin API (with its admin's fresh second factor)")
		var adminOf multiFlag
		fs.Var(&adminOf, "admin-of", "with --admin: an app whose users it may reset (repeatable; default every ordinary app)")
		if err := parse(); err != nil {
			return err
		}
		if len(adminOf) > 0 && !*admin {
			return usageError{errors.New("apps create: --admin-of goes with --admin")}
		}
		if err := cfg.Validate(false); err != nil {
			return usageError{err}
		}
		app.Origins, app.AAGUIDs = origins, aaguids
		env, err := serve.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer env.Close()
		for _, id := range adminOf { // before anything is created
			if _, err := env.Store.App(ctx, id); errors.Is(err, store.ErrNotFound) {
				return usageError{fmt.Errorf("apps create: --admin-of %s: there is no such app", id)}
			} else if err != nil {
				return err
			}
		}
		key, err := env.MFA.CreateApp(ctx, app)
		var we *wire.Error
		if errors.As(err, &we) {
			return usageError{errors.New(we.Message)}
		}
		if err != nil {
			return err
		}
		if *admin {
			if err := env.Store.SetAdminApp(ctx, app.ID, adminOf...); err != nil {
				return err
			}
		}
		return json.NewEncoder(stdout).Encode(wire.AppCreated{ID: app.ID, APIKey: key})
	case "keys rotate-master":
		settle := fs.Duration("settle", 3*time.Second, "how long requests already sealing under the old key get to finish before the last re-seal pass")
		force := fs.Bool("force", false, "re-seal even when a running verifier does not hold the new key (it will fail for the users re-sealed)")
		if err := parse(); err != nil {
			return err
		}
		n, err := serve.RotateMaster(ctx, cfg, *settle, *force)
		var damaged *serve.ResealError
		if errors.As(err, &damaged) {
			// The rest is re-sealed: say so to scripts, and exit 1 over what is not.
			if jerr := json.NewEncoder(stdout).Encode(map[string]any{"resealed": n, "failed": damaged.Failed}); jerr != nil {
				return jerr
			}
			return err
		}
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]int{"resealed": n})
	case "keys rotate-signing":
		alg := fs.String("alg", "EdDSA", "algorithm whose signing key to replace: EdDSA, ES256 or RS256")
		lead := fs.Duration("publish-ahead", tokens.RotationLead, "how long the new key is in the JWKS before it signs, so backends that cached the JWKS know it (0s: sign at once)")
		if err := parse(); err != nil {
			return err
		}
		env, err := serve.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer env.Close()
		kid, from, err := env.Tokens.Rotate(ctx, *alg, *lead)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]string{"kid": kid, "alg": *alg, "signs_from": from.UTC().Format(time.RFC3339)})
	case "keys withdraw-signing":
		kid := fs.String("kid", "", "kid of the signing key to take out of use at once (a key that may have leaked)")
		if err := parse(); err != nil {
			return err
		}
		if *kid == "" {
			return usageError{errors.New("keys withdraw-signing: --kid is required (the kid in a token's header or in /.well-known/jwks.json)")}
		}
		env, err := serve.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer env.Close()
		replacement, err := env.Tokens.Withdraw(ctx, *kid)
		if errors.Is(err, tokens.ErrUnknownKey) {
			return usageError{fmt.Errorf("keys withdraw-signing: --kid %s: %w", *kid, tokens.ErrUnknownKey)}
		}
		if err != nil {
			return err
		}
		// Checkpoints the key signed vouch for nothing now; without a new one, audit verify
		// --max-checkpoint-age may find the trail cut off until a verifier writes one.
		cp := checkpoint.Writer{Store: env.Store, Signer: env.Tokens, Logger: cfg.Logger}
		if _, err := cp.Append(ctx); err != nil {
			return fmt.Errorf("keys withdraw-signing: %s is withdrawn, but the audit checkpoint signed by the key signing now was not appended: %w", *kid, err)
		}
		out := map[string]string{"withdrawn": *kid}
		if replacement != "" {
			out["kid"] = replacement
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	if sub, ok := adminCommands[cmd]; ok {
		return sub(ctx, command{cfg: &cfg, fs: fs, parse: parse, stdout: stdout})
	}
	return usageError{fmt.Errorf("unknown command %q; %s", cmd, usage)}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
