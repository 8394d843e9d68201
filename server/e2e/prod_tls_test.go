package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// The whole flow over HTTPS with a certificate the test made: ticket, enrollment,
// confirmation, verification, JWKS; every answer says to stay on HTTPS.
func TestTLS_WholeVerifyFlowOverHTTPS(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := pemFiles(t)
	ca.issue(t, "first", certFile, keyFile)
	trustForTest(t, ca)
	data := t.TempDir()
	key := createAppCLI(t, data, nil)
	p := startServeArgs(t, data, "https", nil, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(p.URL, "https://") {
		t.Fatal(p.URL)
	}
	v := &verifier{t: t, URL: p.URL, Data: data, APIKey: key, Clock: &clock{}}
	e := v.enroll("tess")
	r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, time.Now().Add(30*time.Second))})
	if r.Status != 200 || r.str("token") == "" {
		t.Fatalf("verify over HTTPS: %d %s", r.Status, r.Raw)
	}
	for _, path := range []string{"/healthz", "/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		r := v.call("GET", path, "", "", nil)
		if r.Status != 200 {
			t.Fatalf("%s: %d", path, r.Status)
		}
		if hsts := r.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
			t.Errorf("%s: Strict-Transport-Security %q", path, hsts)
		}
	}
	// The issuer defaults to the https URL.
	if d := v.call("GET", "/.well-known/openid-configuration", "", "", nil); d.str("issuer") != p.URL {
		t.Errorf("issuer %q, want %q", d.str("issuer"), p.URL)
	}
	// Plain HTTP on the TLS port gets no answer a browser would use.
	if res, err := http.Get("http://" + strings.TrimPrefix(p.URL, "https://") + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
}

// SIGHUP swaps the certificate: a new handshake gets the new one, and a connection made
// before keeps working with the old one.
func TestTLS_SIGHUP_NewCertOnNewHandshake_OpenConnectionKeepsWorking(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := pemFiles(t)
	ca.issue(t, "before-reload", certFile, keyFile)
	data := t.TempDir()
	p := startServeArgs(t, data, "https", nil, "--tls-cert", certFile, "--tls-key", keyFile)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	kept := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(c *http.Client) (cn string, reused bool) {
		t.Helper()
		var info httptrace.GotConnInfo
		req, _ := http.NewRequest("GET", p.URL+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }}))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body) // read to the end, so the connection goes back to the pool
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("healthz %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].Subject.CommonName, info.Reused
	}
	if cn, _ := get(kept); cn != "before-reload" {
		t.Fatalf("serving %q", cn)
	}

	ca.issue(t, "after-reload", certFile, keyFile)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLogged(t, "TLS certificate reloaded")

	for _, step := range []struct {
		name       string
		client     *http.Client
		wantCN     string
		wantReused bool
	}{
		{"connection opened before the reload", kept, "before-reload", true},
		{"new connection", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}, "after-reload", false},
	} {
		cn, reused := get(step.client)
		if cn != step.wantCN || reused != step.wantReused {
			t.Errorf("%s: cert %q reused=%v, want %q reused=%v", step.name, cn, reused, step.wantCN, step.wantReused)
		}
	}
	// A broken pair on the next SIGHUP keeps the current certificate and the server up.
	if err := writeFile(keyFile, []byte("not a key")); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLogged(t, "TLS certificate reload failed; still serving the previous one")
	if cn, _ := get(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}); cn != "after-reload" {
		t.Errorf("after a failed reload: serving %q", cn)
	}
}

// serve refuses plain HTTP where it would be exposed, in one line with exit 2; TLS or
// --behind-proxy lift the refusal.
func TestServe_PlainHTTPOnPublicAddress_RefusedUnlessTLSOrBehindProxy(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := pemFiles(t)
	ca.issue(t, "x", certFile, keyFile)
	for _, tc := range []struct {
		name    string
		args    []string
		refused bool
	}{
		{"plain on 0.0.0.0", []string{"--addr", "0.0.0.0:0"}, true},
		{"plain on [::]", []string{"--addr", "[::]:0"}, true},
		{"plain on a host name", []string{"--addr", "example.com:0"}, true},
		{"cert without key", []string{"--addr", "127.0.0.1:0", "--tls-cert", certFile}, true},
		{"bad trusted proxy", []string{"--addr", "127.0.0.1:0", "--trusted-proxies", "10.0.0.0/8,nope"}, true},
		{"plain on 0.0.0.0 behind a proxy", []string{"--addr", "0.0.0.0:0", "--behind-proxy"}, false},
		{"TLS on 0.0.0.0", []string{"--addr", "0.0.0.0:0", "--tls-cert", certFile, "--tls-key", keyFile}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"serve", "--data", t.TempDir()}, tc.args...)...)
			if !tc.refused {
				out := startAndStop(t, cmd)
				if strings.Contains(out, "twofold: ") {
					t.Fatalf("refused: %s", out)
				}
				return
			}
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("err %v, want exit 2; %s", err, out)
			}
			if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 1 || !strings.HasPrefix(string(out), "twofold: ") {
				t.Fatalf("want one line, got %q", out)
			}
		})
	}
}

// startAndStop runs cmd until it logs that it serves, then stops it; it returns stderr.
func startAndStop(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var out strings.Builder
	cmd.Stderr = &lockedWriter{w: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := cmd.Stderr.(*lockedWriter).String(); strings.Contains(s, "twofold serving") || strings.Contains(s, "twofold: ") {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("did not start within 20s")
	return ""
}
