package provider

import (
	"context"
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// token serves a token request (RFC 6749 §4.1.3, §6): it redeems an
// authorization code (checking the PKCE verifier, the redirect URI and the
// client) or rotates a refresh token, and returns the JSON members of the
// response (access_token, token_type, expires_in, scope, id_token,
// refresh_token). The request must be a POST with an
// application/x-www-form-urlencoded body. On failure it returns an *engine.Error.
//
// Of concurrent redemptions of one code or refresh token exactly one
// succeeds; the others get invalid_grant.
func (p *Provider) token(ctx context.Context, r *http.Request) (_ map[string]any, err error) {
	ctx, span := p.endpoint(ctx, r, "token")
	defer span.End()
	ctx = withMemo(ctx)
	defer p.tokenFailed(ctx, span, r, &err)
	if err := parseForm(r); err != nil {
		return nil, err
	}
	if k := repeated(r.PostForm); k != "" {
		return nil, &engine.Error{Code: engine.CodeInvalidRequest, Description: "The parameter " + k + " is included more than once (RFC 6749 §3.2).", Status: http.StatusBadRequest}
	}
	gt := r.PostForm.Get("grant_type")
	switch gt {
	case grantAuthorizationCode, grantRefreshToken:
		if span.Recording() {
			span.SetAttributes(telemetry.KeyGrantType.String(gt))
		}
	case "":
		return nil, &engine.Error{Code: engine.CodeInvalidRequest, Description: "The grant_type parameter is missing.", Status: http.StatusBadRequest}
	default:
		// RFC 6749 §5.2; fosite would answer invalid_request.
		return nil, &engine.Error{Code: "unsupported_grant_type", Description: "Only the authorization_code and refresh_token grants are supported.", Status: http.StatusBadRequest}
	}
	p.maybeCleanup(ctx)
	if err := p.equalizeClientAuth(ctx, r, "token"); err != nil {
		return nil, err
	}
	ar, err := p.oauth2.NewAccessRequest(ctx, r, newSession())
	if err != nil {
		return nil, p.oauthError(ctx, "token", err)
	}
	if span.Recording() {
		span.SetAttributes(clientType(ar.GetClient()))
	}
	if ar.GetGrantTypes().ExactOne(grantRefreshToken) {
		if err := p.refreshClaims(ctx, ar); err != nil {
			return nil, err
		}
	}
	if err := p.bindDPoP(ctx, r, ar); err != nil {
		return nil, err
	}
	resp, err := p.newAccessResponse(ctx, ar)
	if err != nil {
		return nil, p.oauthError(ctx, "token", err)
	}
	m := resp.ToMap()
	if sess, err := sessionFrom(ar); err == nil && sess.JKT != "" {
		m["token_type"] = "DPoP" // RFC 9449 §5
	}
	p.tokensIssued(ctx, ar, gt, m)
	return m, nil
}

// newAccessResponse runs fosite's token handlers (the code or refresh
// grant's, then OpenID Connect's) with their writes applied at once when
// the grant store is a store.Batcher (see batchedAccessResponse), else in
// one transaction when it is a store.Transactor. fosite's code handler
// commits its own transaction before
// the OIDC handler reads and deletes the code's OIDC record and signs the
// ID token: a failure there would leave the code consumed and tokens stored
// that no client ever got. In one transaction it rolls back, and the code
// still works. fositeStorage's BeginTX, Commit and Rollback defer to this
// transaction (see outerTx).
func (p *Provider) newAccessResponse(ctx context.Context, ar fosite.AccessRequester) (fosite.AccessResponder, error) {
	if b, ok := p.grants.(store.Batcher); ok && p.batchable(ar) {
		return p.batchedAccessResponse(ctx, ar, b)
	}
	tx, ok := p.grants.(store.Transactor)
	if !ok {
		return p.oauth2.NewAccessResponse(ctx, ar)
	}
	txCtx, err := tx.BeginTx(ctx)
	if err != nil {
		return nil, &internalError{err}
	}
	txCtx = context.WithValue(txCtx, outerTx{}, true)
	resp, err := p.oauth2.NewAccessResponse(txCtx, ar)
	if err != nil {
		if rerr := tx.Rollback(txCtx); rerr != nil {
			p.log().ErrorContext(ctx, "roll back token request", "error", rerr)
		}
		return nil, err
	}
	if err := tx.Commit(txCtx); err != nil {
		return nil, &internalError{err}
	}
	return resp, nil
}

// batchable reports whether the writes of a token request can be collected
// and applied at once: always for a code, and for a refresh token when there
// is no grace period (a rotation within one decides what to write from the
// outcome of consuming the token).
func (p *Provider) batchable(ar fosite.AccessRequester) bool {
	return !ar.GetGrantTypes().ExactOne(grantRefreshToken) || p.cfg.RefreshTokenGracePeriod <= 0
}

// batchedAccessResponse runs fosite's token handlers with their writes
// collected in a batch (see withBatch), then applies it with one store
// call: all or none, like the transaction of newAccessResponse, in one round
// trip. Of concurrent redemptions of one code or refresh token, the batch
// of exactly one consumes it; the others get invalid_grant, their tokens
// never stored.
func (p *Provider) batchedAccessResponse(ctx context.Context, ar fosite.AccessRequester, b store.Batcher) (fosite.AccessResponder, error) {
	bctx, batch := withBatch(ctx)
	bctx = context.WithValue(bctx, outerTx{}, true)
	resp, err := p.oauth2.NewAccessResponse(bctx, ar)
	if err != nil {
		return nil, err
	}
	err = b.ApplyGrants(ctx, batch)
	for _, f := range batch.Revoke {
		// Also after a failure: the batch may have been applied, its
		// answer lost. Forgetting costs a userinfo cache miss at most.
		if f.Kind == store.KindAccessToken {
			p.userInfo.forget(f.RequestID)
		}
	}
	switch {
	case errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrNotFound):
		return nil, errRecordConsumed
	case err != nil:
		return nil, &internalError{err}
	}
	return resp, nil
}

// outerTx is the context key marking a transaction the provider began
// around fosite's handlers: inside it, fositeStorage's BeginTX, Commit and
// Rollback do nothing.
type outerTx struct{}

// inOuterTx reports whether ctx carries the provider's own transaction.
func inOuterTx(ctx context.Context) bool {
	v, _ := ctx.Value(outerTx{}).(bool)
	return v
}

// refreshClaims brings a refreshed grant's claims up to date before its new
// tokens are made: the user's profile as it is now, and the rules, run again
// (ProtocolOAuth2RefreshToken). A rule's refusal is invalid_grant; a user who no
// longer exists, too.
func (p *Provider) refreshClaims(ctx context.Context, ar fosite.AccessRequester) error {
	sess, c, err := p.tokenGrant(ctx, ar)
	if err != nil {
		return err
	}
	u, err := p.users.User(ctx, sess.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return p.oauthError(ctx, "token", fosite.ErrInvalidGrant.WithHint("The user no longer exists."))
	} else if err != nil {
		return p.oauthError(ctx, "token", &internalError{err})
	}
	var api string
	for _, a := range ar.GetGrantedAudience() {
		if p.api(a) != nil {
			api = a
		}
	}
	rules, err := p.runRules(ctx, ProtocolOAuth2RefreshToken, c.c, u, ar.GetGrantedScopes(), api)
	if err != nil {
		var deny *denyError
		if errors.As(err, &deny) {
			return p.oauthError(ctx, "token", fosite.ErrInvalidGrant.WithHint(deny.Message))
		}
		return p.oauthError(ctx, "token", err)
	}
	sess.Claims.Extra = userClaims(u, ar.GetGrantedScopes(), sess.RequestedIDTokenClaims)
	maps.Copy(sess.Claims.Extra, rules.IDToken)
	if sess.AccessClaims == nil {
		sess.AccessClaims = &jwt.JWTClaims{}
	}
	sess.AccessClaims.Extra = rules.AccessToken
	return nil
}

// tokenGrant returns the session and client of a token request fosite has
// validated.
func (p *Provider) tokenGrant(ctx context.Context, ar fosite.AccessRequester) (*session, fositeClient, error) {
	sess, err := sessionFrom(ar)
	if err != nil {
		return nil, fositeClient{}, p.oauthError(ctx, "token", &internalError{err})
	}
	c, ok := ar.GetClient().(fositeClient)
	if !ok {
		return nil, fositeClient{}, p.oauthError(ctx, "token", &internalError{errors.New("provider: unexpected client type")})
	}
	return sess, c, nil
}

// repeated returns the name of a parameter given more than once, or "".
// resource may be (RFC 8707 §2).
func repeated(form url.Values) string {
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return k
		}
	}
	return ""
}

// checkForm refuses anything but a form POST.
func checkForm(r *http.Request) *engine.Error {
	if r.Method != http.MethodPost {
		return &engine.Error{Code: engine.CodeInvalidRequest, Description: "The endpoint accepts only POST.", Status: http.StatusMethodNotAllowed}
	}
	if ct := r.Header.Get("Content-Type"); ct == formType {
		return nil // what ParseMediaType would accept, without its parameter map
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formType {
		return &engine.Error{Code: engine.CodeInvalidRequest, Description: "The request body must be application/x-www-form-urlencoded.", Status: http.StatusBadRequest}
	}
	return nil
}

// formType is the media type of a form POST.
const formType = "application/x-www-form-urlencoded"

// parseForm parses a form POST, refusing anything else. Once it has
// succeeded, calling it again costs nothing and succeeds.
func parseForm(r *http.Request) *engine.Error {
	if err := checkForm(r); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return &engine.Error{Code: engine.CodeInvalidRequest, Description: "The request body could not be parsed.", Status: http.StatusBadRequest}
	}
	return nil
}

// revoke serves a revocation request (RFC 7009). Revoking a refresh token
// revokes the access tokens of its grant too. An unknown token is not an
// error (RFC 7009 §2.2). On failure it returns an *engine.Error.
func (p *Provider) revoke(ctx context.Context, r *http.Request) (err error) {
	ctx, span := p.endpoint(ctx, r, "revoke")
	defer span.End()
	defer p.failed(span, &err)
	if _, _, err := clientCredentials(r); err != nil {
		return err
	}
	ctx = withMemo(ctx)
	if err := p.equalizeClientAuth(ctx, r, "revoke"); err != nil {
		return err
	}
	if err := p.oauth2.NewRevocationRequest(ctx, r); err != nil {
		// fosite's invalid_client for an unknown client wraps the store's
		// not-found: it is a refusal, not an unknown token (which would
		// answer 200 and tell unknown client IDs from known ones).
		if fosite.ErrorToRFC6749Error(err).ErrorField == fosite.ErrInvalidClient.ErrorField {
			return p.oauthError(ctx, "revoke", err)
		}
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, fosite.ErrInactiveToken) {
			return nil
		}
		return p.oauthError(ctx, "revoke", err)
	}
	p.revoked(ctx, r)
	return nil
}

// introspect serves an introspection request (RFC 7662). Unlike fosite's
// default, which accepts any valid access token as the caller's credential,
// only a confidential client registered with [store.Client.Introspect] may
// call it, authenticating with HTTP Basic (client_secret_basic) or in the
// form (client_secret_post). It returns the JSON members of the response.
// On failure it returns an *engine.Error.
func (p *Provider) introspect(ctx context.Context, r *http.Request) (map[string]any, error) {
	ctx, span := p.endpoint(ctx, r, "introspect")
	defer span.End()
	if err := parseForm(r); err != nil {
		return nil, err
	}
	if err := p.authenticateResourceServer(ctx, r); err != nil {
		return nil, err
	}
	token := r.PostForm.Get("token")
	if token == "" {
		return nil, &engine.Error{Code: engine.CodeInvalidRequest, Description: "The token parameter is missing.", Status: http.StatusBadRequest}
	}
	use, ar, err := p.oauth2.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), newSession())
	if err != nil {
		var internal *internalError
		if errors.As(err, &internal) {
			return nil, p.oauthError(ctx, "introspect", err)
		}
		return map[string]any{"active": false}, nil
	}
	out := map[string]any{
		"active":     true,
		"iss":        p.cfg.Issuer,
		"client_id":  ar.GetClient().GetID(),
		"scope":      strings.Join(ar.GetGrantedScopes(), " "),
		"iat":        ar.GetRequestedAt().Unix(),
		"token_type": "Bearer",
	}
	if use == fosite.RefreshToken {
		out["token_type"] = "refresh_token"
	}
	if sess, err := sessionFrom(ar); err == nil {
		if sess.Subject != "" {
			out["sub"] = sess.Subject
		}
		if sess.Username != "" {
			out["username"] = sess.Username
		}
		if exp := sess.GetExpiresAt(fosite.TokenType(use)); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
		// RFC 9449 §6.2: the key a token is bound to. A confidential
		// client's refresh tokens are not (§5).
		if sess.JKT != "" && (use == fosite.AccessToken || ar.GetClient().IsPublic()) {
			out["cnf"] = map[string]any{"jkt": sess.JKT}
			if use == fosite.AccessToken {
				out["token_type"] = "DPoP"
			}
		}
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	}
	return out, nil
}

// authenticateResourceServer checks the caller of the introspection endpoint.
func (p *Provider) authenticateResourceServer(ctx context.Context, r *http.Request) *engine.Error {
	id, secret, _ := clientCredentials(r)
	unauthorized := &engine.Error{Code: engine.CodeInvalidClient, Description: "Client authentication failed: introspection needs a confidential client allowed to introspect.", Status: http.StatusUnauthorized}
	if id == "" || secret == "" {
		return unauthorized
	}
	c, err := p.clients.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as for a known client, so that client ids
		// cannot be probed by timing.
		_, _ = store.CheckSecret(p.dummyHash(), secret)
		return unauthorized
	} else if err != nil {
		return p.oauthError(ctx, "introspect", &internalError{err})
	}
	if c.Public() {
		_, _ = store.CheckSecret(p.dummyHash(), secret) // as for a confidential client
		return unauthorized
	}
	ok, err := store.CheckSecret(c.SecretHash, secret)
	if err != nil {
		return p.oauthError(ctx, "introspect", &internalError{err})
	}
	// Check the permission only after the secret, so that it reveals
	// nothing to a caller who does not hold it.
	if !ok || !c.Introspect {
		return unauthorized
	}
	return nil
}

// clientCredentials parses a form POST and returns the client credentials
// it carries: HTTP Basic if present (form-encoded, RFC 6749 §2.3.1), else
// client_id and client_secret in the form, as fosite reads them.
func clientCredentials(r *http.Request) (id, secret string, err *engine.Error) {
	if err := parseForm(r); err != nil {
		return "", "", err
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), nil
	}
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	if err1 != nil || err2 != nil {
		return "", "", &engine.Error{Code: engine.CodeInvalidRequest, Description: "The client credentials in the Authorization header are not form-encoded (RFC 6749 §2.3.1).", Status: http.StatusBadRequest}
	}
	return id, secret, nil
}

// equalizeClientAuth makes client authentication cost the same whatever
// the client, before fosite authenticates it: fosite refuses an unknown
// client at once, returns a public one without looking at a secret, and
// spends an argon2id check on a confidential one, so the time of a refusal
// would tell which client IDs exist. Here a request that presents a secret
// costs one secret check: fosite's for a confidential client, one against
// a dummy hash for an unknown or public one. A request without a secret
// costs none: a confidential client is refused at once (fosite would check
// the empty secret against its hash).
func (p *Provider) equalizeClientAuth(ctx context.Context, r *http.Request, op string) *engine.Error {
	id, secret, _ := clientCredentials(r)
	if id == "" {
		return nil // fosite refuses it
	}
	fc, err := (&fositeStorage{p: p}).GetClient(ctx, id) // remembered for fosite's own look-up
	switch {
	case errors.Is(err, fosite.ErrNotFound):
		if secret != "" {
			_, _ = store.CheckSecret(p.dummyHash(), secret)
		}
	case err != nil:
		// fosite looks it up again and answers server_error.
	case fc.IsPublic():
		if secret != "" {
			_, _ = store.CheckSecret(p.dummyHash(), secret)
		}
	case secret == "":
		return p.oauthError(ctx, op, fosite.ErrInvalidClient.WithHint("The client must authenticate with its secret."))
	}
	return nil
}
