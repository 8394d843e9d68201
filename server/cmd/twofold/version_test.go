package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersion_LdflagsFirst_BuildInfoAsFallback(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}}}
	for _, tc := range []struct {
		name                string
		ldVersion, ldCommit string
		info                *debug.BuildInfo
		ok                  bool
		want                buildVersion
	}{
		{"-ldflags -X win", "v9.9.9", "fff000", stamped, true, buildVersion{"v9.9.9", "fff000", runtime.Version()}},
		{"build info without -ldflags", "", "", stamped, true, buildVersion{"v1.2.3", "abc123", runtime.Version()}},
		{"a devel build without VCS stamping", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, buildVersion{"(devel)", "", runtime.Version()}},
		{"no build info at all", "", "", nil, false, buildVersion{"", "", runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version, commit = tc.ldVersion, tc.ldCommit
			t.Cleanup(func() { version, commit = "", "" })
			if got := currentVersion(tc.info, tc.ok); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestVersion_PrintsVersionCommitAndGoAsJSON(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	for _, k := range []string{"version", "commit", "go"} {
		if _, ok := got[k]; !ok {
			t.Errorf("version output lacks %q: %s", k, out.String())
		}
	}
	if got["go"] != runtime.Version() || len(got) != 3 {
		t.Errorf("version output %s, want exactly version, commit and go %s", out.String(), runtime.Version())
	}
}
