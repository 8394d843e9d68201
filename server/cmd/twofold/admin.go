package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/checkpoint"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// command is what a subcommand gets from run: the shared --data/--store flags already
// declared on fs, and parse to call once it has declared its own.
type command struct {
	cfg    *serve.Config
	fs     *flag.FlagSet
	parse  func() error
	stdout io.Writer
	// reads says the command only reads the store: a --data directory that does not exist
	// is a mistake to report, not a new store to create.
	reads bool
}

// adminCommands are the audit, webhook and support subcommands.
var adminCommands = map[string]func(ctx context.Context, c command) error{
	"audit":        auditList,
	"audit verify": auditVerify,
	"apps webhook": appsWebhook,
	"users reset":  usersReset,
	"backup":       backup,
}

// subcommand reports whether cmd has a second word (`audit verify`, `users reset`).
func subcommand(cmd string, rest []string) bool {
	switch cmd {
	case "apps", "keys", "users", "config":
		return len(rest) > 0
	case "audit":
		return len(rest) > 0 && rest[0] == "verify"
	}
	return false
}

// open parses the flags, checks the config and opens the store and services.
func (c command) open(ctx context.Context) (*serve.Env, error) {
	if err := c.parse(); err != nil {
		return nil, err
	}
	if err := c.cfg.Validate(false); err != nil {
		return nil, usageError{err}
	}
	if c.reads && c.cfg.Store == "" {
		if _, err := os.Stat(c.cfg.DataDir); err != nil {
			return nil, usageError{fmt.Errorf("--data %s: %w", c.cfg.DataDir, err)}
		}
	}
	return serve.Open(ctx, *c.cfg)
}

func auditList(ctx context.Context, c command) error {
	var f store.AuditFilter
	c.fs.StringVar(&f.User, "user", "", "only this user's events")
	c.fs.StringVar(&f.AppID, "app", "", "only this app's events")
	since := c.fs.String("since", "", "only events from this time on: RFC 3339 (2030-01-02T15:04:05Z) or a duration back from now (24h)")
	c.reads = true
	env, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	if *since != "" {
		if f.Since, err = parseSince(*since, time.Now()); err != nil {
			return usageError{err}
		}
	}
	enc := json.NewEncoder(c.stdout)
	return env.Store.AuditRecords(ctx, f, func(r store.AuditRecord) error { return enc.Encode(audit.EntryOf(r)) })
}

func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q must be an RFC 3339 time (2030-01-02T15:04:05Z) or a duration like 24h", v)
}

// errChainBroken makes `audit verify` exit 1 after printing the break.
var errChainBroken = errors.New("audit verify: the audit trail's hash chain is broken")

func auditVerify(ctx context.Context, c command) error {
	maxAge := c.fs.Duration("max-checkpoint-age", 0, "fail when the newest signed checkpoint is older than this (the end of the trail may have been cut off); 0 checks no age")
	c.reads = true
	env, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	rep, err := checkpoint.Verify(ctx, env.Store, env.Tokens, time.Now(), *maxAge)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(c.stdout).Encode(rep); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%w at record %d: %s", errChainBroken, rep.Broken.ID, rep.Broken.Reason)
	}
	return nil
}

func appsWebhook(ctx context.Context, c command) error {
	id := c.fs.String("id", "", "app id")
	url := c.fs.String("url", "", "https:// URL the app receives signed events at")
	env, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	secret, err := audit.SetWebhook(ctx, env.Store, env.Ring, *id, *url, time.Now())
	if err != nil {
		return usageError{err}
	}
	return json.NewEncoder(c.stdout).Encode(map[string]string{"id": *id, "url": *url, "secret": secret})
}

func usersReset(ctx context.Context, c command) error {
	app := c.fs.String("app", "", "app id the user belongs to")
	user := c.fs.String("user", "", "the user to reset")
	reason := c.fs.String("reason", "", "why (kept in the audit trail)")
	actor := c.fs.String("actor", "", "who is resetting (default: cli:$USER)")
	noEnroll := c.fs.Bool("no-enroll", false, "for a user of an admin app: no leave to set up a first factor (ending any given before), e.g. when their password or phone is in the wrong hands")
	env, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	if err := serve.SameBudgets(ctx, env.Store, *c.cfg, time.Now()); err != nil {
		return usageError{fmt.Errorf("users reset: %w", err)}
	}
	if *actor == "" {
		*actor = "cli:" + os.Getenv("USER")
	}
	by := mfa.Operator(*actor)
	if *noEnroll {
		by = by.WithoutEnrollment()
	}
	err = env.MFA.ResetUser(ctx, *app, *user, *reason, by)
	var we *wire.Error
	if errors.As(err, &we) {
		return usageError{errors.New(we.Message)}
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(c.stdout).Encode(map[string]any{"reset": true, "app": *app, "user": *user})
}

func backup(ctx context.Context, c command) error {
	to := c.fs.String("to", "", "file to write the backup to (it must not exist yet)")
	if err := c.parse(); err != nil {
		return err
	}
	if *to == "" {
		return usageError{errors.New("backup: --to FILE is required")}
	}
	if err := c.cfg.Validate(false); err != nil {
		return usageError{err}
	}
	info, err := serve.Backup(ctx, *c.cfg, *to)
	if errors.Is(err, serve.ErrBackupPostgres) || errors.Is(err, sqlite.ErrBackupExists) || errors.Is(err, os.ErrNotExist) {
		return usageError{fmt.Errorf("backup: %w", err)}
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(c.stdout).Encode(info)
}
