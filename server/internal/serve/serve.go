// Package serve wires twofold together: it opens the store and the master keyring named by
// the configuration, builds the domain services, and runs the HTTP server until its context
// ends. The CLI's other subcommands use the same wiring through Open.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twofold-dev/twofold/server/internal/anomaly"
	"github.com/twofold-dev/twofold/server/internal/api"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/certs"
	"github.com/twofold-dev/twofold/server/internal/checkpoint"
	"github.com/twofold-dev/twofold/server/internal/clientip"
	"github.com/twofold-dev/twofold/server/internal/clockcheck"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/limit/redisbudget"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/postgres"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
	"github.com/twofold-dev/twofold/server/internal/tokens"
)

// Config is everything `twofold serve` and the admin subcommands are told.
type Config struct {
	Addr    string // host:port to listen on
	DataDir string // SQLite file and master key file
	// Store is empty for the embedded SQLite store, or a postgres:// URL.
	Store string
	// Issuer is the iss of tokens and the base of jwks_uri; default http://Addr.
	Issuer string
	// MasterKey and MasterKeyPrevious are base64 keys from the environment; when MasterKey
	// is empty the key file in DataDir is used, generated on first start.
	MasterKey         string
	MasterKeyPrevious string
	// MasterKeyCommand, a command line run without a shell, prints the master keys (the
	// key file's format) instead; it wins over both.
	MasterKeyCommand string
	BehindProxy      bool
	ShutdownTimeout  time.Duration
	Logger           *slog.Logger
	// Now is the clock; tests inject one to step through time without sleeping.
	Now func() time.Time
	// IPBudget overrides how many failed attempts one client address may make per window
	// (limit.DefaultPolicy); load tests from one address raise it.
	IPBudget int
	// Redis, a redis:// URL, moves the attempt budgets out of the store into Redis, where
	// every instance shares them; RedisPrefix starts their keys (default "twofold:").
	Redis       string
	RedisPrefix string
	// TLSCert and TLSKey serve HTTPS; the pair is read again on SIGHUP.
	TLSCert, TLSKey string
	// TrustedProxies are CIDRs of the proxies whose forwarding header names the client
	// address; ClientIPHeader is that header, "x-forwarded-for" (the default) or
	// "forwarded". The other one is never read.
	TrustedProxies []string
	ClientIPHeader string
	// NTP names an NTP server (host or host:port) to check this verifier's clock against
	// every NTPInterval (10 minutes); empty checks none. There is no default server.
	NTP         string
	NTPInterval time.Duration
	// CheckpointEvery is how often the audit trail's head is signed (1 minute).
	CheckpointEvery time.Duration
	// PprofAddr, a loopback HOST:PORT, serves Go's profiles under /debug/pprof/; empty
	// serves none.
	PprofAddr string
}

// Validate reports every problem at once, naming the option.
func (c *Config) Validate(needAddr bool) error {
	var errs []error
	if needAddr {
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--addr %q must be HOST:PORT", c.Addr))
		} else if !c.BehindProxy && c.TLSCert == "" && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("--addr %s is not a loopback address: plain HTTP there would expose codes and tokens; serve TLS in front of it and pass --behind-proxy", c.Addr))
		}
	}
	if c.Store == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data is required with the embedded store"))
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		errs = append(errs, fmt.Errorf("--store must be a postgres:// URL"))
	}
	if c.Redis != "" && !strings.HasPrefix(c.Redis, "redis://") && !strings.HasPrefix(c.Redis, "rediss://") {
		errs = append(errs, fmt.Errorf("--redis must be a redis:// or rediss:// URL"))
	}
	if c.MasterKeyCommand != "" && c.MasterKey != "" {
		errs = append(errs, errors.New("--master-key-command and TWOFOLD_MASTER_KEY both name the master key; keep one"))
	}
	if _, err := seal.SplitCommand(c.MasterKeyCommand); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.Store == "" && c.DataDir != "" {
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("--data %s is a file, not a directory", c.DataDir))
		}
	}
	if _, err := clientip.Parse(c.ClientIPHeader, c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.PprofAddr != "" {
		// Profiles show the process's memory and call stacks: never beyond this host.
		if host, _, err := net.SplitHostPort(c.PprofAddr); err != nil || !isLoopback(host) {
			errs = append(errs, fmt.Errorf("--pprof-addr %q must be a loopback HOST:PORT", c.PprofAddr))
		}
	}
	return errors.Join(errs...)
}

// CheckTLSFiles reports a certificate or key that cannot be loaded, before serve starts
// anything. config check leaves it out: it may check a file meant for another machine.
func (c *Config) CheckTLSFiles() error {
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil
	}
	if _, err := certs.Load(c.TLSCert, c.TLSKey); err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Issuer == "" && c.TLSCert != "" {
		c.Issuer = "https://" + c.Addr
	}
	if c.Issuer == "" {
		c.Issuer = "http://" + c.Addr
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.NTPInterval <= 0 {
		c.NTPInterval = 10 * time.Minute
	}
}

// Env is an opened twofold: store, keys and services.
type Env struct {
	Store  store.Store
	Ring   *seal.Keyring
	Tokens *tokens.Issuer
	MFA    *mfa.Service
	// Audit records security events; Metrics counts them (and requests) for /metrics.
	Audit   *audit.Log
	Metrics *audit.Metrics
	// Budgets holds the attempt budgets when Config.Redis is set; nil means the store does.
	Budgets *redisbudget.Budgets
	// Clock estimates this verifier's clock offset from the codes it accepts.
	Clock *clockcheck.Estimator
}

// Warm opens the store's connections before requests need them: opened on demand, they
// would be opened by the first requests all at once (on PostgreSQL a server process each).
func (e *Env) Warm(ctx context.Context) error {
	if w, ok := e.Store.(interface{ Warm(context.Context) error }); ok {
		return w.Warm(ctx)
	}
	return nil
}

// Close releases the store (and Redis).
func (e *Env) Close() error {
	if e.Budgets != nil {
		e.Budgets.Close()
	}
	return e.Store.Close()
}

// Open opens the store and keyring that cfg names and builds the services on them.
func Open(ctx context.Context, cfg Config) (*Env, error) {
	cfg.defaults()
	ring, err := keyring(cfg)
	if err != nil {
		return nil, err
	}
	var st store.Store
	if cfg.Store != "" {
		st, err = postgres.Open(ctx, cfg.Store)
	} else {
		if err = os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("--data %s: %w", cfg.DataDir, err)
		}
		st, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, DBFile))
	}
	if err != nil {
		return nil, err
	}
	iss := tokens.New(tokens.Config{Issuer: cfg.Issuer, Now: cfg.Now}, st, ring)
	policy := limit.DefaultPolicy()
	if cfg.IPBudget > 0 {
		policy.IP.Limit = cfg.IPBudget
	}
	var budgets store.AttemptStore = st
	var rb *redisbudget.Budgets
	if cfg.Redis != "" {
		if rb, err = redisbudget.New(cfg.Redis, redisbudget.Options{Prefix: cfg.RedisPrefix}); err != nil {
			st.Close()
			return nil, err
		}
		budgets = rb
	}
	metrics := audit.NewMetrics()
	alog := audit.NewLog(metrics, cfg.Now)
	clk := clockcheck.New(clockcheck.Config{Now: cfg.Now})
	svc := mfa.New(mfa.Deps{Store: st, Sealer: ring, Signer: iss, Limiter: limit.New(budgets, policy), Audit: anomaly.New(alog, anomaly.Config{Now: cfg.Now}), Clock: clk}, mfa.Config{Logger: cfg.Logger, Now: cfg.Now})
	return &Env{Store: st, Ring: ring, Tokens: iss, MFA: svc, Audit: alog, Metrics: metrics, Budgets: rb, Clock: clk}, nil
}

// MasterKeyFile is where the generated master keyring lives inside --data, and DBFile the
// embedded store.
const (
	MasterKeyFile = "master.key"
	DBFile        = "twofold.db"
)

func keyring(cfg Config) (*seal.Keyring, error) {
	src, err := cfg.KeySource()
	if err != nil {
		return nil, err
	}
	return src.Keyring(context.Background())
}

// KeySource is where the master keyring comes from: --master-key-command, else
// TWOFOLD_MASTER_KEY, else the key file in --data (generated on first start).
func (c *Config) KeySource() (seal.KeySource, error) {
	switch {
	case c.MasterKeyCommand != "":
		argv, err := seal.SplitCommand(c.MasterKeyCommand)
		if err != nil {
			return nil, err
		}
		return seal.CommandSource{Argv: argv}, nil
	case c.MasterKey != "":
		return seal.EnvSource{Primary: c.MasterKey, Previous: c.MasterKeyPrevious}, nil
	case c.DataDir == "":
		return nil, errors.New("set TWOFOLD_MASTER_KEY, --master-key-command or --data for the master key")
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data %s: %w", c.DataDir, err)
	}
	return seal.FileSource{Path: filepath.Join(c.DataDir, MasterKeyFile)}, nil
}

// Run serves until ctx ends, then shuts down gracefully within cfg.ShutdownTimeout.
// ready, if not nil, receives the bound address once the listener is open.
func Run(ctx context.Context, cfg Config, ready func(addr string)) error {
	proxies, err := clientip.Parse(cfg.ClientIPHeader, cfg.TrustedProxies)
	if err != nil {
		return err
	}
	var tlsCerts *certs.Reloader
	if cfg.TLSCert != "" {
		if tlsCerts, err = certs.Load(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	cfg.Addr = ln.Addr().String() // a :0 port is now known, and the default issuer with it
	cfg.defaults()
	env, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	proxies.Logger = cfg.Logger
	if cfg.BehindProxy && len(cfg.TrustedProxies) == 0 {
		cfg.Logger.Warn("--behind-proxy without --trusted-proxies: every client counts against the proxy's address, so one attacker's guesses can lock everyone out of the per-address budget")
	}
	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, cfg.Logger); err != nil {
			return err
		}
	}
	if err := env.Warm(ctx); err != nil {
		cfg.Logger.Warn("could not open the store's connections ahead of requests", "err", err)
	}
	// Which master keys this verifier holds, for keys rotate-master to check.
	self := newInstance(env, cfg)
	if err := self.put(ctx); err != nil {
		cfg.Logger.Warn("could not record this instance's master keys", "err", err)
	}
	go self.keepFresh(ctx)
	defer self.remove() // before the store closes
	checks := []api.Check{{Name: "store", Ping: env.Store.Ping}}
	if env.Budgets != nil {
		// Serve even when Redis is down: verifications fail closed and /readyz says why
		// until it is back, which needs no restart.
		checks = append(checks, api.Check{Name: "redis", Ping: env.Budgets.Ping})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := env.Budgets.Ping(pctx); err != nil {
			cfg.Logger.Warn("verifications are refused until Redis answers", "err", err)
		} else if msg := env.Budgets.Warning(); msg != "" {
			cfg.Logger.Warn(msg)
		}
		cancel()
	}
	warnings := []api.Warning{{Name: "clock", Check: env.Clock.Warning}}
	if env.Budgets != nil {
		warnings = append(warnings, api.Warning{Name: "redis", Check: env.Budgets.Warning})
	}
	app := api.New(api.Deps{
		MFA:      env.MFA,
		Keys:     env.Tokens,
		Ready:    checks,
		Logger:   cfg.Logger,
		Metrics:  env.Metrics,
		Tokens:   env.Tokens,
		Proxies:  proxies,
		Warnings: warnings,
		Gauges:   []func(io.Writer) error{env.Clock.WritePrometheus},
	})
	if cfg.NTP != "" {
		go env.Clock.RunNTP(ctx, cfg.NTP, cfg.NTPInterval, cfg.Logger)
	}
	go sweep(ctx, env.Store, cfg.Logger)
	go (&checkpoint.Writer{Store: env.Store, Signer: env.Tokens, Logger: cfg.Logger, Now: cfg.Now, Interval: cfg.CheckpointEvery}).Run(ctx)
	go (&audit.Deliverer{Store: env.Store, Sealer: env.Ring, Metrics: env.Metrics, Logger: cfg.Logger, Now: cfg.Now}).Run(ctx)
	var serveLn net.Listener = ln
	if tlsCerts != nil {
		serveLn = tls.NewListener(ln, tlsCerts.Config())
		go reloadOnHangup(ctx, tlsCerts, cfg.Logger)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(serveLn) }()
	cfg.Logger.Info("twofold serving", "addr", ln.Addr().String(), "issuer", cfg.Issuer)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down")
	// Bounded: idle keep-alive connections would otherwise hold shutdown open. In-flight
	// requests had the timeout to finish; what is left is cut, which is not an error.
	if err := app.ShutdownWithTimeout(cfg.ShutdownTimeout); err != nil {
		cfg.Logger.Warn("shutdown cut connections still open", "after", cfg.ShutdownTimeout, "err", err)
	}
	return nil
}

// reloadOnHangup reads the certificate again on each SIGHUP; connections already open
// keep theirs, new handshakes get the new one.
func reloadOnHangup(ctx context.Context, r *certs.Reloader, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.Reload(); err != nil {
				log.Error("TLS certificate reload failed; still serving the previous one", "err", err)
				continue
			}
			log.Info("TLS certificate reloaded")
		}
	}
}

// sweep deletes what expired (store.Store.Sweep) once a minute.
func sweep(ctx context.Context, st store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			swept, err := st.Sweep(ctx, now)
			if err != nil && ctx.Err() == nil {
				log.Warn("sweep failed", "err", err)
			}
			if swept != (store.Swept{}) {
				log.Debug("swept", "removed", swept)
			}
		}
	}
}
