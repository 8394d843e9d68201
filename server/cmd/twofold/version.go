package main

import (
	"encoding/json"
	"io"
	"runtime"
	"runtime/debug"
)

// version and commit are set by the Makefile's build (-ldflags -X main.version=...);
// a plain `go build` or `go install` falls back to what the toolchain recorded.
var version, commit string

// buildVersion is what `twofold version` prints.
type buildVersion struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

func currentVersion(info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: version, Commit: commit, Go: runtime.Version()}
	if !ok {
		return v
	}
	if v.Version == "" {
		v.Version = info.Main.Version // "(devel)" for a build inside the repository
	}
	if v.Commit == "" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	if v.Go == "" {
		v.Go = info.GoVersion
	}
	return v
}

func printVersion(stdout io.Writer) error {
	return json.NewEncoder(stdout).Encode(currentVersion(debug.ReadBuildInfo()))
}
