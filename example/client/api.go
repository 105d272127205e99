package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// The example API's route and the scopes its methods need (example/api).
const (
	messagesPath = "/api/messages"
	scopeRead    = "read:messages"
	scopeWrite   = "write:messages"
)

// accessClaims are the access token claims the transcript shows.
type accessClaims struct {
	Audience audience `json:"aud"`
	Scope    string   `json:"scope"`
	CNF      struct {
		JKT string `json:"jkt"`
	} `json:"cnf"` // RFC 9449 §6.1: the DPoP key the token is bound to
}

// audience is the aud claim: a string or an array of strings (RFC 7519
// §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// peekAccessToken decodes the payload of a JWT access token (RFC 9068) for
// the transcript, and reports false for an opaque token. It checks nothing:
// a client must not rely on what an access token says (it is for the API,
// which verifies it); this is only to show what the API will see.
func peekAccessToken(raw string) (accessClaims, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return accessClaims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return accessClaims{}, false
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return accessClaims{}, false
	}
	return c, true
}

// printAccessClaims shows the aud and scope of the access token.
func printAccessClaims(p printer, tok *oauth2.Token) {
	c, ok := peekAccessToken(tok.AccessToken)
	p.line("")
	if !ok {
		p.line("Access token: opaque (not a JWT); an API checks it by introspection")
		return
	}
	p.line("Access token claims (decoded, not verified: that is the API's job)")
	aud, _ := json.Marshal([]string(c.Audience))
	p.field("aud", printable(string(aud)))
	p.field("scope", fmt.Sprintf("%q", printable(c.Scope)))
	if c.CNF.JKT != "" {
		p.field("cnf.jkt", printable(c.CNF.JKT))
	}
}

// grantedScopes returns the scopes the access token carries: its scope
// claim if it is a JWT, else the token response's scope, else (RFC 6749
// §5.1: omitted means as requested) the requested ones.
func grantedScopes(tok *oauth2.Token, requested []string) []string {
	if c, ok := peekAccessToken(tok.AccessToken); ok {
		return strings.Fields(c.Scope)
	}
	if s, ok := tok.Extra("scope").(string); ok {
		return strings.Fields(s)
	}
	return requested
}

// apiCall is one request to example/api and the answer the transcript
// expects.
type apiCall struct {
	method string
	body   string // JSON; "" sends none
	// expect is printed before the call: what it needs, what should happen.
	expect string
	// wantStatus is the status that shows the API behaving as it should;
	// wantError, for a refusal, the RFC 6750 error code in WWW-Authenticate.
	wantStatus int
	wantError  string
}

// planAPICalls decides what to ask of example/api and what it should answer,
// given the token's audience and scopes: read the messages (GET, needs
// read:messages), then post one (POST, needs write:messages). A token
// without a scope the call needs must be refused with 403
// insufficient_scope; a token asked for no API (-audience "") is not for the
// API at all: 401 invalid_token.
func planAPICalls(aud string, scopes []string) []apiCall {
	if aud == "" {
		return []apiCall{{
			method:     http.MethodGet,
			expect:     "no -audience: the token is for the issuer, not for the API (expect 401 invalid_token)",
			wantStatus: http.StatusUnauthorized,
			wantError:  "invalid_token",
		}}
	}
	call := func(method, body, scope string) apiCall {
		c := apiCall{method: method, body: body}
		if slices.Contains(scopes, scope) {
			c.expect = "needs " + scope + ", which the token has"
			c.wantStatus = http.StatusOK
			if method == http.MethodPost {
				c.wantStatus = http.StatusCreated
			}
		} else {
			c.expect = "needs " + scope + ", which the token lacks (expect 403 insufficient_scope)"
			c.wantStatus = http.StatusForbidden
			c.wantError = "insufficient_scope"
		}
		return c
	}
	return []apiCall{
		call(http.MethodGet, "", scopeRead),
		call(http.MethodPost, `{"text":"Hello from the example client"}`, scopeWrite),
	}
}

// callAPI demonstrates the access token at example/api, whose base URL is
// opts.api: each call of planAPICalls, with the token as a Bearer token
// (RFC 6750 §2.1), printing the status, the WWW-Authenticate challenge and
// the body. An answer other than the expected one is an error. An API that
// is not running is not: the transcript says how to start it, and the
// client carries on.
func callAPI(ctx context.Context, p printer, client *http.Client, opts options, tok *oauth2.Token) error {
	apiURL := opts.api
	u := strings.TrimSuffix(apiURL, "/") + messagesPath
	for i, c := range planAPICalls(opts.audience, grantedScopes(tok, opts.scopes)) {
		resp, body, err := apiRequest(ctx, client, c.method, u, c.body, tok)
		if err != nil {
			var op *net.OpError
			if i == 0 && errors.As(err, &op) && op.Op == "dial" {
				p.line("")
				p.line("example/api is not running at %s (%v);", apiURL, op.Err)
				p.line("start it with: go run ./example/api   (or pass -api \"\" to skip this step)")
				return nil
			}
			return fmt.Errorf("api: %w", err)
		}
		p.line("")
		p.line("API: %s %s", c.method, u)
		p.line("  %s", c.expect)
		p.field("status", resp.Status)
		challenge := resp.Header.Get("WWW-Authenticate")
		if challenge != "" {
			p.field("www-authenticate", printable(challenge))
		}
		printBody(p, body)
		if resp.StatusCode != c.wantStatus {
			if resp.StatusCode == http.StatusUnauthorized && opts.audience != "" {
				return fmt.Errorf("api: %s %s returned %s, want %d: is -audience %q the API's identifier (its -audience)?",
					c.method, u, resp.Status, c.wantStatus, opts.audience)
			}
			return fmt.Errorf("api: %s %s returned %s, want %d", c.method, u, resp.Status, c.wantStatus)
		}
		if c.wantError != "" {
			if !strings.Contains(challenge, `error="`+c.wantError+`"`) {
				return fmt.Errorf("api: %s %s: WWW-Authenticate %q has no error=%q", c.method, u, printable(challenge), c.wantError)
			}
			p.line("  refused, as expected")
		} else {
			p.line("  accepted")
		}
	}
	return nil
}

// apiRequest sends one request with the access token, in the scheme of its
// token_type (Bearer, or DPoP with a proof that the client's transport
// adds), and returns the response and (at most 64 KiB of) its body.
func apiRequest(ctx context.Context, client *http.Client, method, u, body string, tok *oauth2.Token) (*http.Response, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, nil, err
	}
	tok.SetAuthHeader(req)
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	const maxBody = 64 << 10
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the body: %w", err)
	}
	return resp, b, nil
}

// printBody prints a response body, indented if it is JSON.
func printBody(p printer, body []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") == nil {
		body = buf.Bytes()
	}
	text := strings.TrimSpace(printable(string(body)))
	if text == "" {
		return
	}
	p.line("  body:")
	p.line("    %s", strings.ReplaceAll(text, "\n", "\n    "))
}
