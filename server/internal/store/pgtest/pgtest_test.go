package pgtest_test

import (
	"bufio"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
)

func TestNewDatabase_FreshAndDroppedAfterTheTest(t *testing.T) {
	var dsns []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			dsns = append(dsns, dsn)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var tables int
			if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("fresh database has %d tables", tables)
			}
			// An open connection must not keep the database from being dropped.
			if _, err := db.ExecContext(t.Context(), `CREATE TABLE x (id INT)`); err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(dsns) != 2 {
		t.Skip("PostgreSQL unavailable")
	}
	if dsns[0] == dsns[1] {
		t.Fatalf("two tests got the same database %s", dsns[0])
	}
	admin, err := sql.Open("pgx", pgtest.DefaultPostgres)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, dsn := range dsns {
		u, _ := url.Parse(dsn)
		name := strings.TrimPrefix(u.Path, "/")
		var n int
		if err := admin.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Skipf("cannot inspect pg_database through the default DSN: %v", err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestRedisAddr_KeysUnderPrefixDeletedAfterTheTest(t *testing.T) {
	var addr, prefix string
	t.Run("use", func(t *testing.T) {
		addr, prefix = pgtest.RedisAddr(t)
		if !strings.HasPrefix(prefix, "twofoldtest:") || !strings.HasSuffix(prefix, ":") {
			t.Errorf("prefix = %q", prefix)
		}
		if got := redis(t, addr, "SET", prefix+"k", "v"); got != "+OK" {
			t.Fatalf("SET = %q", got)
		}
		if got := redis(t, addr, "EXISTS", prefix+"k"); got != ":1" {
			t.Fatalf("EXISTS = %q", got)
		}
	})
	if prefix == "" {
		t.Skip("Redis unavailable")
	}
	if got := redis(t, addr, "EXISTS", prefix+"k"); got != ":0" {
		t.Errorf("key under the prefix survived its test: EXISTS = %q", got)
	}
}

// redis sends one command to an unauthenticated server and returns the one-line reply.
func redis(t *testing.T, addr string, args ...string) string {
	t.Helper()
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(conn, "$%d\r\n%s\r\n", len(a), a)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}
