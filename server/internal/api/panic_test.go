package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
)

// A handler that panics costs its own request a 500 in the API's error shape, not the
// process: without a recover, Fiber lets the panic end the verifier for every user.
func TestHandlerPanic_Answers500JSON_NextRequestServed(t *testing.T) {
	var logs bytes.Buffer
	panics := true
	app := New(Deps{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Ready: []Check{{Name: "store", Ping: func(context.Context) error {
			if panics {
				panic("secret-looking value 123456")
			}
			return nil
		}}},
	})
	res, err := app.Test(httptest.NewRequest("GET", "/readyz", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.Error
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != 500 || e.Code != wire.CodeInternal || e.Message == "" {
		t.Fatalf("a panicking handler answered %d %+v (%v), want 500 {\"error\":%q}", res.StatusCode, e, err, wire.CodeInternal)
	}
	if strings.Contains(logs.String(), "123456") {
		t.Errorf("the panic's value reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
	panics = false
	if res, err := app.Test(httptest.NewRequest("GET", "/readyz", nil), -1); err != nil || res.StatusCode != 200 {
		t.Fatalf("after a panic: %v %v", res, err)
	}
}
