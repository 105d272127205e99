package provider

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/store"
)

// API is a resource server pixie issues access tokens for. A client asks for
// a token for it with the audience parameter (as with Auth0) or the resource
// parameter (RFC 8707), naming its Identifier; the token's aud is then the
// Identifier. A client may ask only for the APIs its registration lists
// ([store.Client.APIs]).
type API struct {
	// Identifier is the API's audience value, an absolute URI such as
	// https://api.example.com. Required and unique.
	Identifier string
	// Scopes are the scopes the API defines; a token for the API carries no
	// others, besides the OpenID Connect scopes (openid, profile, email,
	// address, phone, offline_access), which it may not define. A client
	// must also be registered for them.
	Scopes []string
	// AccessTokenLifespan is how long the API's access tokens last. Zero
	// means Config.AccessTokenLifespan.
	AccessTokenLifespan time.Duration
	// AccessTokenAlg is the JWS algorithm of the API's access tokens, RS256
	// or ES256. Empty means Config.AccessTokenAlg.
	AccessTokenAlg string
}

// oidcScopes are the scopes of OpenID Connect itself, which need no API.
var oidcScopes = []string{"openid", "profile", "email", "address", "phone", "offline_access", "offline"}

func validateAPIs(apis []API) error {
	seen := map[string]bool{}
	for i, a := range apis {
		u, err := url.Parse(a.Identifier)
		if a.Identifier == "" || err != nil || !u.IsAbs() || u.Fragment != "" {
			return fmt.Errorf("provider: Config.APIs[%d].Identifier %q must be an absolute URI without a fragment", i, a.Identifier)
		}
		if seen[a.Identifier] {
			return fmt.Errorf("provider: Config.APIs[%d].Identifier %q is listed twice", i, a.Identifier)
		}
		seen[a.Identifier] = true
		if a.AccessTokenLifespan < 0 {
			return fmt.Errorf("provider: Config.APIs[%d].AccessTokenLifespan is negative", i)
		}
		switch a.AccessTokenAlg {
		case "", RS256, ES256:
		default:
			return fmt.Errorf("provider: Config.APIs[%d].AccessTokenAlg %q is not RS256 or ES256", i, a.AccessTokenAlg)
		}
		for _, s := range a.Scopes {
			if s == "" || strings.ContainsAny(s, " \"\\") || slices.Contains(oidcScopes, s) {
				return fmt.Errorf("provider: Config.APIs[%d].Scopes: %q is not a valid API scope", i, s)
			}
		}
	}
	return nil
}

// api returns the configured API with the identifier, or nil.
func (p *Provider) api(identifier string) *API {
	for i := range p.cfg.APIs {
		if p.cfg.APIs[i].Identifier == identifier {
			return &p.cfg.APIs[i]
		}
	}
	return nil
}

// apiLifespan returns the access-token lifespan of the API among aud, or 0.
func (p *Provider) apiLifespan(aud []string) time.Duration {
	for _, a := range aud {
		if api := p.api(a); api != nil && api.AccessTokenLifespan > 0 {
			return api.AccessTokenLifespan
		}
	}
	return 0
}

// accessTokenAlg returns the signing algorithm of an access token for aud:
// that of the API it is for, or Config.AccessTokenAlg.
func (p *Provider) accessTokenAlg(aud []string) string {
	for _, a := range aud {
		if api := p.api(a); api != nil && api.AccessTokenAlg != "" {
			return api.AccessTokenAlg
		}
	}
	return p.cfg.AccessTokenAlg
}

// takeTarget removes the audience and resource parameters from the request
// form, before fosite reads it (fosite would refuse an audience with a
// generic invalid_request and ignores resource). It returns their values,
// and a function that puts them back, so that the caller still sees the
// request as it came.
func takeTarget(form url.Values) (targets []string, restore func()) {
	saved := url.Values{}
	for _, k := range []string{"audience", "resource"} {
		if vs, ok := form[k]; ok {
			saved[k] = vs
			for _, v := range vs {
				targets = append(targets, strings.Fields(v)...)
			}
			delete(form, k)
		}
	}
	slices.Sort(targets)
	return slices.Compact(targets), func() { maps.Copy(form, saved) }
}

// checkTarget validates the requested API and scopes: one API at most, one
// the client is registered for, and no scope beyond it and OpenID Connect's
// (RFC 8707 §2: invalid_target; RFC 6749 §4.1.2.1: invalid_scope).
func (p *Provider) checkTarget(c *store.Client, targets []string, scopes []string) (*API, error) {
	var api *API
	switch {
	case len(targets) > 1:
		return nil, errInvalidTarget.WithHint("Ask for one API at a time.")
	case len(targets) == 1:
		api = p.api(targets[0])
		if api == nil || !slices.Contains(c.APIs, api.Identifier) {
			return nil, errInvalidTarget.WithHintf("The client may not ask for tokens for %q.", targets[0])
		}
	}
	for _, s := range scopes {
		if slices.Contains(oidcScopes, s) {
			continue
		}
		if api == nil || !slices.Contains(api.Scopes, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The scope %q is not one the requested API defines.", s)
		}
	}
	return api, nil
}

// errInvalidTarget is RFC 8707's invalid_target.
var errInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, unknown, or malformed.",
	CodeField:        400,
}
