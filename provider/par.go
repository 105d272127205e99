package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/engine"
)

// Pushed authorization requests (RFC 9126).
//
// The pushed endpoint validates the request as the authorization endpoint
// would (client, redirect URI, scopes, API, PKCE) after authenticating the
// client as the token endpoint does, and stores its parameters as a
// store.KindPushedRequest grant under a digest of the request_uri. At the
// authorization endpoint a request_uri is resolved to those parameters,
// which then go through every check of a direct request (ParseAuthorizeRequest
// runs on them as if they had come in the query): the request is the pushed
// one, whatever else the browser sends (RFC 9126 §4 lets the server ignore
// other parameters; pixie does, except client_id, which must be the pushing
// client's). The request_uri stays valid through the login and consent
// steps, which come back to the authorization endpoint with it, and is
// consumed (deleted: of concurrent uses exactly one succeeds) when the code
// is issued, or the request refused; or it expires after
// Config.PushedRequestLifespan.

// Lifespan of a pushed request: Config.PushedRequestLifespan.
const (
	defaultPushedRequestLifespan = 60 * time.Second
	minPushedRequestLifespan     = 5 * time.Second
	maxPushedRequestLifespan     = 10 * time.Minute // no longer than the code it turns into
)

// requestURIPrefix begins every request_uri pixie issues (RFC 9126 §2.2).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// pushedSecretParams are the parameters of a pushed request that are never
// stored: client authentication.
var pushedSecretParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// pushAuthorizeRequest serves the pushed authorization request endpoint
// (RFC 9126): a POST with an application/x-www-form-urlencoded body holding
// the parameters of an authorization request. The client authenticates as
// at the token endpoint (a public client by its client_id). The request is
// validated as the authorization endpoint validates one (PKCE included),
// and stored for Config.PushedRequestLifespan; the result holds the JSON
// members of the 201 response, request_uri and expires_in. The client then
// sends the browser to the authorization endpoint with only client_id and
// request_uri, which can be used once. On failure it returns an *engine.Error.
func (p *Provider) pushAuthorizeRequest(ctx context.Context, r *http.Request) (_ map[string]any, err error) {
	ctx, span := p.endpoint(ctx, r, "par")
	defer span.End()
	defer p.failed(span, &err)
	id, err := checkPushForm(r)
	if err != nil {
		return nil, err
	}
	form := r.Form // the body's parameters alone: checkPushForm refused a query
	ctx = withMemo(ctx)
	if err := p.equalizeClientAuth(ctx, r, "par"); err != nil {
		return nil, err
	}
	if id != "" {
		form.Set("client_id", id) // so that fosite reads the same client twice
	}
	if ae := p.checkRedirectURI(ctx, form); ae != nil {
		return nil, ae.Err
	}
	targets, restore := takeTarget(form)
	ar, err := p.oauth2.NewPushedAuthorizeRequest(ctx, r)
	restore()
	if err != nil {
		return nil, p.oauthError(ctx, "par", err)
	}
	c, ok := ar.GetClient().(fositeClient)
	if !ok {
		return nil, p.oauthError(ctx, "par", fosite.ErrServerError.WithDebug("unexpected client type"))
	}
	// The checks of the authorization endpoint, PKCE included for every
	// client, public or confidential: refused here, not only when the
	// browser arrives.
	if _, err := p.checkRequest(ar, c.c, targets); err != nil {
		return nil, p.oauthError(ctx, "par", err)
	}
	if err := p.bindPushedDPoP(ctx, r, ar.GetRequestForm()); err != nil {
		return nil, err
	}
	resp, err := p.oauth2.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		return nil, p.oauthError(ctx, "par", err)
	}
	return map[string]any{
		"request_uri": resp.GetRequestURI(),
		"expires_in":  int(p.cfg.PushedRequestLifespan / time.Second),
	}, nil
}

// pushedRequest is what ParseAuthorizeRequest keeps of a pushed request.
type pushedRequest struct {
	uri string    // the request_uri, to consume it
	at  time.Time // when it was pushed
}

// checkPushForm parses the pushed request's body and refuses the
// parameters fosite must not see, returning the client ID of the client's
// credentials (empty when it sent none).
func checkPushForm(r *http.Request) (string, error) {
	bad := func(description string) *engine.Error {
		return &engine.Error{Code: engine.CodeInvalidRequest, Description: description, Status: http.StatusBadRequest}
	}
	id, _, cerr := clientCredentials(r) // parses the form POST
	if cerr != nil {
		return "", cerr
	}
	if r.URL.RawQuery != "" {
		// fosite would read the query too: the request is the body alone.
		return "", bad("The parameters must be sent in the request body (RFC 9126 §2.1).")
	}
	form := r.Form // the body's parameters alone, as the query is empty
	if k := repeated(form); k != "" {
		return "", bad("The parameter " + k + " is included more than once.")
	}
	if k, n := overlong(form); k != "" {
		return "", bad(fmt.Sprintf("The parameter %s is longer than %d bytes.", k, n))
	}
	if form.Has("request_uri") {
		return "", bad("A pushed authorization request must not contain request_uri (RFC 9126 §2.1).")
	}
	if form.Has("request") {
		return "", &engine.Error{Code: "request_not_supported", Description: "Request objects are not supported.", Status: http.StatusBadRequest}
	}
	if fid := form.Get("client_id"); fid != "" && fid != id {
		// Basic credentials for one client, client_id for another: fosite
		// would authenticate the one and store the request of the other.
		return "", bad("The client_id does not match the authenticated client.")
	}
	return id, nil
}

// resolvePushed returns the parameters of the pushed request that form
// (an authorization request with a request_uri) refers to. The request_uri
// must be one this provider issued, unused and unexpired, and client_id the
// pushing client's; otherwise the error is invalid_request_uri, shown to the
// user: nothing of the request, its redirect URI least of all, is trusted.
func (p *Provider) resolvePushed(ctx context.Context, form url.Values) (url.Values, *pushedRequest, *engine.AuthorizeError) {
	shown := func(code, description string) *engine.AuthorizeError {
		return &engine.AuthorizeError{Err: &engine.Error{Code: code, Description: description, Status: http.StatusBadRequest}}
	}
	uri, clientID := form.Get("request_uri"), form.Get("client_id")
	if clientID == "" {
		return nil, nil, shown(engine.CodeInvalidRequest, "The client_id parameter is missing.")
	}
	st := &fositeStorage{p: p}
	pr, err := st.GetPARSession(ctx, uri)
	switch {
	case errors.Is(err, fosite.ErrNotFound):
		return nil, nil, shown(errCodeInvalidRequestURI, "The request_uri is unknown, expired or already used.")
	case err != nil:
		e := p.oauthError(ctx, "authorize", err)
		return nil, nil, &engine.AuthorizeError{Err: e}
	case pr.GetClient().GetID() != clientID:
		p.log().WarnContext(ctx, "request_uri presented by another client", "client_id", clientID)
		return nil, nil, shown(errCodeInvalidRequestURI, "The request_uri was not pushed by this client.")
	}
	pushed := url.Values{}
	for k, v := range pr.GetRequestForm() {
		pushed[k] = slices.Clone(v)
	}
	return pushed, &pushedRequest{uri: uri, at: pr.GetRequestedAt()}, nil
}

// errCodeInvalidRequestURI is RFC 9101 §7's invalid_request_uri, which RFC
// 9126 §4 uses for a request_uri that is unknown, used, expired or another
// client's.
const errCodeInvalidRequestURI = "invalid_request_uri"

// errPushedRequestUsed refuses the loser of concurrent uses of one
// request_uri, at the moment the code would be issued.
var errPushedRequestUsed = &fosite.RFC6749Error{ErrorField: errCodeInvalidRequestURI,
	DescriptionField: "The request_uri has already been used.", CodeField: http.StatusBadRequest}

// pushedHTTPRequest rebuilds the authorization request from its pushed
// parameters, for the authorization endpoint to validate as if they had
// come in the query.
func pushedHTTPRequest(ctx context.Context, orig *http.Request, form url.Values) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/?"+form.Encode(), http.NoBody)
	if err != nil {
		return nil, err
	}
	if l := orig.Header.Get("Accept-Language"); l != "" {
		r.Header.Set("Accept-Language", l)
	}
	// Parsed, as the caller's request was: the checks before fosite's read
	// r.Form.
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r, nil
}

// measureFromPush makes prompt=login and max_age of a pushed request count
// from when it was pushed, as fosite's check of auth_time does (the request
// carries the push time as its RequestedAt): a login after the push
// satisfies prompt=login, and one at most max_age before it satisfies
// max_age. The login step therefore need not strip them from the request
// it resumes, which it could not for a pushed one. prompt=login becomes a
// MaxAge reaching back to the push.
//
// Both times are whole seconds (auth_time and the push time), and the
// caller compares with a later reading of the clock: half a second of slack
// absorbs that, without letting a login of the second before count.
func (areq *authzRequest) measureFromPush(now, pushedAt time.Time) {
	since := max(now.Sub(pushedAt), 0) + time.Second/2
	if areq.MaxAge >= 0 {
		areq.MaxAge += since
	}
	if slices.Contains(areq.Prompt, "login") {
		areq.Prompt = slices.DeleteFunc(areq.Prompt, func(v string) bool { return v == "login" })
		if areq.MaxAge < 0 || areq.MaxAge > since {
			areq.MaxAge = since
		}
	}
}

// consumePushed deletes the pushed request areq came from, if any: once a
// code is issued, or the request ended, its request_uri opens nothing. It
// reports false when a concurrent use consumed it first.
func (p *Provider) consumePushed(ctx context.Context, areq *authzRequest) (bool, error) {
	if areq.pushed == nil {
		return true, nil
	}
	err := (&fositeStorage{p: p}).DeletePARSession(ctx, areq.pushed.uri)
	if errors.Is(err, fosite.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
