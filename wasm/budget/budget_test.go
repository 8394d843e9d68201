//go:build !js

package budget

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const pkg = "github.com/twofold-dev/twofold/wasm"

func wasmEnv() []string { return append(os.Environ(), "GOOS=js", "GOARCH=wasm") }

func TestWasm_LinksNoDeniedPackage(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Env = wasmEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list -deps gave %q", deps)
	}
	for _, d := range deps {
		for _, deny := range Denied {
			if d == deny || strings.HasPrefix(d, strings.TrimSuffix(deny, "/")+"/") {
				t.Errorf("the wasm links %s (denied: %s)", d, deny)
			}
		}
	}
}

func TestWasm_WithinSizeBudget(t *testing.T) {
	br, err := exec.LookPath("brotli")
	if err != nil {
		t.Fatal("brotli is needed to measure the wasm (apt-get install brotli; .ci/run does)")
	}
	out := filepath.Join(t.TempDir(), "twofold.wasm")
	// The same flags as `make wasm`.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = wasmEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	compressed, err := exec.Command(br, "-q", "11", "-c", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	if !bytes.HasPrefix(raw, []byte("\x00asm")) {
		t.Fatal("the build is not WebAssembly")
	}
	t.Logf("twofold.wasm: %d bytes raw, %d brotli (budget %d)", len(raw), len(compressed), Brotli)
	if len(compressed) > Brotli {
		t.Fatalf("twofold.wasm is %d bytes brotli, over the budget of %d", len(compressed), Brotli)
	}
}
