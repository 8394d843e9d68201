// Package e2e holds twofold's end-to-end tests: a real verifier (in-process or as the built
// binary) on a real SQLite file, driven over HTTP the way an app backend and a browser
// drive it, with tokens checked by an independent verifier (npm's jose).
package e2e
