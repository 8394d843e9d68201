package serve

import (
	"io"
	"log/slog"
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
	}{
		{"sqlite, few Ps", true, nil, 2, sqliteMinProcs, gcPercent},
		{"sqlite, many Ps", true, nil, sqliteMinProcs + 8, sqliteMinProcs + 8, gcPercent},
		{"postgres keeps its Ps", false, nil, 2, 2, gcPercent},
		{"GOMAXPROCS set by the operator", true, map[string]string{"GOMAXPROCS": "2"}, 2, 2, gcPercent},
		{"GOGC set by the operator", true, map[string]string{"GOGC": "100"}, 2, sqliteMinProcs, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"GOGC", "GOMAXPROCS"} {
				t.Setenv(name, tc.env[name]) // and restores it afterwards
				if _, set := tc.env[name]; !set {
					os.Unsetenv(name)
				}
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.startProcs))
			defer debug.SetGCPercent(debug.SetGCPercent(100))
			tuneRuntime(tc.sqlite, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if got := runtime.GOMAXPROCS(0); got != tc.wantProcs {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.wantProcs)
			}
			if got := debug.SetGCPercent(100); got != tc.wantGCPercent {
				t.Errorf("GOGC = %d, want %d", got, tc.wantGCPercent)
			}
		})
	}
}
