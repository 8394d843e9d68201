package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// rawRequest sends head (request line and headers, CRLF-separated, without the blank line)
// and body as bytes, so a test can send what Go's client would refuse to.
func rawRequest(t *testing.T, base, head, body string) (int, wire.Error) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := head + "\r\nHost: verifier\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e wire.Error
	json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e
}

// Bytes that no stored value can hold (invalid UTF-8, NUL) in an API key, an Origin or a
// path's id name nothing: a 4xx in the API's shape on every store. PostgreSQL's text
// refuses them outright, and each was a 500 there, for anyone, without a key or ticket.
func TestMalformedBytes_KeyOriginPathID_4xxOnEveryStore(t *testing.T) {
	for _, be := range stores {
		t.Run(be.name, func(t *testing.T) {
			v := startVerifierWith(t, be.on(t))
			b := v.ticket("yara")
			for _, tc := range []struct{ name, head, body string }{
				{"API key, invalid UTF-8", "POST /v1/tickets HTTP/1.1\r\nAuthorization: Bearer sh\xffop.abc", `{"user":"a"}`},
				{"API key, NUL", "POST /v1/tickets HTTP/1.1\r\nAuthorization: Bearer sh\x00op.abc", `{"user":"a"}`},
				{"API key on events, invalid UTF-8", "GET /v1/users/a/events HTTP/1.1\r\nAuthorization: Bearer sh\xffop.abc", ""},
				{"preflight Origin, invalid UTF-8", "OPTIONS /v1/session HTTP/1.1\r\nOrigin: http://local\xffhost:3000", ""},
				{"preflight Origin, NUL", "OPTIONS /v1/session HTTP/1.1\r\nOrigin: http://local\x00host:3000", ""},
				{"enrollment id, invalid UTF-8", "POST /v1/totp/enrollments/totp_\xff/confirm HTTP/1.1\r\nOrigin: " + origin + "\r\nAuthorization: Ticket " + b.ticket, `{"code":"123456"}`},
			} {
				st, e := rawRequest(t, v.URL, tc.head, tc.body)
				if st < 400 || st > 499 || e.Code == "" || e.Message == "" {
					t.Errorf("%s: %d %+v, want a 4xx {\"error\",\"message\"}", tc.name, st, e)
				}
			}
			// Nothing was spoiled: the ticket and the app's key still work.
			if r := b.call("GET", "/v1/session", nil); r.Status != 200 {
				t.Errorf("session after the malformed requests: %d %s", r.Status, r.Raw)
			}
		})
	}
}
