// Package pgtest gives tests a real PostgreSQL database and a Redis key space of their own.
// Each test gets a fresh, uniquely named database (dropped when it ends) or a random key
// prefix, so tests run in parallel and never touch what they did not create.
//
// When the server is unreachable the test is skipped with a loud message, unless the
// environment says CI=true: CI has both servers, so there their absence is a failure.
package pgtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

const (
	// DefaultPostgres is used when TWOFOLD_TEST_PG is unset. It names the administrative
	// database that fresh ones are created from; the user needs CREATEDB.
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// DefaultRedis is used when TWOFOLD_TEST_REDIS is unset.
	DefaultRedis = "redis://127.0.0.1:6379/0"
)

// NewDatabase creates an empty database on the server named by TWOFOLD_TEST_PG (a
// postgres:// URL) and returns a DSN for it. The database is dropped, connections and all,
// when t ends.
func NewDatabase(t testing.TB) (dsn string) {
	t.Helper()
	admin := env("TWOFOLD_TEST_PG", DefaultPostgres)
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: TWOFOLD_TEST_PG must be a postgres:// URL, got %q", admin)
	}

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		unavailable(t, "PostgreSQL", u.Redacted(), "TWOFOLD_TEST_PG", err)
	}

	name := "twofoldtest_" + randomHex(8)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: PostgreSQL at %s answers but CREATE DATABASE failed (the user needs CREATEDB): %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled here; the drop gets its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

// RedisAddr returns the URL of the Redis server named by TWOFOLD_TEST_REDIS (redis://host:port/db,
// for redis.ParseURL) and a random key prefix ("twofoldtest:<hex>:") for t alone. Keys under
// the prefix are deleted when t ends.
func RedisAddr(t testing.TB) (addr, prefix string) {
	t.Helper()
	addr = env("TWOFOLD_TEST_REDIS", DefaultRedis)
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		t.Fatalf("pgtest: TWOFOLD_TEST_REDIS must be a redis://host:port/db URL, got %q", addr)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "6379")
	}
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		unavailable(t, "Redis", u.Redacted(), "TWOFOLD_TEST_REDIS", err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if err := redisHello(conn, r, u); err != nil {
		t.Fatalf("pgtest: Redis at %s: %v", u.Redacted(), err)
	}

	prefix = "twofoldtest:" + randomHex(8) + ":"
	t.Cleanup(func() {
		if err := redisDeletePrefix(hostport, u, prefix); err != nil {
			t.Errorf("pgtest: delete Redis keys %s*: %v", prefix, err)
		}
	})
	return addr, prefix
}

// unavailable skips t, or fails it on CI, saying loudly what is missing and how to provide it.
func unavailable(t testing.TB, what, where, envVar string, err error) {
	t.Helper()
	msg := fmt.Sprintf("\n*** %s IS NOT REACHABLE at %s: %v\n*** Start it or point %s at one.", what, where, err, envVar)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s\n*** CI=true: a missing %s fails the run.", msg, what)
	}
	t.Skipf("%s\n*** SKIPPING this test (with CI=true it would fail).", msg)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// redisCommand writes one command as a RESP array, so arguments need no quoting.
func redisCommand(conn net.Conn, args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := conn.Write([]byte(b.String()))
	return err
}

// redisReply reads a one-line reply (+simple, -error, :integer).
func redisReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis: %s", line[1:])
	}
	return line, nil
}

// redisHello authenticates when the URL carries a password, selects its database and pings.
func redisHello(conn net.Conn, r *bufio.Reader, u *url.URL) error {
	if pass, ok := u.User.Password(); ok {
		args := []string{"AUTH", pass}
		if name := u.User.Username(); name != "" {
			args = []string{"AUTH", name, pass}
		}
		if err := redisCommand(conn, args...); err != nil {
			return err
		}
		if _, err := redisReply(r); err != nil {
			return err
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		if err := redisCommand(conn, "SELECT", db); err != nil {
			return err
		}
		if _, err := redisReply(r); err != nil {
			return err
		}
	}
	// The brief PING of the reachability check, inline as redis-cli would send it.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	reply, err := redisReply(r)
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// deleteByPrefix runs server-side so no reply larger than one integer comes back.
const deleteByPrefix = `local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k); n = n + 1 end
return n`

func redisDeletePrefix(hostport string, u *url.URL, prefix string) error {
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if err := redisHello(conn, r, u); err != nil {
		return err
	}
	if err := redisCommand(conn, "EVAL", deleteByPrefix, "0", prefix+"*"); err != nil {
		return err
	}
	_, err = redisReply(r)
	return err
}
