package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/twofold-dev/twofold/server/client"
)

// browserSignIn stands for the page: it hands the ticket to the SDK (<twofold-enroll> or
// <twofold-verify>), the person passes their second factor, and the page posts the token
// back. Here the test runs those calls itself.
func browserSignIn(user string) string {
	tok, err := signInErr(verifierURL, "shop", user, "")
	if err != nil {
		panic(err)
	}
	return tok
}

// After your own password check, ask for a ticket and hand it to the page.
func ExampleTicketClient_Ticket() {
	tickets, err := client.NewTicketClient(verifierURL /* "https://mfa.example.com" */, apiKeys["shop"], nil)
	if err != nil {
		panic(err)
	}
	t, err := tickets.Ticket(context.Background(), "alice", client.TicketOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(t.Value) > 40, time.Until(t.ExpiresAt) <= 10*time.Minute)
	// Output: true true
}

// Check the token the page posts back, once, and sign the person in.
func ExampleVerifier_Verify() {
	v, err := client.NewVerifier(client.Config{
		Issuer:   verifierURL, // "https://mfa.example.com": the verifier's public URL
		Audience: "shop",      // your app id
	})
	if err != nil {
		panic(err)
	}
	token := browserSignIn("alice")

	claims, err := v.Verify(context.Background(), token, client.SingleUse())
	if err != nil {
		panic(err) // answer 401 and show the sign-in page again
	}
	fmt.Println(claims.Subject, claims.AMR, claims.ACR, claims.Recovery())

	// The same token a second time is refused.
	_, err = v.Verify(context.Background(), token, client.SingleUse())
	fmt.Println(errors.Is(err, client.ErrReplayed))
	// Output:
	// alice [otp] mfa false
	// true
}

// Demand a passkey (phishing-resistant) for one action, and refuse recovery-code
// sign-ins for another.
func ExampleRequireACR() {
	v, _ := client.NewVerifier(client.Config{Issuer: verifierURL, Audience: "shop"})
	token := browserSignIn("brian") // passed with an authenticator app, not a passkey

	_, err := v.Verify(context.Background(), token, client.RequireACR("phr"))
	fmt.Println(errors.Is(err, client.ErrACR), client.RefusalOf(err).Status)
	_, err = v.Verify(context.Background(), token, client.RequireAMR("otp", "hwk", "swk"))
	fmt.Println(err)
	// Output:
	// true 403
	// <nil>
}

// Protect an API with the token as a bearer credential.
func ExampleVerifier_Middleware() {
	v, _ := client.NewVerifier(client.Config{Issuer: verifierURL, Audience: "shop"})
	mux := http.NewServeMux()
	mux.Handle("/api/me", v.Middleware(client.RequireAMR("otp", "hwk", "swk"))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			c, _ := client.ClaimsFrom(r.Context())
			fmt.Fprintf(w, "hello %s", c.Subject)
		})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, auth := range []string{"Bearer " + browserSignIn("carol"), ""} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/me", nil)
		req.Header.Set("Authorization", auth)
		res, _ := http.DefaultClient.Do(req)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(res.StatusCode, string(body))
	}
	// Output:
	// 200 hello carol
	// 401 {"error":"invalid_token","message":"Sign in again with your second factor."}
}
