// The Go runtime glue, copied from $(go env GOROOT)/lib/wasm by `make wasm`. Importing it
// defines globalThis.Go.
export {};
