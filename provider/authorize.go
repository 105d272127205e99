package provider

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// authzRequest is a validated authorization request as the provider keeps
// it: what package handlers reads of it, and what only the provider does.
type authzRequest struct {
	*engine.AuthorizeRequest // its Engine is the authzRequest itself

	idTokenClaims  []string       // the claims parameter's for the ID token, releasable ones
	userInfoClaims []string       // the same for userinfo
	subject        string         // a sub value the claims parameter requires, or ""
	pushed         *pushedRequest // the pushed request (RFC 9126) it came from, or nil
	ar             fosite.AuthorizeRequester
}

// Login is the outcome of authenticating the user: who logged in, when and
// how. A host app with a login page of its own passes it to
// handlers.Pending.Complete; pixie's login page makes one too.
type Login struct {
	Subject  string    // the user's subject identifier: the sub of the tokens. Required.
	AuthTime time.Time // when the user authenticated (auth_time); zero means now
	AMR      []string  // authentication methods (amr, RFC 8176), e.g. ["pwd"]
	// ACR is the authentication context class reference (acr, OIDC Core
	// §2) the login achieved: one of Config.ACRValues. Empty means
	// [ACRPassword] when AMR is ["pwd"], else [ACRUnspecified].
	ACR string
}

// parseAuthorizeRequest validates an authorization request: a GET, or a POST
// with an application/x-www-form-urlencoded body; no parameter but resource
// repeated; the parameters pixie stores, signs or echoes within their length
// limits (state 2048 bytes, nonce 512, id_token_hint engine.MaxIDTokenHintLen, …);
// the redirect URI registered for the client. On failure it returns an
// *engine.AuthorizeError.
//
// A request with request_uri is a pushed one (RFC 9126, see
// pushAuthorizeRequest): it needs client_id too, and is then the
// pushed request, validated as if its parameters had come in this request;
// any other parameter is ignored. Its prompt=login and max_age count from
// when it was pushed: a login since then satisfies them. A client with
// store.Client.RequirePAR, or any client with Config.RequirePAR, must send
// pushed requests.
func (p *Provider) parseAuthorizeRequest(ctx context.Context, r *http.Request) (_ *authzRequest, err error) {
	ctx, span := p.endpoint(ctx, r, "authorize")
	defer span.End()
	ctx = withMemo(ctx)
	defer p.authorizeFailed(ctx, span, r, &err)
	if ae := parseAuthorizeForm(r); ae != nil {
		return nil, ae
	}
	r, pushed, ae := p.withPushed(ctx, r)
	if ae != nil {
		return nil, ae
	}
	if err := p.checkRedirectURI(ctx, r.Form); err != nil {
		return nil, err
	}
	targets, restore := takeTarget(r.Form)
	ar, err := p.oauth2.NewAuthorizeRequest(ctx, r)
	restore()
	if err != nil {
		return nil, p.authorizeError(ctx, ar, err)
	}
	c, ok := ar.GetClient().(fositeClient)
	if !ok {
		return nil, p.authorizeError(ctx, ar, fosite.ErrServerError.WithDebug("unexpected client type"))
	}
	if pushed == nil && (p.cfg.RequirePAR || c.c.RequirePAR) {
		return nil, p.authorizeError(ctx, ar, fosite.ErrInvalidRequest.WithHint("This client must push its authorization requests to the pushed_authorization_request_endpoint first (RFC 9126) and send only client_id and request_uri here."))
	}
	if a, ok := ar.(*fosite.AuthorizeRequest); ok && pushed != nil {
		// When the request was made: what fosite checks prompt=login and
		// max_age against, and the ID token's rat.
		a.RequestedAt = pushed.at
	}
	areq, err := p.checkRequest(ar, c.c, targets)
	if err != nil {
		return nil, p.authorizeError(ctx, ar, err)
	}
	if pushed != nil {
		areq.pushed = pushed
		areq.measureFromPush(p.now(), pushed.at)
	}
	return areq, nil
}

// shownError makes the answer to a request refused before its client is
// known, or about a value that must not be echoed: shown to the user, not
// redirected.
func shownError(description string) *engine.AuthorizeError {
	return &engine.AuthorizeError{Err: &engine.Error{Code: engine.CodeInvalidRequest, Description: description, Status: http.StatusBadRequest}}
}

// parseAuthorizeForm parses the request's parameters, refusing a form that
// the checks after it could not trust to be the one fosite reads.
func parseAuthorizeForm(r *http.Request) *engine.AuthorizeError {
	if r.Method == http.MethodPost {
		// OIDC Core §3.1.2.1: form serialization. fosite would parse a
		// multipart body too, and with it parameters this check never saw.
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
			return shownError("The request body must be application/x-www-form-urlencoded.")
		}
	}
	if err := r.ParseForm(); err != nil {
		return shownError("The request could not be parsed.")
	}
	if k := repeated(r.Form); k != "" {
		return shownError("The parameter " + k + " is included more than once.") // RFC 6749 §3.1
	}
	if k, n := overlong(r.Form); k != "" {
		return shownError(fmt.Sprintf("The parameter %s is longer than %d bytes.", k, n))
	}
	return nil
}

// withPushed swaps a request_uri for the request pushed under it, so that
// the pushed parameters are validated as if sent here; the pushed request is
// nil, and r returned as it is, when there is no request_uri.
func (p *Provider) withPushed(ctx context.Context, r *http.Request) (*http.Request, *pushedRequest, *engine.AuthorizeError) {
	if !r.Form.Has("request_uri") {
		return r, nil, nil
	}
	form, pr, ae := p.resolvePushed(ctx, r.Form)
	if ae != nil {
		return nil, nil, ae
	}
	req, err := pushedHTTPRequest(ctx, r, form)
	if err != nil {
		return nil, nil, shownError("The request could not be parsed.")
	}
	return req, pr, nil
}

// checkRequest runs the checks of an authorization request, direct or
// pushed, that follow fosite's: the API asked for (audience or RFC 8707
// resource, targets), PKCE and dpop_jkt, max_age and the claims parameter.
// It returns the request as pixie works with it.
func (p *Provider) checkRequest(ar fosite.AuthorizeRequester, c *store.Client, targets []string) (*authzRequest, error) {
	api, err := p.checkTarget(c, targets, ar.GetRequestedScopes())
	if err != nil {
		return nil, err
	}
	if api != nil {
		ar.SetRequestedAudience(fosite.Arguments{api.Identifier})
	}
	form := ar.GetRequestForm()
	if err := p.checkProofParams(form); err != nil {
		return nil, err
	}
	maxAge := time.Duration(-1)
	if v := form.Get("max_age"); v != "" {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return nil, fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer.")
		}
		maxAge = time.Duration(n) * time.Second
	}
	areq := &authzRequest{ar: ar, AuthorizeRequest: &engine.AuthorizeRequest{
		Client:    c.Clone(),
		Scopes:    slices.Clone(ar.GetRequestedScopes()),
		State:     ar.GetState(),
		Prompt:    strings.Fields(form.Get("prompt")),
		MaxAge:    maxAge,
		LoginHint: form.Get("login_hint"),
		ACRValues: strings.Fields(form.Get("acr_values")),
	}}
	areq.Engine = areq
	if api != nil {
		areq.API = api.Identifier
	}
	if err := areq.applyClaims(form.Get("claims")); err != nil {
		return nil, err
	}
	return areq, nil
}

// maxParamLen is the longest value pixie accepts for each authorization
// request parameter it stores, signs into tokens, echoes to the client or
// parses: a longer one is refused with invalid_request, shown to the user
// rather than redirected (state would be echoed in the redirect). Generous
// for real clients: a state or nonce is typically 22 to 64 characters.
var maxParamLen = map[string]int{
	"state":         2048,
	"nonce":         512,
	"login_hint":    512,
	"id_token_hint": engine.MaxIDTokenHintLen,
	"ui_locales":    256,
	"acr_values":    512,
	"scope":         2048,
	"claims":        4096,
	"redirect_uri":  2048,
	"client_id":     256,
	"prompt":        64,
	"max_age":       16,
	"response_type": 64,
	"response_mode": 64,
	"display":       64,
	"audience":      2048,
	"resource":      2048,
	"request_uri":   256,
}

// overlong returns a parameter whose value exceeds its limit, and the
// limit, or "".
func overlong(form url.Values) (string, int) {
	for k, vs := range form {
		n, ok := maxParamLen[k]
		if !ok {
			continue
		}
		for _, v := range vs {
			if len(v) > n {
				return k, n
			}
		}
	}
	return "", 0
}

// checkRedirectURI refuses, before fosite sees the request, a redirect_uri
// that is not registered for the client by pixie's exact rule
// ([redirectURIRegistered]): fosite would accept more, and redirect errors
// to it. An unknown client, or a request without redirect_uri, is left to
// fosite, which refuses the one and uses the single registered URI for the
// other.
func (p *Provider) checkRedirectURI(ctx context.Context, form url.Values) *engine.AuthorizeError {
	requested := form.Get("redirect_uri")
	if requested == "" {
		return nil
	}
	fc, err := (&fositeStorage{p: p}).GetClient(ctx, form.Get("client_id"))
	if err != nil {
		return nil
	}
	c, ok := fc.(fositeClient)
	if !ok || redirectURIRegistered(c.c, requested) {
		return nil
	}
	return &engine.AuthorizeError{Err: &engine.Error{Code: engine.CodeInvalidRequest, Status: http.StatusBadRequest,
		Description: "The redirect_uri is not registered for this client. Only the port of a native app's loopback redirect URI may differ (RFC 8252 §7.3)."}}
}

// applyClaims takes in the claims parameter (OIDC Core §5.5): the standard
// claims it names, if the client is registered for their scopes, are
// released in the ID token and at userinfo as asked, even without their
// scope. The user is asked to allow those scopes (they join Scopes, which
// the consent step reads), but they are not granted: the access token's
// scope stays what was requested. It also reads the acr and sub the ID
// token must have.
func (areq *authzRequest) applyClaims(raw string) error {
	cr, err := parseClaimsParam(raw)
	if err != nil || cr == nil || !areq.ar.GetRequestedScopes().Has("openid") {
		return err
	}
	areq.idTokenClaims = releasable(cr.IDToken, areq.Client)
	areq.userInfoClaims = releasable(cr.UserInfo, areq.Client)
	for _, name := range append(slices.Clone(areq.idTokenClaims), areq.userInfoClaims...) {
		if sc := claimScope(name); !slices.Contains(areq.Scopes, sc) {
			areq.Scopes = append(areq.Scopes, sc)
		}
	}
	if acr, ok := cr.IDToken["acr"]; ok {
		if acr.Essential && len(acr.Values) > 0 {
			areq.ACRValues, areq.ACREssential = slices.Clone(acr.Values), true
		} else {
			for _, v := range acr.Values {
				if !slices.Contains(areq.ACRValues, v) {
					areq.ACRValues = append(areq.ACRValues, v)
				}
			}
		}
	}
	if sub, ok := cr.IDToken["sub"]; ok && len(sub.Values) > 0 {
		// §5.5.1: only an ID token for that user, whoever is logged in.
		areq.subject = sub.Values[0]
		if len(sub.Values) > 1 || areq.subject == "" {
			return fosite.ErrInvalidRequest.WithHint("The claims parameter asks for a sub that is not one string.")
		}
	}
	return nil
}

// newAuthorizeResponse issues the code. Its three records (the code, its
// PKCE challenge, its OIDC request) are one record, written with a single
// store call once fosite's handlers have all succeeded (see pendingCode):
// all or none, without a transaction.
func (p *Provider) newAuthorizeResponse(ctx context.Context, ar fosite.AuthorizeRequester, sess fosite.Session) (fosite.AuthorizeResponder, error) {
	ctx, pc := withPendingCode(ctx)
	resp, err := p.oauth2.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		return nil, err
	}
	if err := (&fositeStorage{p: p}).flush(ctx, pc); err != nil {
		return nil, &internalError{err}
	}
	return resp, nil
}

// checkChallenge enforces PKCE (RFC 7636) when the request arrives, before
// the user is asked to log in: fosite checks the method only when it issues
// the code, and the form of the challenge never. Every request needs a
// challenge; the method must be S256, or plain (also when absent, RFC 7636
// §4.3) only with InsecureAllowPlainPKCE. An S256 challenge is the 43-character
// base64url encoding of a SHA-256 digest; a plain one is a verifier, 43 to
// 128 unreserved characters (§4.1, §4.2).
func checkChallenge(challenge, method string, allowPlain bool) error {
	switch {
	case challenge == "":
		return fosite.ErrInvalidRequest.WithHint("Clients must include a code_challenge (PKCE, RFC 7636) when performing the authorize code flow, but it is missing.")
	case method == "S256":
	case method == "plain" || method == "":
		if !allowPlain {
			return fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256, plain is not allowed.")
		}
	default:
		return fosite.ErrInvalidRequest.WithHint("The code_challenge_method is not supported, use S256 instead.")
	}
	n := len(challenge)
	if method == "S256" && n != 43 || method != "S256" && (n < 43 || n > 128) {
		return fosite.ErrInvalidRequest.WithHint("The code_challenge has the wrong length: S256 challenges are 43 characters (RFC 7636 §4.2).")
	}
	for i := 0; i < n; i++ {
		c := challenge[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || (method != "S256" && (c == '.' || c == '~'))) {
			return fosite.ErrInvalidRequest.WithHint("The code_challenge contains characters outside the base64url alphabet (RFC 7636 §4.2).")
		}
	}
	return nil
}

// issueCode grants the request to the logged-in user and returns the URL to
// redirect the browser to: the client's redirect URI with code, scope, state
// and iss (RFC 9207). The requested scopes are granted as asked (the client
// may only ask for scopes it is registered for); offline_access, and with it a
// refresh token, only if the client may use refresh tokens. On failure it
// returns an *engine.AuthorizeError.
func (p *Provider) issueCode(ctx context.Context, areq *authzRequest, login Login) (_ string, err error) {
	ctx, span := p.endpoint(ctx, nil, "authorize")
	defer span.End()
	defer p.authorizeDone(ctx, span, areq.Client.ID, true, &err)
	ar := areq.ar
	acr, err := p.checkLogin(ctx, areq, login)
	if err != nil {
		return "", err
	}
	user, err := p.users.User(ctx, login.Subject)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", p.authorizeError(ctx, ar, fosite.ErrAccessDenied.WithHint("The user no longer exists."))
		}
		return "", p.authorizeError(ctx, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	p.grantRequest(areq)
	sess := p.codeSession(areq, login, user, acr)
	rules, err := p.runRules(ctx, ProtocolOIDCBasicProfile, areq.Client, user, ar.GetGrantedScopes(), areq.API)
	if err != nil {
		var deny *denyError
		if errors.As(err, &deny) {
			return "", p.authorizeError(ctx, ar, fosite.ErrAccessDenied.WithHint(deny.Message))
		}
		return "", p.authorizeError(ctx, ar, err)
	}
	maps.Copy(sess.Claims.Extra, rules.IDToken)
	sess.AccessClaims.Extra = rules.AccessToken
	// A pushed request is used once: of concurrent uses, the one that
	// consumes it gets the code.
	if ok, err := p.consumePushed(ctx, areq); err != nil {
		return "", p.authorizeError(ctx, ar, &internalError{fmt.Errorf("provider: consume pushed request: %w", err)})
	} else if !ok {
		return "", p.authorizeError(ctx, ar, errPushedRequestUsed)
	}
	resp, err := p.newAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		return "", p.authorizeError(ctx, ar, err)
	}
	params := resp.GetParameters()
	params.Set("iss", p.cfg.Issuer)
	return withQuery(ar.GetRedirectURI(), params), nil
}

// checkLogin refuses a login the request cannot be granted to, and returns
// its acr.
func (p *Provider) checkLogin(ctx context.Context, areq *authzRequest, login Login) (string, error) {
	ar := areq.ar
	if login.Subject == "" {
		return "", p.authorizeError(ctx, ar, fosite.ErrServerError.WithDebug("login has no subject"))
	}
	acr := loginACR(login)
	if !slices.Contains(p.acrValuesSupported(), acr) {
		return "", p.authorizeError(ctx, ar, fosite.ErrServerError.WithDebugf("the login's acr %q is not in Config.ACRValues", acr))
	}
	if areq.ACREssential && !slices.Contains(areq.ACRValues, acr) {
		// OIDC Core §5.5.1.1: an essential acr that cannot be met is a
		// failed authentication, answered as the OpenID Connect Core Error
		// Code unmet_authentication_requirements specification says.
		e := &fosite.RFC6749Error{ErrorField: engine.CodeUnmetAuthenticationRequirements, DescriptionField: "The login does not meet the authentication context class the client requires (acr).", CodeField: http.StatusBadRequest}
		return "", p.authorizeError(ctx, ar, e)
	}
	if areq.subject != "" && subtle.ConstantTimeCompare([]byte(areq.subject), []byte(login.Subject)) != 1 {
		// §5.5.1: never an ID token for another user than the one asked for.
		return "", p.authorizeError(ctx, ar, fosite.ErrAccessDenied.WithHint("The logged-in user is not the one the claims parameter asks for."))
	}
	return acr, nil
}

// grantRequest decides which audiences and scopes the tokens will carry.
func (p *Provider) grantRequest(areq *authzRequest) {
	ar := areq.ar
	// The access token is for the API asked for and, with openid, for the
	// userinfo endpoint too: the issuer itself (RFC 9068 §3 wants an aud in
	// every token; the userinfo endpoint checks it, as any resource server).
	if areq.API != "" {
		ar.GrantAudience(areq.API)
	}
	if areq.API == "" || slices.Contains(ar.GetRequestedScopes(), "openid") {
		ar.GrantAudience(p.cfg.Issuer)
	}
	for _, s := range ar.GetRequestedScopes() {
		if (s == "offline_access" || s == "offline") && !allowsGrant(areq.Client, grantRefreshToken) {
			continue
		}
		ar.GrantScope(s)
	}
}

// codeSession makes the session the code is issued with: what the login
// proved, about whom, and the claims its tokens are to carry.
func (p *Provider) codeSession(areq *authzRequest, login Login, user *store.User, acr string) *session {
	ar := areq.ar
	now := p.now().UTC()
	authTime := login.AuthTime.UTC()
	if authTime.IsZero() || authTime.After(now) {
		authTime = now
	}
	sess := newSession()
	sess.Subject = user.Subject
	sess.Username = user.PreferredUsername
	sess.Claims.Subject = user.Subject
	sess.Claims.Issuer = p.cfg.Issuer
	sess.Claims.AuthTime = authTime
	sess.Claims.RequestedAt = ar.GetRequestedAt()
	sess.Claims.AuthenticationMethodsReferences = login.AMR
	sess.Claims.AuthenticationContextClassReference = acr
	sess.RequestedIDTokenClaims, sess.RequestedUserInfoClaims = areq.idTokenClaims, areq.userInfoClaims
	sess.JKT = ar.GetRequestForm().Get("dpop_jkt") // checked by ParseAuthorizeRequest (RFC 9449 §10)
	sess.Claims.Extra = userClaims(user, ar.GetGrantedScopes(), sess.RequestedIDTokenClaims)
	return sess
}

// authorizeError builds an engine.AuthorizeError, with a redirect only when fosite
// validated the redirect URI.
func (p *Provider) authorizeError(ctx context.Context, ar fosite.AuthorizeRequester, err error) *engine.AuthorizeError {
	e := p.oauthError(ctx, "authorize", err)
	ae := &engine.AuthorizeError{Err: e}
	if ar == nil || !ar.IsRedirectURIValid() || ar.GetRedirectURI() == nil {
		return ae
	}
	params := url.Values{}
	params.Set("error", e.Code)
	if e.Description != "" {
		params.Set("error_description", e.Description)
	}
	if s := ar.GetState(); s != "" {
		params.Set("state", s)
	}
	params.Set("iss", p.cfg.Issuer)
	ae.RedirectURL = withQuery(ar.GetRedirectURI(), params)
	return ae
}

// withQuery returns u with params added to its query, keeping the query the
// client registered (RFC 6749 §3.1.2).
func withQuery(u *url.URL, params url.Values) string {
	v := *u
	v.Fragment = ""
	if v.RawQuery == "" {
		// Nothing to merge with: the parameters encoded as they are, which
		// is what adding them to the empty query would encode.
		v.RawQuery = params.Encode()
		return v.String()
	}
	q := v.Query()
	for k, vs := range params {
		for _, s := range vs {
			q.Add(k, s)
		}
	}
	v.RawQuery = q.Encode()
	return v.String()
}

// refuse ends the request with an OAuth error chosen by the caller, such as
// login_required for prompt=none without a session (OIDC Core §3.1.2.6),
// and returns the URL to redirect the browser to. A pushed request's
// request_uri is used up by it.
func (p *Provider) refuse(ctx context.Context, areq *authzRequest, code, description string) string {
	if _, err := p.consumePushed(ctx, areq); err != nil {
		// The request ends all the same; its request_uri expires soon.
		p.log().WarnContext(ctx, "consume pushed request", "error", err)
	}
	e := &fosite.RFC6749Error{ErrorField: code, DescriptionField: description, CodeField: http.StatusBadRequest}
	p.tel.AuthorizeOutcome(ctx, telemetry.OutcomeError, areq.Client.ID)
	return p.authorizeError(ctx, areq.ar, e).RedirectURL
}
