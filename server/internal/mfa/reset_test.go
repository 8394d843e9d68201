package mfa_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// claimsVerifier stands in for the token issuer: it accepts one token for one audience.
type claimsVerifier struct {
	token, aud string
	claims     map[string]any
}

func (v claimsVerifier) Verify(_ context.Context, token, aud string) (map[string]any, error) {
	if token != v.token || aud != v.aud {
		return nil, errors.New("invalid")
	}
	return v.claims, nil
}

// freshSignIn verifies "tok" as the admin root's sign-in to ops with a code at now.
func freshSignIn(now time.Time) claimsVerifier {
	return claimsVerifier{token: "tok", aud: "ops", claims: map[string]any{"sub": "root", "aud": "ops",
		"auth_time": float64(now.Unix()), "amr": []any{"otp"}, "jti": "jti-1", "exp": float64(now.Add(5 * time.Minute).Unix())}}
}

// adminService is a service on a fresh store with the admin apps "ops" (its key returned)
// and "console", and the ordinary apps "shop" and "blog", its clock stopped at now.
func adminService(t *testing.T, now time.Time) (*mfa.Service, string) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "twofold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := mfa.New(mfa.Deps{Store: st, Sealer: seal.NewKeyring(seal.Key{9})}, mfa.Config{Now: func() time.Time { return now }})
	opsKey, err := svc.CreateApp(ctx, mfa.NewApp{ID: "ops", Origins: []string{"https://ops.example"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"console", "shop", "blog"} {
		if _, err := svc.CreateApp(ctx, mfa.NewApp{ID: id, Origins: []string{"https://" + id + ".example"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"ops", "console"} {
		if err := st.SetAdminApp(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	return svc, opsKey
}

func TestAuthorizeAdmin_TokenClaims_OnlyFreshSecondFactorOfTheAdminAppPasses(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	svc, opsKey := adminService(t, now)
	n := 0
	claims := func(authTime time.Time, amr ...any) map[string]any {
		n++
		return map[string]any{"sub": "root", "aud": "ops", "auth_time": float64(authTime.Unix()), "amr": amr,
			"jti": fmt.Sprint("jti-", n), "exp": float64(now.Add(5 * time.Minute).Unix())}
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		code   string // "" means authorized
	}{
		{"otp just now", claims(now, "otp"), ""},
		{"passkey 4m59s ago", claims(now.Add(-4*time.Minute-59*time.Second), "hwk", "user"), ""},
		{"software passkey", claims(now, "swk", "user"), ""},
		{"5m01s ago", claims(now.Add(-5*time.Minute-time.Second), "otp"), wire.CodeStepUpRequired},
		{"from the future", claims(now.Add(10*time.Minute), "otp"), wire.CodeStepUpRequired},
		{"recovery code", claims(now, "rec"), wire.CodeStepUpRequired},
		{"no amr", claims(now), wire.CodeStepUpRequired},
		{"amr not a list", map[string]any{"sub": "root", "auth_time": float64(now.Unix()), "amr": "otp"}, wire.CodeStepUpRequired},
		{"no auth_time", map[string]any{"sub": "root", "amr": []any{"otp"}}, wire.CodeStepUpRequired},
		{"no sub", map[string]any{"auth_time": float64(now.Unix()), "amr": []any{"otp"}}, wire.CodeStepUpRequired},
	} {
		v := claimsVerifier{token: "tok", aud: "ops", claims: tc.claims}
		admin, err := svc.AuthorizeAdmin(ctx, opsKey, "tok", v, "shop")
		var we *wire.Error
		switch {
		case tc.code == "" && (err != nil || admin.Actor != "ops/root"):
			t.Errorf("%s: actor %q, err %v; want ops/root", tc.name, admin.Actor, err)
		case tc.code != "" && (!errors.As(err, &we) || we.Code != tc.code):
			t.Errorf("%s: err %v, want %s", tc.name, err, tc.code)
		}
	}
}

// Authorising spends nothing; the reset it authorises spends the sign-in, and only a reset
// of the app it was authorised for.
func TestAuthorizeAdmin_SpendsNothing_ItsResetSpendsTheSignInOnItsAppOnly(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	svc, opsKey := adminService(t, now)
	v := freshSignIn(now)
	authorize := func() mfa.Admin {
		t.Helper()
		admin, err := svc.AuthorizeAdmin(ctx, opsKey, "tok", v, "shop")
		if err != nil {
			t.Fatalf("authorize: %v", err)
		}
		return admin
	}
	first, second := authorize(), authorize()
	if err := svc.ResetUser(ctx, "blog", "alice", "lost phone", first); err == nil {
		t.Error("a reset in blog by an admin authorised for shop went through")
	}
	if err := svc.ResetUser(ctx, "shop", "alice", "lost phone", first); err != nil {
		t.Fatalf("the reset authorised: %v", err)
	}
	if err := svc.ResetUser(ctx, "shop", "bob", "lost phone", second); !errors.Is(err, wire.NewError(wire.CodeStepUpRequired, "")) {
		t.Fatalf("a second reset on the same sign-in: %v, want step_up_required", err)
	}
	if err := svc.ResetUser(ctx, "shop", "bob", "lost phone", mfa.Operator("cli:root")); err != nil {
		t.Fatalf("the operator's reset: %v", err)
	}
}

// The admin API resets the users of ordinary apps only: not its own admin app's, nor
// another admin app's, and the refusal spends no sign-in. The operator resets them on the
// host.
func TestResetUser_AdminOfAnAdminApp_OperatorRequired(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	svc, opsKey := adminService(t, now)
	v := freshSignIn(now)
	for _, app := range []string{"ops", "console"} {
		admin, err := svc.AuthorizeAdmin(ctx, opsKey, "tok", v, app)
		if err != nil {
			t.Fatalf("authorize for %s: %v", app, err)
		}
		err = svc.ResetUser(ctx, app, "sam", "lost phone", admin)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeOperatorRequired || !strings.Contains(we.Message, "twofold users reset") {
			t.Errorf("reset in %s: %v, want operator_required naming `twofold users reset`", app, err)
		}
		if err := svc.ResetUser(ctx, app, "sam", "lost phone", mfa.Operator("cli:root")); err != nil {
			t.Errorf("the operator's reset in %s: %v", app, err)
		}
	}
	admin, err := svc.AuthorizeAdmin(ctx, opsKey, "tok", v, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ResetUser(ctx, "shop", "alice", "lost phone", admin); err != nil {
		t.Fatalf("the sign-in after two refusals: %v", err)
	}
}
