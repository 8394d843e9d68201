package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TicketClient asks the verifier for tickets with the app's API key. It is safe for
// concurrent use.
type TicketClient struct {
	verifier string
	apiKey   string
	http     *http.Client
}

// TicketClientOption changes what NewTicketClient accepts.
type TicketClientOption func(*ticketClientOptions)

type ticketClientOptions struct{ plainHTTP bool }

// AllowPlainHTTP lets the verifier URL be http:// on a host other than loopback. Give it
// only where the network between your backend and the verifier is private: the API key
// goes with every request.
func AllowPlainHTTP() TicketClientOption {
	return func(o *ticketClientOptions) { o.plainHTTP = true }
}

// NewTicketClient returns a client of the verifier at verifierURL (e.g.
// "https://mfa.example.com", or http:// on loopback) for the app whose API key is apiKey.
// httpClient may be nil.
func NewTicketClient(verifierURL, apiKey string, httpClient *http.Client, opts ...TicketClientOption) (*TicketClient, error) {
	var o ticketClientOptions
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	switch plain, ok := webURL(verifierURL); {
	case !ok:
		errs = append(errs, fmt.Errorf("client: the verifier URL %q must start with https:// (or http:// on loopback)", verifierURL))
	case plain && !o.plainHTTP:
		errs = append(errs, fmt.Errorf("client: the verifier URL %q is plain http to another host, so the API key would cross the network in the clear. Use https://, or pass client.AllowPlainHTTP() if the network between is private", verifierURL))
	}
	if apiKey == "" {
		errs = append(errs, errors.New("client: the API key is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &TicketClient{verifier: strings.TrimRight(verifierURL, "/"), apiKey: apiKey, http: httpClient}, nil
}

// Ticket lets the page run the second factor for one user, for at most 10 minutes.
type Ticket struct {
	Value     string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TicketOptions are the optional parts of a ticket request.
type TicketOptions struct {
	// Nonce, when set, is copied into the token the ticket leads to: bind it to the
	// person's session and check it with RequireNonce.
	Nonce string
}

// Ticket asks for a ticket for user (your app's stable id for the person).
func (c *TicketClient) Ticket(ctx context.Context, user string, opts TicketOptions) (Ticket, error) {
	body, _ := json.Marshal(map[string]string{"user": user, "nonce": opts.Nonce})
	var t Ticket
	if err := c.do(ctx, http.MethodPost, "/v1/tickets", body, http.StatusCreated, &t); err != nil {
		return Ticket{}, err
	}
	if t.Value == "" {
		return Ticket{}, errors.New("client: the verifier answered without a ticket")
	}
	return t, nil
}

// Event is one security event of a user as the verifier recorded it: a sign-in, a factor
// added or removed, a lock, a recovery code used, an admin reset...
type Event struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Outcome   string    `json:"outcome"` // "ok" or "refused"
	Factor    string    `json:"factor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Events lists the newest security events of user (at most limit, 1 to 100), newest first:
// for an account page that shows the person what happened to their second factors.
func (c *TicketClient) Events(ctx context.Context, user string, limit int) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	path := "/v1/users/" + url.PathEscape(user) + "/events?limit=" + strconv.Itoa(limit)
	if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// do sends one app call and decodes the answer into out, or the error body into *APIError.
func (c *TicketClient) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.verifier+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if res.StatusCode != want {
		e := &APIError{Status: res.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			e.Code, e.Message = "unexpected_answer", fmt.Sprintf("%s %s answered %s", method, path, res.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}
