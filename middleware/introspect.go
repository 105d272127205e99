package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxIntrospectionSize bounds an introspection response.
const maxIntrospectionSize = 1 << 20

// introspector checks tokens at an RFC 7662 endpoint and caches the answers.
type introspector struct {
	endpoint string
	id       string // form-encoded, RFC 6749 §2.3.1
	secret   string // form-encoded
	client   *http.Client
	ttl      time.Duration // <= 0: no cache
	cache    *tokenCache[[]byte]
}

func newIntrospector(in *IntrospectionConfig) *introspector {
	return &introspector{
		endpoint: in.Endpoint,
		id:       url.QueryEscape(in.ClientID),
		secret:   url.QueryEscape(in.ClientSecret),
		client:   in.HTTPClient,
		ttl:      in.CacheTTL,
		cache:    newTokenCache[[]byte](in.CacheSize),
	}
}

// introspect checks raw at the introspection endpoint, or in the cache.
// Answers are cached by the SHA-256 of the token, never the token itself:
// an active one until min(now+CacheTTL, exp), an inactive one for CacheTTL.
// The claims are checked again on every use, so a cached token still
// expires on time.
func (v *Verifier) introspect(ctx context.Context, raw string) (*Token, error) {
	in := v.intro
	key := sha256.Sum256([]byte(raw))
	now := v.cfg.Now()
	if in.ttl > 0 {
		if body, ok := in.cache.get(key, now); ok {
			if body == nil {
				return nil, refuseInactive()
			}
			resp, err := decodeIntrospection(body)
			if err != nil { // cannot happen: it decoded before
				return nil, unavailable(err)
			}
			return v.introspectionToken(resp, now)
		}
	}

	body, err := in.call(ctx, raw)
	var resp map[string]any
	if err == nil {
		resp, err = decodeIntrospection(body)
	}
	if err != nil {
		if ctx.Err() == nil {
			v.log().ErrorContext(ctx, "introspect token", "error", err)
		}
		return nil, unavailable(err)
	}
	active := resp["active"] == true
	if in.ttl > 0 {
		until := now.Add(in.ttl)
		if !active {
			body = nil
		} else if exp, ok, _ := numericDate(resp, "exp"); ok && exp.Before(until) {
			until = exp
		}
		in.cache.put(key, body, until, now)
	}
	if !active {
		return nil, refuseInactive()
	}
	return v.introspectionToken(resp, now)
}

func refuseInactive() *Error {
	return refuse(errInactive, "The access token is not active: it expired, was revoked or is unknown.")
}

// call POSTs the token to the endpoint (RFC 7662 §2.1) and returns the body
// of a 200 answer.
func (in *introspector) call(ctx context.Context, raw string) ([]byte, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("middleware: introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(in.id, in.secret)
	res, err := in.client.Do(req)
	if err != nil {
		// The error names the endpoint, never the token: it is in the body.
		return nil, fmt.Errorf("middleware: introspection request: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxIntrospectionSize+1))
	if err != nil {
		return nil, fmt.Errorf("middleware: read introspection response: %w", err)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("middleware: the introspection endpoint refused Config.Introspection.ClientID's credentials (%s)", res.Status)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("middleware: the introspection endpoint answered %s", res.Status)
	case len(body) > maxIntrospectionSize:
		return nil, errors.New("middleware: the introspection response is larger than 1 MiB")
	}
	return body, nil
}

// decodeIntrospection parses an introspection response: a JSON object with
// a boolean active (RFC 7662 §2.2).
func decodeIntrospection(body []byte) (map[string]any, error) {
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil || resp == nil {
		return nil, errors.New("middleware: the introspection response is not a JSON object")
	}
	if _, ok := resp["active"].(bool); !ok {
		return nil, errors.New("middleware: the introspection response has no boolean active member")
	}
	return resp, nil
}

// introspectionToken checks an active introspection response and turns it
// into a Token. iss and aud are checked when present (RFC 7662 §2.2 makes
// them optional), exp and nbf likewise, and token_type, when present, must
// be that of an access token ("Bearer", "DPoP" or "access_token"): pixie
// answers "refresh_token" for a refresh token, which must not open an API.
// A "DPoP" token_type needs a cnf.jkt (RFC 9449 §6.2), which binds the
// token as in a JWT.
func (v *Verifier) introspectionToken(resp map[string]any, now time.Time) (*Token, error) {
	if resp["active"] != true {
		return nil, refuseInactive()
	}
	isDPoP := false
	if tt, ok := resp["token_type"]; ok {
		s, _ := tt.(string)
		isDPoP = strings.EqualFold(s, "dpop")
		if !isDPoP && !strings.EqualFold(s, "bearer") && !strings.EqualFold(s, "access_token") {
			return nil, refuse(errWrongTokenType, "The token is not an access token.")
		}
	}
	_, hasIss := resp["iss"]
	_, hasAud := resp["aud"]
	_, hasExp := resp["exp"]
	t, err := v.claimsToken(resp, now, hasIss, hasAud, hasExp)
	if err == nil && isDPoP && t.JKT == "" {
		return nil, malformed("The introspection answer says token_type DPoP but has no cnf.jkt.")
	}
	return t, err
}
