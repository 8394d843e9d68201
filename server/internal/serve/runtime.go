package serve

import (
	"cmp"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// gcPercent is the GOGC a verifier runs with. It keeps a few MB live (nothing per user), so
// at Go's default of 100 it collected about 40 times a second under load. At 400, on 2
// cores with SQLite: 0.20 instead of 0.26 ms of CPU per verification and a fifth more
// verifications a second (README, Benchmarks).
const gcPercent = 400

// memoryLimit caps what gcPercent lets the heap grow to. The anomaly detector's recent
// failures (up to 100,000 keys) can hold tens of MB live, which GOGC=400 alone would let
// grow fivefold: 207 MB RSS with 1,000,000 users, against the goal of 150. Past this soft
// limit the collector runs as often as it must to stay under it.
const memoryLimit = 80 << 20

// sqliteMinProcs is how many Ps (GOMAXPROCS) a verifier on SQLite runs with at least.
//
// The pure-Go SQLite takes its WAL-index locks with fcntl. A goroutine that loses its P
// during that syscall while holding a read-mark lock waits in Go's run queue behind the
// request handlers, and every connection that needs the lock, the one writer's next BEGIN
// included, sleeps in SQLite's back-off meanwhile: 15–25 ms stalls, two or three a second
// under load, which made most of the p99. With Ps to spare, a goroutine leaving a syscall
// finds an idle P and the kernel schedules it. Measured on 2 cores: p99 at 70 % of peak
// 22 ms with 2 Ps, 22 ms with 4, 11 ms with 8, 10–11 ms with 16 and 12–13 ms with 32, for
// about 10 % more CPU per verification than with 2.
const sqliteMinProcs = 16

// TuneRuntime sets the garbage collector's pace and memory limit and, for the SQLite store,
// the number of Ps, each unless the environment (GOGC, GOMEMLIMIT, GOMAXPROCS) already does.
// It changes the whole process, so the serve command calls it, not Run: tests that run a
// verifier in their own process keep Go's defaults.
func TuneRuntime(cfg Config) {
	sqlite, log := cfg.Store == "", cmp.Or(cfg.Logger, slog.Default())
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); set || !sqlite {
		return
	}
	if n := runtime.GOMAXPROCS(0); n < sqliteMinProcs {
		runtime.GOMAXPROCS(sqliteMinProcs)
		log.Info("raised GOMAXPROCS for SQLite's locks", "from", n, "to", sqliteMinProcs)
	}
}
