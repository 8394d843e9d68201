package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

type claimsKey struct{}

// BearerToken returns the token of an "Authorization: Bearer <token>" header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// Middleware verifies the twofold token in each request's Authorization: Bearer header
// against reqs (after Config.Require) and puts its claims in the request's context
// (ClaimsFrom). A refused request gets 401 (403 when amr/acr fall short, 503 when the keys
// cannot be fetched) with {"error","message"} and a WWW-Authenticate header.
func (v *Verifier) Middleware(reqs ...Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := BearerToken(r.Header.Get("Authorization"))
			var c *Claims
			err := error(refuse(ErrMalformed, "no Authorization: Bearer token"))
			if ok {
				c, err = v.Verify(r.Context(), token, reqs...)
			}
			if err != nil {
				ref := RefusalOf(err)
				w.Header().Set("WWW-Authenticate", ref.WWWAuthenticate())
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(ref.Status)
				json.NewEncoder(w).Encode(map[string]string{"error": ref.Code, "message": ref.Message})
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// WithClaims returns ctx carrying c, as Middleware does.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims Middleware verified for this request.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
