package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// httpTimeout bounds each request to the server (discovery, token, JWKS,
// UserInfo, example/api).
const httpTimeout = 30 * time.Second

// discoveryMetadata holds the discovery fields that oidc.Provider does not
// expose directly (RFC 8414, RFC 9207).
type discoveryMetadata struct {
	Issuer                        string   `json:"issuer"`
	JWKSURI                       string   `json:"jwks_uri"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	IssParameterSupported         bool     `json:"authorization_response_iss_parameter_supported"`
	DPoPAlgs                      []string `json:"dpop_signing_alg_values_supported"`
	PAREndpoint                   string   `json:"pushed_authorization_request_endpoint"` // RFC 9126 §5
	RequirePAR                    bool     `json:"require_pushed_authorization_requests"`
}

// run logs in like a native app and writes a transcript to out:
// discovery, a loopback listener, the authorization request (PKCE S256,
// state, nonce), the redirect, the code exchange, ID token verification,
// UserInfo, the calls to example/api (-api) and the optional refresh
// rotation demonstration. It returns an error on the first failure.
func run(ctx context.Context, opts options, out io.Writer) error {
	if err := opts.validate(); err != nil {
		return err
	}
	p := printer{out}

	// go-oidc and x/oauth2 take the HTTP client from the context; that is
	// their API, so this is the one place we put it there.
	httpClient := &http.Client{Timeout: httpTimeout}
	ctx = oidc.ClientContext(ctx, httpClient)
	var key *dpopKey

	// Discovery. NewProvider checks that the document's issuer is exactly
	// opts.issuer; every endpoint below comes from the document.
	provider, err := oidc.NewProvider(ctx, opts.issuer)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var meta discoveryMetadata
	if err := provider.Claims(&meta); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	endpoint := provider.Endpoint()
	if opts.dpop {
		if key, err = newDPoPKey(); err != nil {
			return fmt.Errorf("dpop key: %w", err)
		}
		// Set before the first request that needs a proof; x/oauth2 and
		// go-oidc use this client for every request below.
		httpClient.Transport = &dpopTransport{key: key, tokenURL: endpoint.TokenURL, base: http.DefaultTransport}
	}
	p.line("Discovered %s/.well-known/openid-configuration", meta.Issuer)
	p.field("issuer", meta.Issuer)
	p.field("authorize", endpoint.AuthURL)
	p.field("token", endpoint.TokenURL)
	p.field("userinfo", orNone(provider.UserInfoEndpoint()))
	p.field("jwks_uri", orNone(meta.JWKSURI))
	p.field("pkce methods", orNone(strings.Join(meta.CodeChallengeMethodsSupported, " ")))
	if meta.IssParameterSupported {
		p.field("RFC 9207 iss", "advertised: the redirect must carry iss")
	} else {
		p.field("RFC 9207 iss", "not advertised: iss is checked if sent")
	}
	p.field("PAR", orNone(meta.PAREndpoint))
	if meta.RequirePAR && !opts.par {
		p.line("  warning: the server requires pushed authorization requests; run with -par")
	}
	if !slices.Contains(meta.CodeChallengeMethodsSupported, "S256") {
		p.line("  warning: discovery does not list S256 in code_challenge_methods_supported; sending PKCE S256 anyway")
	}

	// Loopback redirect (RFC 8252 §7.3): any free port on 127.0.0.1; the
	// server matches the registered http://127.0.0.1/callback on any port.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("loopback listener: %w", err)
	}
	redirectURL := fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)

	// A public client: no secret, client_id in the token request body.
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	cfg := &oauth2.Config{
		ClientID:    opts.clientID,
		Endpoint:    endpoint,
		RedirectURL: redirectURL,
		Scopes:      opts.scopes,
	}
	state := randomString()
	nonce := randomString()
	verifier := oauth2.GenerateVerifier() // never leaves this process until the exchange

	results := make(chan callbackResult, 1)
	mux := http.NewServeMux()
	mux.Handle("/callback", &callbackHandler{
		state:       state,
		issuer:      meta.Issuer,
		issRequired: meta.IssParameterSupported,
		results:     results,
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	stopServer := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // lets the browser's response finish
	})
	defer stopServer()

	p.line("")
	p.line("Listening for the redirect on %s", redirectURL)
	p.field("client_id", opts.clientID)
	p.field("scopes", strings.Join(opts.scopes, " "))
	p.field("audience", orNone(opts.audience))
	p.field("pkce", "S256 (the verifier stays in this process)")
	if key != nil {
		p.field("dpop", "ES256 key made for this run; thumbprint (jkt) "+key.jkt)
		if !slices.Contains(meta.DPoPAlgs, "ES256") {
			p.line("  warning: discovery does not list ES256 in dpop_signing_alg_values_supported")
		}
	}
	p.line("")

	authOpts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if opts.audience != "" {
		// The API the access token is for (its aud), as Auth0 spells it;
		// pixie also takes RFC 8707's resource.
		authOpts = append(authOpts, oauth2.SetAuthURLParam("audience", opts.audience))
	}
	if key != nil {
		// RFC 9449 §10: the code is bound to the key up front, so that a
		// stolen code is useless without it.
		authOpts = append(authOpts, oauth2.SetAuthURLParam("dpop_jkt", key.jkt))
	}
	authURL := cfg.AuthCodeURL(state, authOpts...)
	if opts.par {
		if authURL, err = push(ctx, p, httpClient, meta.PAREndpoint, opts.clientID, authURL); err != nil {
			return err
		}
	}
	onAuthURL := opts.onAuthURL
	if onAuthURL == nil {
		onAuthURL = func(u string) { showAuthURL(p, u, opts.openBrowser) }
	}
	onAuthURL(authURL)

	p.line("Waiting up to %v for the browser to come back (Ctrl-C to abort)...", opts.timeout)
	res, err := waitForCallback(ctx, opts.timeout, results, serveErr)
	stopServer() // one redirect only: stop listening before using the code
	if err != nil {
		return err
	}
	if res.err != nil {
		return fmt.Errorf("authorization response: %w", res.err)
	}
	p.line("")
	p.line("Redirect received")
	p.field("state", "matches the one sent")
	if res.issPresent {
		p.field("iss", "matches the issuer (RFC 9207)")
	} else {
		p.field("iss", "not sent: the server does not implement RFC 9207")
	}
	p.field("code", redact(res.code))

	// Code exchange with the PKCE verifier.
	tok, err := cfg.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("code exchange: %w", err)
	}
	p.line("")
	p.line("Exchanged the code at the token endpoint")
	printToken(p, tok)
	printAccessClaims(p, tok)
	if key != nil {
		c, _ := peekAccessToken(tok.AccessToken)
		if tok.Type() != "DPoP" {
			return errNotBound
		}
		if c.CNF.JKT != "" && c.CNF.JKT != key.jkt {
			return fmt.Errorf("-dpop: the access token is bound to %q, not to this key (%q)", c.CNF.JKT, key.jkt)
		}
		p.line("  bound to this client's DPoP key: token_type DPoP, cnf.jkt is its thumbprint")
	}

	var idToken *oidc.IDToken
	idVerifier := provider.Verifier(&oidc.Config{ClientID: opts.clientID})
	if !slices.Contains(opts.scopes, "openid") {
		p.line("")
		p.line("No openid scope requested: skipping the ID token and UserInfo")
	} else {
		rawID, _ := tok.Extra("id_token").(string)
		if rawID == "" {
			return errors.New("token response has no id_token although openid was requested")
		}
		var atHash bool
		idToken, atHash, err = verifyIDToken(ctx, idVerifier, rawID, opts.clientID, tok.AccessToken)
		if err != nil {
			return err
		}
		// go-oidc leaves the nonce to the caller (OIDC Core §3.1.3.7 step 11).
		if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(nonce)) != 1 {
			return errors.New("id token: nonce does not match the one sent")
		}
		p.line("")
		p.line("ID token verified: signature (JWKS), iss, aud, exp")
		p.field("nonce", "matches the one sent")
		printAtHash(p, atHash)
		if err := printIDClaims(p, idToken); err != nil {
			return err
		}

		if err := showUserInfo(ctx, p, provider, tok, idToken.Subject); err != nil {
			return err
		}
	}

	if opts.api != "" {
		if err := callAPI(ctx, p, httpClient, opts, tok); err != nil {
			return err
		}
	}

	if opts.refresh {
		if err := demonstrateRotation(ctx, p, cfg, idVerifier, tok, idToken); err != nil {
			return err
		}
	}

	p.line("")
	p.line("Done.")
	return nil
}

// push sends the parameters of authURL to the pushed authorization request
// endpoint (RFC 9126 §2: a form POST; a public client identifies itself by
// client_id) and returns the authorization URL the browser gets instead:
// client_id and the request_uri, nothing else (§4).
func push(ctx context.Context, p printer, client *http.Client, endpoint, clientID, authURL string) (string, error) {
	if endpoint == "" {
		return "", errors.New("-par: discovery has no pushed_authorization_request_endpoint")
	}
	u, err := url.Parse(authURL)
	if err != nil {
		return "", fmt.Errorf("-par: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(u.Query().Encode()))
	if err != nil {
		return "", fmt.Errorf("-par: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("-par: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		RequestURI       string `json:"request_uri"`
		ExpiresIn        int    `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
		return "", fmt.Errorf("-par: %s: unreadable answer (status %s): %w", endpoint, resp.Status, err)
	}
	if resp.StatusCode != http.StatusCreated || body.RequestURI == "" {
		return "", fmt.Errorf("-par: %s answered %s: %s %s", endpoint, resp.Status, body.Error, body.ErrorDescription)
	}
	p.line("Pushed the authorization request (RFC 9126)")
	p.field("request_uri", redact(body.RequestURI))
	p.field("expires_in", fmt.Sprintf("%d s, usable once", body.ExpiresIn))
	p.line("")
	u.RawQuery = url.Values{"client_id": {clientID}, "request_uri": {body.RequestURI}}.Encode()
	return u.String(), nil
}

// showAuthURL is the default onAuthURL: print the URL and, if open, try the
// system browser.
func showAuthURL(p printer, authURL string, open bool) {
	p.line("Open this URL in a browser to log in:")
	p.line("")
	p.line("  %s", authURL)
	p.line("")
	if open {
		if openBrowser(authURL) {
			p.line("(asked the system browser to open it)")
		} else {
			p.line("(could not start a browser; open the URL yourself)")
		}
	}
}

// waitForCallback waits for the redirect, the timeout, Ctrl-C or a failure of
// the loopback server, whichever comes first.
func waitForCallback(ctx context.Context, timeout time.Duration, results <-chan callbackResult, serveErr <-chan error) (callbackResult, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-results:
		return res, nil
	case err := <-serveErr:
		return callbackResult{}, fmt.Errorf("loopback server: %w", err)
	case <-timer.C:
		return callbackResult{}, fmt.Errorf("no redirect within %v (-timeout)", timeout)
	case <-ctx.Done():
		return callbackResult{}, fmt.Errorf("interrupted while waiting for the redirect: %w", context.Cause(ctx))
	}
}

// idClaims are the ID token claims the transcript shows beyond the ones
// oidc.IDToken parses.
type idClaims struct {
	Name            string `json:"name"`
	Email           string `json:"email"`
	AuthorizedParty string `json:"azp"`
}

// verifyIDToken verifies the signature, iss, aud and exp (go-oidc), azp
// (OIDC Core §3.1.3.7 steps 4–5) and, if the token has one, at_hash against
// accessToken (§3.1.3.8; optional in the code flow). It reports whether
// at_hash was present. The caller checks the nonce.
func verifyIDToken(ctx context.Context, v *oidc.IDTokenVerifier, raw, clientID, accessToken string) (*oidc.IDToken, bool, error) {
	idToken, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, false, fmt.Errorf("id token: %w", err)
	}
	var c idClaims
	if err := idToken.Claims(&c); err != nil {
		return nil, false, fmt.Errorf("id token: %w", err)
	}
	if c.AuthorizedParty != "" && c.AuthorizedParty != clientID {
		return nil, false, fmt.Errorf("id token: azp %q is not our client_id", c.AuthorizedParty)
	}
	if len(idToken.Audience) > 1 && c.AuthorizedParty == "" {
		return nil, false, errors.New("id token: several audiences but no azp")
	}
	if idToken.AccessTokenHash == "" {
		return idToken, false, nil
	}
	if err := idToken.VerifyAccessToken(accessToken); err != nil {
		return nil, true, fmt.Errorf("id token: at_hash: %w", err)
	}
	return idToken, true, nil
}

func printAtHash(p printer, present bool) {
	if present {
		p.field("at_hash", "matches the access token")
	} else {
		p.field("at_hash", "not present (optional in the code flow)")
	}
}

func printIDClaims(p printer, idToken *oidc.IDToken) error {
	var c idClaims
	if err := idToken.Claims(&c); err != nil {
		return fmt.Errorf("id token: %w", err)
	}
	p.field("sub", fmt.Sprintf("%q", idToken.Subject))
	p.field("iss", fmt.Sprintf("%q", idToken.Issuer))
	p.field("aud", fmt.Sprintf("%q", idToken.Audience))
	p.field("exp", fmt.Sprintf("%s (in %v)", idToken.Expiry.Format(time.RFC3339), time.Until(idToken.Expiry).Round(time.Second)))
	p.field("name", quotedOrNone(c.Name))
	p.field("email", quotedOrNone(c.Email))
	return nil
}

// showUserInfo calls the UserInfo endpoint with the access token, prints its
// claims and checks that its sub is the ID token's (OIDC Core §5.3.2: a
// different sub means a substituted response).
func showUserInfo(ctx context.Context, p printer, provider *oidc.Provider, tok *oauth2.Token, sub string) error {
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	var claims map[string]any
	if err := ui.Claims(&claims); err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	p.line("")
	p.line("UserInfo (GET %s with the access token)", provider.UserInfoEndpoint())
	printClaims(p, claims)
	if ui.Subject != sub {
		return fmt.Errorf("userinfo: sub %q does not match the id token's sub %q", ui.Subject, sub)
	}
	p.line("  sub matches the ID token")
	return nil
}

// demonstrateRotation uses the refresh token once, then presents the old one
// again: a server that rotates refresh tokens must refuse it with
// invalid_grant.
func demonstrateRotation(ctx context.Context, p printer, cfg *oauth2.Config, v *oidc.IDTokenVerifier, prev *oauth2.Token, prevID *oidc.IDToken) error {
	if prev.RefreshToken == "" {
		return errors.New("-refresh: no refresh token was issued (was offline_access requested and granted?)")
	}

	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: prev.RefreshToken}).Token()
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	p.line("")
	p.line("Refreshed the tokens (grant_type=refresh_token)")
	printToken(p, tok)
	// x/oauth2 keeps the old refresh token when the response has none, so
	// "equal" covers both "none returned" and "the same one returned".
	if tok.RefreshToken == prev.RefreshToken {
		return errors.New("refresh: the server did not rotate the refresh token; a public client's refresh tokens must rotate (RFC 9700 §4.14.2)")
	}
	p.line("  the refresh token was rotated")

	if rawID, _ := tok.Extra("id_token").(string); rawID != "" {
		idToken, atHash, err := verifyIDToken(ctx, v, rawID, cfg.ClientID, tok.AccessToken)
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		// OIDC Core §12.2: same iss and sub as the original ID token (aud
		// contains our client_id, which Verify checked).
		if prevID != nil && (idToken.Subject != prevID.Subject || idToken.Issuer != prevID.Issuer) {
			return fmt.Errorf("refresh: new id token is for iss %q sub %q, the original for iss %q sub %q",
				idToken.Issuer, idToken.Subject, prevID.Issuer, prevID.Subject)
		}
		p.line("New ID token verified: signature (JWKS), iss, aud, exp; same sub as before")
		printAtHash(p, atHash)
	}

	// Present the old refresh token again.
	p.line("")
	p.line("Reusing the old refresh token (expect invalid_grant)...")
	_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: prev.RefreshToken}).Token()
	if err == nil {
		return errors.New("refresh: the old refresh token was accepted again after rotation")
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		return fmt.Errorf("refresh: reusing the old refresh token: want invalid_grant, got: %w", err)
	}
	p.field("refused", err.Error())
	// Reuse of a rotated refresh token is treated as theft: the server
	// revokes the whole token family, including what the refresh above
	// returned. The demonstration therefore ends logged out. (We don't probe
	// the new tokens to prove it; the server's tests cover that.)
	p.line("On reuse the server revokes the whole token family (RFC 9700 §4.14.2),")
	p.line("so the refreshed tokens above are revoked too; log in again to get new ones.")
	return nil
}

// randomString returns 32 random bytes, base64url-encoded without padding
// (used for state and nonce).
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never returns an error (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
