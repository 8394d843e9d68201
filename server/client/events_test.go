package client_test

import (
	"context"
	"testing"

	"github.com/twofold-dev/twofold/server/client"
)

func TestEvents_ListsTheUsersNewestFirst(t *testing.T) {
	signIn(t, verifierURL, "shop", "events-user", "")
	tc, err := client.NewTicketClient(verifierURL, apiKeys["shop"], nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := tc.Events(context.Background(), "events-user", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 2 || evs[0].Kind != "factor_added" || evs[0].Outcome != "ok" || evs[len(evs)-1].Kind != "enrollment_started" {
		t.Fatalf("events = %+v, want factor_added first and enrollment_started last", evs)
	}
	if evs, err := tc.Events(context.Background(), "nobody", 10); err != nil || len(evs) != 0 {
		t.Fatalf("a user with no events: %v %v", evs, err)
	}
}
