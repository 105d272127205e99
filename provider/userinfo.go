package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/httpauth"
	"github.com/pixieauth/pixie/internal/paths"
	"github.com/pixieauth/pixie/store"
)

// userInfoClaims returns the claims of the user an access token was issued for
// (OIDC Core §5.3): sub always, the claims of the granted scopes (profile,
// email, address, phone) and those the claims request parameter asked for
// at userinfo (§5.5), when the user has them. The token must carry the
// openid scope. On failure it returns an *engine.Error: invalid_token (401) for a missing, unknown, expired or
// revoked token, insufficient_scope (403) for a token without openid.
//
// The answer for a token it has verified is remembered for
// Config.UserInfoCacheTTL (never past the token's expiry): until then, a
// revocation on another replica, the deletion of the token's client or
// user, and a change of the user's profile may not show. A revocation by
// this provider shows at once. The map is the caller's. A DPoP-bound token
// is refused (invalid_token): the proof it needs comes with a request, to
// userInfoJSON.
func (p *Provider) userInfoClaims(ctx context.Context, accessToken string) (map[string]any, error) {
	e, err := p.userInfoAnswer(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	if e.jkt != "" {
		// Only a request can carry the proof: see UserInfoJSON.
		return nil, &engine.Error{Code: engine.CodeInvalidToken, Description: "The access token is bound to a DPoP key.", Status: http.StatusUnauthorized}
	}
	// The claims are strings, booleans and the address object: JSON gives
	// them back as they were.
	var claims map[string]any
	if err := json.Unmarshal(e.body, &claims); err != nil {
		return nil, p.oauthError(ctx, "userinfo", &internalError{fmt.Errorf("provider: decode userinfo: %w", err)})
	}
	return claims, nil
}

// userInfoJSON serves a request to the userinfo endpoint: it takes the
// access token from the Authorization header (Bearer, RFC 6750 §2.1, or
// DPoP with a proof of the token's key, RFC 9449 §7.1) or from the
// access_token field of a form POST (RFC 6750 §2.2; the caller bounds the
// body), and returns the claims of userInfoClaims, encoded as the endpoint
// sends them: a JSON object (as [json.Marshal] encodes the map) and a
// newline. The slice is the caller's. A DPoP-bound token is refused unless
// it comes with the DPoP scheme and a valid proof; an unbound one with the
// DPoP scheme too. On failure it returns an *engine.Error whose WWWAuthenticate
// is the challenge to send.
func (p *Provider) userInfoJSON(ctx context.Context, r *http.Request) (_ []byte, err error) {
	ctx, span := p.endpoint(ctx, r, "userinfo")
	defer span.End()
	defer p.failed(span, &err)
	scheme, token, err := userInfoToken(r)
	var e *userInfoEntry
	if err == nil {
		e, err = p.userInfoAnswer(ctx, token)
	}
	if err == nil {
		err = p.checkResourceProof(ctx, r, scheme, token, e.jkt)
	}
	if err != nil {
		var pe *engine.Error
		if errors.As(err, &pe) && pe.Status < 500 && pe.WWWAuthenticate == "" {
			switch {
			case scheme == "DPoP":
				pe.WWWAuthenticate = dpopChallenge(pe)
			case r.Header.Get("Authorization") == "" && token == "" && pe.Code != engine.CodeInvalidRequest:
				// RFC 6750 §3.1: no error code for a request without credentials.
				pe.WWWAuthenticate = httpauth.Challenge("Bearer", "realm", "pixie")
			default:
				pe.WWWAuthenticate = httpauth.Challenge("Bearer", "error", pe.Code, "error_description", pe.Description)
			}
		}
		return nil, err
	}
	return bytes.Clone(e.body), nil
}

// checkResourceProof enforces a token's DPoP binding at /userinfo (RFC
// 9449 §7): a bound token needs the DPoP scheme and a proof of its key for
// this request and this token; the DPoP scheme needs a bound token.
func (p *Provider) checkResourceProof(ctx context.Context, r *http.Request, scheme, token, jkt string) error {
	invalid := func(description string) error {
		e := &engine.Error{Code: engine.CodeInvalidToken, Description: description, Status: http.StatusUnauthorized}
		e.WWWAuthenticate = dpopChallenge(e)
		return e
	}
	switch {
	case jkt == "" && scheme != "DPoP":
		return nil
	case jkt == "":
		return invalid("The access token is not bound to a DPoP key: send it with the Bearer scheme.")
	case scheme != "DPoP":
		return invalid("The access token is bound to a DPoP key: send it with the DPoP scheme and a proof (RFC 9449 §7.1).")
	}
	_, err := p.dpopResource.Check(ctx, r.Header.Values("DPoP"), dpop.Request{
		Method: r.Method, URL: p.cfg.Issuer + paths.UserInfo, AccessToken: token, Thumbprint: jkt,
	})
	var de *dpop.Error
	switch {
	case errors.As(err, &de):
		e := &engine.Error{Code: de.Code, Description: de.Description, Status: http.StatusUnauthorized, Cause: err}
		e.WWWAuthenticate = dpopChallenge(e)
		p.tel.DPoPRejection(ctx, "userinfo", e.Code)
		p.log().DebugContext(ctx, "request refused", "op", "userinfo", "error_code", e.Code, "description", e.Description)
		return e
	case err != nil:
		return p.oauthError(ctx, "userinfo", &internalError{err})
	}
	return nil
}

// userInfoToken returns the scheme ("Bearer", "DPoP", or "" for the form
// field or no token) and the access token of a userinfo request. For a
// POST whose body is application/x-www-form-urlencoded it reads the
// access_token field too. A token sent both ways, or the field given twice,
// is invalid_request (RFC 6750 §2, §3.1). Other bodies are not read.
func userInfoToken(r *http.Request) (scheme, token string, err error) {
	scheme, token = authorizationToken(r)
	if r.Method != http.MethodPost {
		return scheme, token, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return scheme, token, nil
	}
	if err := r.ParseForm(); err != nil {
		return "", "", &engine.Error{Code: engine.CodeInvalidRequest, Description: "The request body could not be parsed.", Status: http.StatusBadRequest}
	}
	vs, ok := r.PostForm["access_token"]
	switch {
	case !ok:
		return scheme, token, nil
	case len(vs) > 1:
		return "", "", &engine.Error{Code: engine.CodeInvalidRequest, Description: "The parameter access_token is included more than once.", Status: http.StatusBadRequest}
	case r.Header.Get("Authorization") != "":
		return "", "", &engine.Error{Code: engine.CodeInvalidRequest, Description: "The access token must be sent in one way only, not both in the Authorization header and in the body (RFC 6750 §2).", Status: http.StatusBadRequest}
	}
	return "", vs[0], nil
}

// userInfoAnswer returns the userinfo answer for the access token, from
// the cache or verified afresh (and then cached).
func (p *Provider) userInfoAnswer(ctx context.Context, accessToken string) (*userInfoEntry, error) {
	invalid := &engine.Error{Code: engine.CodeInvalidToken, Description: "The access token is missing, expired, revoked or invalid.", Status: http.StatusUnauthorized}
	if accessToken == "" {
		return nil, invalid
	}
	var key [sha256.Size]byte
	if p.userInfo != nil {
		key = userInfoKey(accessToken)
		if e := p.userInfo.get(key); e != nil {
			return e, nil
		}
	}
	epoch, start := p.userInfo.begin(), p.now()
	ar, err := p.userInfoGrant(ctx, accessToken, invalid)
	if err != nil {
		return nil, err
	}
	sess, err := sessionFrom(ar)
	if err != nil {
		return nil, p.oauthError(ctx, "userinfo", &internalError{err})
	}
	u, err := p.users.User(ctx, sess.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid
	} else if err != nil {
		return nil, p.oauthError(ctx, "userinfo", &internalError{err})
	}
	claims := userClaims(u, ar.GetGrantedScopes(), sess.RequestedUserInfoClaims)
	claims["sub"] = u.Subject
	body, err := json.Marshal(claims)
	if err != nil {
		return nil, p.oauthError(ctx, "userinfo", &internalError{fmt.Errorf("provider: encode userinfo: %w", err)})
	}
	e := &userInfoEntry{
		key:       key,
		requestID: ar.GetID(),
		stored:    start,
		// JWT access tokens carry their expiry in whole seconds.
		expires: sess.GetExpiresAt(fosite.AccessToken).Truncate(time.Second),
		body:    append(body, '\n'),
		jkt:     sess.JKT,
	}
	p.userInfo.put(epoch, e)
	return e, nil
}

// userInfoGrant looks up the access token's grant, refusing a token that
// may not read the userinfo; invalid is the answer to one that is not valid.
func (p *Provider) userInfoGrant(ctx context.Context, accessToken string, invalid *engine.Error) (fosite.AccessRequester, error) {
	use, ar, err := p.oauth2.IntrospectToken(ctx, accessToken, fosite.AccessToken, newSession())
	if err != nil {
		var internal *internalError
		if errors.As(err, &internal) {
			return nil, p.oauthError(ctx, "userinfo", err)
		}
		return nil, invalid
	}
	if use != fosite.AccessToken {
		// fosite's introspection also validates refresh tokens (the hint
		// only orders its attempts). A refresh token is a credential for
		// the token endpoint alone, where a confidential client must
		// authenticate to use it: here it would bypass that.
		return nil, invalid
	}
	if !ar.GetGrantedAudience().Has(p.cfg.Issuer) {
		// A token for an API only (RFC 9068 §4: a resource server checks aud).
		return nil, invalid
	}
	if !ar.GetGrantedScopes().Has("openid") {
		return nil, &engine.Error{Code: engine.CodeInsufficientScope, Description: "The access token was not granted the openid scope.", Status: http.StatusForbidden}
	}
	return ar, nil
}

// authorizationToken returns the scheme ("Bearer" or "DPoP", RFC 9449 §7.1;
// matched case-insensitively) and the b64token of the Authorization header,
// or "", "" when there is none or it is malformed.
func authorizationToken(r *http.Request) (scheme, token string) {
	scheme, token, ok := httpauth.Credentials(r.Header.Get("Authorization"))
	switch {
	case !ok:
		return "", ""
	case strings.EqualFold(scheme, "Bearer"):
		return "Bearer", token
	case strings.EqualFold(scheme, "DPoP"):
		return "DPoP", token
	}
	return "", ""
}
