GO      ?= go
BIN     := bin/twofold
DATA    ?= ./data
ADDR    ?= 127.0.0.1:8080

.PHONY: build run test test-go test-js test-wasm wasm bench lint fuzz screenshots

build:
	$(GO) build -trimpath -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null) -X main.commit=$$(git rev-parse HEAD 2>/dev/null)" -o $(BIN) ./server/cmd/twofold

# Starts the verifier on the embedded store and the demo app next to it. On the first run the
# launcher registers an app "demo" for http://localhost:3000 (its API key is written once to
# $(DATA)/demo-app.json) and the browser SDK is built if sdk-js/dist lacks it. Ctrl-C stops both.
DEMO_ADDR ?= 127.0.0.1:3000
run: build demo
	@[ -f sdk-js/dist/index.js ] && [ -f sdk-js/dist/twofold.wasm ] || $(MAKE) wasm
	@bin/demo-run -twofold $(BIN) -demo bin/demo -data $(DATA) -sdk sdk-js/dist \
		-verifier-addr $(ADDR) -demo-addr $(DEMO_ADDR)

# The demo app (demo/) and the launcher `make run` uses (demo/cmd/run).
.PHONY: demo
demo:
	$(GO) build -trimpath -o bin/demo ./demo
	$(GO) build -trimpath -o bin/demo-run ./demo/cmd/run

sdk-js/node_modules: sdk-js/package.json sdk-js/package-lock.json
	cd sdk-js && npm ci --no-audit --no-fund
	@touch $@

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

test-go: sdk-js/node_modules
	$(GO) test -count=1 -timeout 15m ./...

# Each request decoder is fuzzed for 20,000 inputs on every run, on top of its corpus. A
# count, not a duration: Go 1.26's coordinator can fail a duration run at its deadline with a
# bare "context deadline exceeded" (golang/go#75804, fixed in 1.27).
FUZZ_TARGETS := FuzzDecodeTicket FuzzDecodeEnrollment FuzzDecodeCode FuzzDecodeReset FuzzDecodeAssertionStart FuzzDecodePolicy FuzzDecodeRefusal
fuzz:
	@for f in $(FUZZ_TARGETS); do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20000x ./server/internal/api/ || exit 1; done

# Retakes the README's demo screenshots (docs/demo-*.png) from the journey test.
screenshots: sdk-js/node_modules
	TWOFOLD_SCREENSHOTS=1 $(GO) test -count=1 -run TestDemo_Journey ./server/e2e/

test: lint test-go fuzz test-wasm test-js

# The browser SDK: the Go engine as twofold.wasm, the Go runtime glue that matches this
# compiler, and the TypeScript package, all into sdk-js/dist/.
WASM_PKGS := ./wasm ./wasm/codes ./wasm/b64 ./wasm/guard ./wasm/clock ./wasm/enroll
SDK_DIST  := sdk-js/dist

wasm: sdk-js/node_modules
	@mkdir -p $(SDK_DIST)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o $(SDK_DIST)/twofold.wasm ./wasm
	cp "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js" $(SDK_DIST)/wasm_exec.js
	cd sdk-js && npx tsc -p tsconfig.json
	@printf 'twofold.wasm: %s bytes raw, %s gzip -9, %s brotli -q 11 (budget 560000)\n' \
		"$$(wc -c < $(SDK_DIST)/twofold.wasm)" "$$(gzip -9 -c $(SDK_DIST)/twofold.wasm | wc -c)" \
		"$$(if command -v brotli >/dev/null; then brotli -q 11 -c $(SDK_DIST)/twofold.wasm | wc -c; else echo '? (brotli not installed)'; fi)"

# The engine's pure packages, under Node as WebAssembly (they also run natively in test-go).
test-wasm:
	GOOS=js GOARCH=wasm $(GO) test -count=1 -exec="$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" $(WASM_PKGS)

# The JS package's unit tests, against the built dist/ with the real engine.
test-js: wasm
	cd sdk-js && node --test test/*.test.mjs

# The quick benchmark (about two minutes): SQLite and PostgreSQL runs against the stateless
# ceiling, then the hot-path micro-benchmarks. Writes bench/out/results.json and latency.svg.
bench: build
	$(GO) run ./bench/cmd/load -bin $(BIN) -quick
	$(GO) test -run '^$$' -bench . -benchtime 200ms -benchmem ./server/internal/hotpath
