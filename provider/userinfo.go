package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/store"
)

// UserInfo returns the claims of the user an access token was issued for
// (OIDC Core §5.3): sub always, the claims of the granted scopes (profile,
// email, address, phone) and those the claims request parameter asked for
// at userinfo (§5.5), when the user has them. The token must carry the
// openid scope. On failure it returns an *Error: invalid_token (401) for a missing, unknown, expired or
// revoked token, insufficient_scope (403) for a token without openid.
//
// The answer for a token it has verified is remembered for
// Config.UserInfoCacheTTL (never past the token's expiry): until then, a
// revocation on another replica, the deletion of the token's client or
// user, and a change of the user's profile may not show. A revocation by
// this provider shows at once. The map is the caller's.
func (p *Provider) UserInfo(ctx context.Context, accessToken string) (map[string]any, error) {
	e, err := p.userInfoAnswer(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	// The claims are strings, booleans and the address object: JSON gives
	// them back as they were.
	var claims map[string]any
	if err := json.Unmarshal(e.body, &claims); err != nil {
		return nil, p.oauthError(ctx, "userinfo", &internalError{fmt.Errorf("provider: decode userinfo: %w", err)})
	}
	return claims, nil
}

// UserInfoJSON is [Provider.UserInfo] with the claims encoded as the
// userinfo endpoint sends them: a JSON object (as [json.Marshal] encodes
// the map) and a newline. The slice is the caller's.
func (p *Provider) UserInfoJSON(ctx context.Context, accessToken string) ([]byte, error) {
	e, err := p.userInfoAnswer(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(e.body), nil
}

// userInfoAnswer returns the userinfo answer for the access token, from
// the cache or verified afresh (and then cached).
func (p *Provider) userInfoAnswer(ctx context.Context, accessToken string) (*userInfoEntry, error) {
	invalid := &Error{Code: ErrCodeInvalidToken, Description: "The access token is missing, expired, revoked or invalid.", Status: http.StatusUnauthorized}
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
		return nil, &Error{Code: ErrCodeInsufficientScope, Description: "The access token was not granted the openid scope.", Status: http.StatusForbidden}
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
	}
	p.userInfo.put(epoch, e)
	return e, nil
}

// BearerToken extracts the access token from an Authorization: Bearer header
// (RFC 6750 §2.1); the scheme is case-insensitive. It returns "" when there is
// none or the header is malformed.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	token = strings.Trim(token, " \t")
	if !isB64Token(token) {
		return ""
	}
	return token
}

// isB64Token reports whether s is an RFC 6750 §2.1 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
