package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Protocols a rule can be running in, as [RuleContext.Protocol] names them
// (the values Auth0's rules use).
const (
	ProtocolOIDCBasicProfile   = "oidc-basic-profile"   // logging in: the authorization code flow
	ProtocolOAuth2RefreshToken = "oauth2-refresh-token" // refreshing tokens
)

// defaultRuleTimeout is how long a rule may run by default.
const defaultRuleTimeout = 2 * time.Second

// Rule is a hook that runs while tokens are being issued: when a user logs
// in to a client, and again on every refresh. Rules run in order; each may
// add claims to the tokens or refuse them. A rule that returns an error other
// than one made by [Deny], panics, or overruns Config.RuleTimeout stops the
// flow with server_error, and no token is issued without every rule having
// run.
type Rule struct {
	// Name identifies the rule in logs.
	Name string
	// Run does the work. It must honour ctx, which ends at the rule's time
	// budget. It may be called concurrently for different requests.
	Run func(ctx context.Context, rc *RuleContext) error
}

// RuleContext is what a rule sees and changes.
type RuleContext struct {
	// Protocol is ProtocolOIDCBasicProfile or ProtocolOAuth2RefreshToken.
	Protocol string
	// Client is the client the tokens are for (a copy).
	Client *store.Client
	// User is the user (a copy).
	User *store.User
	// Scopes are the scopes granted.
	Scopes []string
	// API is the API the access token is for ([API.Identifier]), or "".
	API string
	// IDToken and AccessToken collect the claims to add to the ID token and
	// the access token. Names must be namespaced, a URI such as
	// https://example.com/roles, so that they never collide with a
	// registered claim; values must encode as JSON.
	IDToken     map[string]any
	AccessToken map[string]any
}

// denyError is a rule's refusal, made by [Deny].
type denyError struct{ Message string }

func (e *denyError) Error() string { return "provider: denied by rule: " + e.Message }

// Deny returns the error a rule returns to refuse the tokens: the login ends
// with access_denied on the redirect, a refresh with invalid_grant, and the
// message is the error_description the app receives.
func Deny(message string) error { return &denyError{Message: message} }

// ruleClaims are the claims the rules added, kept with the grant so that a
// refresh can replace them.
type ruleClaims struct {
	IDToken, AccessToken map[string]any
}

// runRules runs every rule in order and returns the claims they added. A
// *denyError is returned as it is; any other failure as an internalError.
func (p *Provider) runRules(ctx context.Context, protocol string, c *store.Client, u *store.User, scopes []string, api string) (ruleClaims, error) {
	out := ruleClaims{IDToken: map[string]any{}, AccessToken: map[string]any{}}
	for _, r := range p.cfg.Rules {
		rc := &RuleContext{
			Protocol:    protocol,
			Client:      c.Clone(),
			User:        u.Clone(),
			Scopes:      slices.Clone(scopes),
			API:         api,
			IDToken:     maps.Clone(out.IDToken),
			AccessToken: maps.Clone(out.AccessToken),
		}
		if err := p.runRule(ctx, r, rc); err != nil {
			var deny *denyError
			if errors.As(err, &deny) {
				p.log().InfoContext(ctx, "rule denied the tokens", "rule", r.Name, "client_id", c.ID, "subject", u.Subject)
				return ruleClaims{}, deny
			}
			p.log().ErrorContext(ctx, "rule failed", "rule", r.Name, "client_id", c.ID, "error", err)
			return ruleClaims{}, &internalError{fmt.Errorf("provider: rule %q: %w", r.Name, err)}
		}
		for _, m := range []map[string]any{rc.IDToken, rc.AccessToken} {
			if err := checkRuleClaims(m); err != nil {
				p.log().ErrorContext(ctx, "rule added a bad claim", "rule", r.Name, "error", err)
				return ruleClaims{}, &internalError{fmt.Errorf("provider: rule %q: %w", r.Name, err)}
			}
		}
		out.IDToken, out.AccessToken = rc.IDToken, rc.AccessToken
	}
	return out, nil
}

// runRule runs one rule within its time budget. The rule works on its own
// copy of the claims, so one that overruns and goes on in the background
// changes nothing that is used.
func (p *Provider) runRule(ctx context.Context, r Rule, rc *RuleContext) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RuleTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("panic: %v", v)
			}
		}()
		done <- r.Run(ctx, rc)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("exceeded its time budget of %v", p.cfg.RuleTimeout)
	}
}

// checkRuleClaims enforces namespaced, JSON-encodable claims.
func checkRuleClaims(m map[string]any) error {
	for k, v := range m {
		if !strings.Contains(k, ":") || strings.ContainsAny(k, " \t\n") {
			return fmt.Errorf("claim %q is not namespaced: use a URI such as https://example.com/%s", k, k)
		}
		if _, err := json.Marshal(v); err != nil {
			return fmt.Errorf("claim %q: %w", k, err)
		}
	}
	return nil
}
