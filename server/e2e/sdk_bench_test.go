package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

// BenchmarkSDK_Load measures a cold load of the SDK in headless Chromium: the page's
// navigation to the first render of <twofold-verify>, which takes fetching and instantiating
// twofold.wasm, the session call (origin guard and clock check) and rendering the form. The
// HTTP cache is off, so each load fetches the wasm again (from loopback).
//
//	go test -run '^$' -bench SDK_Load -benchtime 20x ./server/e2e/
func BenchmarkSDK_Load(b *testing.B) {
	dist := buildSDK(b)
	port := pageServer(b, dist)
	verifierURL, apiKey := benchVerifier(b, "http://localhost:"+port)
	browser := newBrowser(b)
	ctx := tab(b, browser, "")
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		b.Fatal(err)
	}
	type timing struct {
		Rendered float64 `json:"rendered"`
		Wasm     float64 `json:"wasm"`
		Step     string  `json:"step"`
	}
	var render, fetch float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		page := pageURL("localhost", port, "twofold-verify", verifierURL, benchTicket(b, verifierURL, apiKey, "bench"+strconv.Itoa(i)))
		b.StartTimer()
		run(b, ctx, "open the page", chromedp.Navigate(page))
		got := run(b, ctx, "first render", chromedp.Poll[timing](`window.__rendered && {
  rendered: window.__rendered,
  wasm: performance.getEntriesByType("resource").find((e) => e.name.endsWith("/twofold.wasm"))?.duration ?? -1,
  step: document.querySelector("twofold-verify").dataset.step }`,
			chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
		if got.Step != "code" {
			b.Fatalf("the page rendered %q, not the code form", got.Step)
		}
		render += got.Rendered
		fetch += got.Wasm
	}
	b.ReportMetric(render/float64(b.N), "ms-to-first-render/op")
	b.ReportMetric(fetch/float64(b.N), "ms-wasm-fetch/op")
}

// benchVerifier serves twofold with one app on origin (the harness's startVerifier wants a
// *testing.T, which a benchmark does not have).
func benchVerifier(b *testing.B, origin string) (url, apiKey string) {
	cfg := serve.Config{Addr: "127.0.0.1:0", DataDir: b.TempDir(), Logger: quietLogger(), ShutdownTimeout: 2 * time.Second}
	ctx := context.Background()
	env, err := serve.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	apiKey, err = env.MFA.CreateApp(ctx, mfa.NewApp{ID: "sdkbench", Origins: []string{origin}})
	env.Close()
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve.Run(runCtx, cfg, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); <-done })
	return url, apiKey
}

func benchTicket(b *testing.B, verifierURL, apiKey, user string) string {
	body, _ := json.Marshal(wire.TicketRequest{User: user})
	req, _ := http.NewRequest("POST", verifierURL+"/v1/tickets", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var t wire.TicketResponse
	if err := json.NewDecoder(res.Body).Decode(&t); err != nil || t.Ticket == "" {
		b.Fatalf("ticket: %d %v", res.StatusCode, err)
	}
	return t.Ticket
}
