package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// ResetUser is support-assisted recovery for a person who lost every factor: it removes
// all the user's authenticators (pending ones too), passkeys and recovery codes, lifts any
// lock and back-off on them, and records an admin_reset event (which the app's webhook
// hears, so a reset nobody asked for reaches its owner), all in one transaction but for
// budgets kept in Redis. by is who did it (AuthorizeAdmin, or the Operator); reason why.
// An admin's sign-in is spent in that transaction too. The user then signs in with the
// first factor only and enrolls again; a user of an admin app (whom only the operator
// resets) may do so for AdminFirstFactorWindow.
func (s *Service) ResetUser(ctx context.Context, appID, user, reason string, by Admin) error {
	if msg := firstProblem(
		wire.CheckText("app", appID, true),
		wire.CheckUser(user),
		wire.CheckText("reason", reason, true),
	); msg != "" {
		return invalidRequest(msg)
	}
	if err := s.inScope(ctx, by, appID, user); err != nil {
		return err
	}
	app, err := s.adminTarget(ctx, appID)
	if err != nil {
		return err
	}
	targetAdmin, err := s.st.IsAdminApp(ctx, appID)
	if err != nil {
		return fault("reset user", err)
	}
	if by.noEnroll && !targetAdmin {
		// Said, not ignored: an operator who thinks it withheld something must know it did not.
		return invalidRequest("--no-enroll is for users of admin apps, and " + strconv.Quote(appID) + " is not one: its users set up a first factor with a ticket.")
	}
	if err := s.mayReset(ctx, by, appID, user, targetAdmin); err != nil {
		return err
	}
	// The factors, the budgets kept in the store, the admin's sign-in and the admin_reset
	// record go together: an admin action never goes unaudited, and one that fails costs
	// the admin no new sign-in.
	p := Principal{App: app, Ticket: store.Ticket{User: user}}
	keys := []string{factorKey("totp", p), factorKey("passkey", p), factorKey("recovery", p)}
	inStore := s.limits.KeptIn(s.st)
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		if by.once != "" {
			// First: a second request with the same token waits here for this one.
			first, err := tx.ClaimOnce(ctx, by.once, by.until)
			if err != nil {
				return err
			}
			if !first {
				return errAdminReused
			}
		}
		removed, err := tx.ResetUserFactors(ctx, appID, user)
		if err != nil {
			return err
		}
		detail := fmt.Sprintf("by %s: %s (removed %d authenticators, %d passkeys, %d recovery codes)", by.Actor, reason, removed.TOTP, removed.Passkeys, removed.RecoveryCodes)
		if targetAdmin {
			// Only the operator resets an admin; it is their leave to set up a first factor,
			// or, withheld, an end to any leave given before (an allowance that ends now).
			until, says := s.now().Add(AdminFirstFactorWindow), "; may set up a first factor for "+adminWindowWords
			if by.noEnroll {
				until, says = s.now(), "; may not set up a first factor until the operator allows it"
			}
			if err := tx.AllowFirstFactor(ctx, appID, user, until); err != nil {
				return err
			}
			detail += says
		}
		if inStore {
			for _, k := range keys {
				if err := s.limits.In(tx).Reset(ctx, k); err != nil {
					return err
				}
			}
		}
		return s.rec.Record(ctx, tx, audit.Event{
			At: s.now(), Kind: audit.AdminReset, AppID: appID, User: user, IP: by.IP, Outcome: "ok", Detail: detail,
		})
	})
	switch {
	case errors.Is(err, errAdminReused):
		return s.refuse(ctx, by, appID, user, errAdminReused)
	case err != nil:
		return fault("reset user", err)
	}
	if !inStore { // Redis: after the transaction, as a verification gives back
		for _, k := range keys {
			if err := s.limits.Reset(ctx, k); err != nil {
				s.cfg.Logger.ErrorContext(ctx, "user reset, but the budgets in Redis not cleared", "app", appID, "err", err)
				return errResetLocksLeft
			}
		}
	}
	s.cfg.Logger.InfoContext(ctx, "user reset by support", "app", appID, "actor", by.Actor)
	return nil
}

func firstProblem(problems ...string) string {
	for _, p := range problems {
		if p != "" {
			return p
		}
	}
	return ""
}

// AdminTokenMaxAge is how recently an admin must have passed their own second factor.
const AdminTokenMaxAge = 5 * time.Minute

// adminAMR are the methods that count as an admin's second factor; a recovery code does
// not: it is how a person who lost a factor gets in, not proof of holding one.
var adminAMR = []string{"otp", "hwk", "swk"}

// TokenVerifier checks a token this verifier issued for audience and returns its claims;
// *tokens.Issuer is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (map[string]any, error)
}

var (
	errNotAdminApp = wire.NewError(wire.CodeInvalidAPIKey, "This API key belongs to an app that may not call the admin API. Use the key of an app created with `twofold apps create --admin`.")
	errAdminReused = wire.NewError(wire.CodeStepUpRequired, "That sign-in was already used for an admin action. Sign in to the admin app again for this one.")
	errAdminToken  = wire.NewError(wire.CodeStepUpRequired, "Sign in to the admin app with your own authenticator and send the token it gives you as Twofold-Admin-Token.")
	errAdminStale  = wire.NewError(wire.CodeStepUpRequired, "Your admin sign-in is more than 5 minutes old. Sign in to the admin app with your authenticator again and retry.")
)

// adminTarget is the app an admin action is for.
func (s *Service) adminTarget(ctx context.Context, appID string) (store.App, error) {
	app, err := s.st.App(ctx, appID)
	if isNotFound(err) {
		return store.App{}, wire.NewError(wire.CodeNotFound, "There is no app "+appID+".")
	}
	if err != nil {
		return store.App{}, fault("admin action", err)
	}
	return app, nil
}

// Admin is who does an admin action. Over the admin API it is an admin app's user who
// passed AuthorizeAdmin for one app, with a sign-in good for one action: the action spends
// it in its own transaction, so an action that fails leaves it usable.
type Admin struct {
	// Actor names them in the audit trail: "<admin app>/<admin user>", or the operator.
	Actor string
	// IP is the address the admin called from, for the audit trail.
	IP                  string
	adminApp, adminUser string    // who signed in, for a refusal's record
	app                 string    // the app the sign-in was authorised for
	once                string    // the sign-in's one-use key; "" for the operator
	until               time.Time // how long the key must stay used: past the token's expiry
	// noEnroll withholds from a reset user of an admin app the leave to set up a first
	// factor (WithoutEnrollment).
	noEnroll bool
}

// WithoutEnrollment is the operator resetting a user of an admin app without the leave to
// set up a first factor, and ending any leave given before: for an admin whose password or
// phone is in the wrong hands, who would otherwise race whoever holds them to enroll. A
// later reset without it gives the leave.
func (a Admin) WithoutEnrollment() Admin {
	a.noEnroll = true
	return a
}

// mayReset refuses an admin signed in over the admin API a reset of an admin's factors, or
// in an app it was not authorised for; the operator may make any. inScope checked the
// admin app's scope first.
func (s *Service) mayReset(ctx context.Context, by Admin, app, user string, targetAdmin bool) error {
	if by.once == "" {
		return nil
	}
	if by.app != app {
		return fault("reset user", fmt.Errorf("admin %s was authorised for app %q, not %q", by.Actor, by.app, app))
	}
	// Admins are the operator's to reset: a support sign-in stolen with its password could
	// otherwise reset another admin's factors and enroll its own authenticator there.
	if targetAdmin {
		return s.refuse(ctx, by, app, user, wire.NewError(wire.CodeOperatorRequired, app+" is an admin app: the admin API does not reset its users, so that one stolen support sign-in cannot take over another. Reset them on the verifier's host with `twofold users reset --app "+app+" --user USER --reason ...`."))
	}
	return nil
}

// inScope refuses an admin signed in over the admin API a reset in an app outside its
// admin app's scope (apps create --admin-of). It runs before the app is looked up: the
// refusal is the same whether the app exists or not, so a scoped admin learns nothing of
// the apps that are not its own.
func (s *Service) inScope(ctx context.Context, by Admin, app, user string) error {
	if by.once == "" {
		return nil
	}
	may, err := s.st.AdminMayReset(ctx, by.adminApp, app)
	if err != nil {
		return fault("reset user", err)
	}
	if !may {
		return s.refuse(ctx, by, app, user, wire.NewError(wire.CodeOperatorRequired, by.adminApp+" may not reset the users of "+app+": it was created for other apps (apps create --admin-of). Ask an admin of "+app+", or reset on the verifier's host with `twofold users reset --app "+app+" --user USER --reason ...`."))
	}
	return nil
}

// refuse records that an admin was refused an action on app's user, under the admin app
// and the admin, so the console's owner hears of it, and returns answer.
func (s *Service) refuse(ctx context.Context, by Admin, app, user string, answer *wire.Error) error {
	p := Principal{App: store.App{ID: by.adminApp}, Ticket: store.Ticket{User: by.adminUser}, IP: by.IP}
	s.record(ctx, p, audit.AdminRefused, "", false, fmt.Sprintf("reset of %s/%s refused: %s", app, user, answer.Message))
	return answer
}

// Operator is the verifier's operator on its host (`twofold users reset`): no sign-in to
// spend.
func Operator(actor string) Admin { return Admin{Actor: actor} }

// AuthorizeAdmin checks both halves of an admin call on app forApp: key is the API key of
// an admin app, and token is a token this verifier issued for that same app after its user
// passed a second factor (amr otp, hwk or swk) at most AdminTokenMaxAge ago. It spends
// nothing: the action it authorises, for forApp only, checks what it acts on and spends the
// token (one action per sign-in), so a refused or failed action costs no new sign-in.
func (s *Service) AuthorizeAdmin(ctx context.Context, key, token string, verifier TokenVerifier, forApp string) (Admin, error) {
	app, err := s.AuthenticateApp(ctx, key)
	if err != nil {
		return Admin{}, err
	}
	admin, err := s.st.IsAdminApp(ctx, app.ID)
	if err != nil {
		return Admin{}, fault("authorize admin", err)
	}
	if !admin {
		return Admin{}, errNotAdminApp
	}
	if token == "" || len(token) > 8192 {
		return Admin{}, errAdminToken
	}
	claims, err := verifier.Verify(ctx, token, app.ID)
	if err != nil {
		return Admin{}, errAdminToken
	}
	sub, _ := claims["sub"].(string)
	authTime, ok := unixClaim(claims["auth_time"])
	if sub == "" || !ok {
		return Admin{}, errAdminToken
	}
	if !hasAny(claims["amr"], adminAMR) {
		return Admin{}, errAdminToken
	}
	if age := s.now().Sub(authTime); age > AdminTokenMaxAge || age < -time.Minute {
		return Admin{}, errAdminStale
	}
	// One admin action per sign-in: a token seen in a log or a proxy must not reset a
	// second user.
	jti, _ := claims["jti"].(string)
	exp, ok := unixClaim(claims["exp"])
	if jti == "" || !ok {
		return Admin{}, errAdminToken
	}
	return Admin{Actor: app.ID + "/" + sub, adminApp: app.ID, adminUser: sub, app: forApp,
		once: "admin-token:" + app.ID + ":" + jti, until: exp.Add(time.Minute)}, nil
}

func unixClaim(v any) (time.Time, bool) {
	switch n := v.(type) {
	case float64:
		return time.Unix(int64(n), 0), true
	case json.Number:
		i, err := n.Int64()
		return time.Unix(i, 0), err == nil
	}
	return time.Time{}, false
}

func hasAny(v any, want []string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok && slices.Contains(want, s) {
			return true
		}
	}
	return false
}
