package serve

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTuneRuntime_UnlessTheEnvironmentSaysOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sqlite        bool
		env           map[string]string // unset when absent
		startProcs    int
		wantProcs     int
		wantGCPercent int
		wantLimit     int64
	}{
		{"sqlite, few Ps", true, nil, 2, sqliteMinProcs, gcPercent, memoryLimit},
		{"sqlite, many Ps", true, nil, sqliteMinProcs + 8, sqliteMinProcs + 8, gcPercent, memoryLimit},
		{"postgres keeps its Ps", false, nil, 2, 2, gcPercent, memoryLimit},
		{"GOMAXPROCS set by the operator", true, map[string]string{"GOMAXPROCS": "2"}, 2, 2, gcPercent, memoryLimit},
		{"GOGC set by the operator", true, map[string]string{"GOGC": "100"}, 2, sqliteMinProcs, 100, memoryLimit},
		{"GOMEMLIMIT set by the operator", true, map[string]string{"GOMEMLIMIT": "1GiB"}, 2, sqliteMinProcs, gcPercent, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
				t.Setenv(name, tc.env[name]) // and restores it afterwards
				if _, set := tc.env[name]; !set {
					os.Unsetenv(name)
				}
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.startProcs))
			defer debug.SetGCPercent(debug.SetGCPercent(100))
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64)) // no limit
			cfg := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if !tc.sqlite {
				cfg.Store = "postgres://db.example/twofold"
			}
			TuneRuntime(cfg)
			if got := runtime.GOMAXPROCS(0); got != tc.wantProcs {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.wantProcs)
			}
			if got := debug.SetGCPercent(100); got != tc.wantGCPercent {
				t.Errorf("GOGC = %d, want %d", got, tc.wantGCPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
