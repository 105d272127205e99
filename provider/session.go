package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// session is what every grant carries, serialized with it: the ID token's
// claims (openid.DefaultSession) and, for RFC 9068 access tokens, the access
// token's claims and header.
type session struct {
	openid.DefaultSession
	AccessClaims *jwt.JWTClaims `json:"access_claims,omitempty"`
	AccessHeader *jwt.Headers   `json:"access_header,omitempty"`
	// RequestedIDTokenClaims and RequestedUserInfoClaims are the standard
	// claims the claims request parameter asked for individually (OIDC Core
	// §5.5), released besides those of the granted scopes in every ID
	// token of the grant and at userinfo.
	RequestedIDTokenClaims  []string `json:"id_token_claims_requested,omitempty"`
	RequestedUserInfoClaims []string `json:"userinfo_claims_requested,omitempty"`
	// JKT is the RFC 7638 thumbprint of the DPoP key (RFC 9449) the grant is
	// bound to: from dpop_jkt at /authorize until the code is redeemed,
	// then that of the proof of the last token request. Access tokens
	// issued with it carry cnf.jkt, and a public client's refresh token
	// needs a proof of that key. Empty: bearer tokens.
	JKT string `json:"jkt,omitempty"`
}

var (
	_ openid.Session             = (*session)(nil)
	_ oauth2.JWTSessionContainer = (*session)(nil)
)

// newSession returns an empty session. The session and the four structs it
// points to are allocated as one block: one allocation instead of five, on
// every authorization and token request.
func newSession() *session {
	b := &struct {
		s             session
		claims        jwt.IDTokenClaims
		headers       jwt.Headers
		accessClaims  jwt.JWTClaims
		accessHeaders jwt.Headers
	}{}
	b.s.Claims, b.s.Headers, b.s.AccessClaims, b.s.AccessHeader = &b.claims, &b.headers, &b.accessClaims, &b.accessHeaders
	return &b.s
}

// GetJWTClaims returns the access token's claims.
func (s *session) GetJWTClaims() jwt.JWTClaimsContainer { return s.AccessClaims }

// GetJWTHeader returns the access token's header.
func (s *session) GetJWTHeader() *jwt.Headers { return s.AccessHeader }

// Clone returns a deep copy.
func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*session)
}

// sessionFrom extracts pixie's session from a fosite requester.
func sessionFrom(r fosite.Requester) (*session, error) {
	s, ok := r.GetSession().(*session)
	if !ok || s.Claims == nil {
		return nil, fmt.Errorf("provider: unexpected session type %T", r.GetSession())
	}
	return s, nil
}

// accessTokenStrategy issues RFC 9068 JWT access tokens: fosite's JWT
// strategy, with what it leaves out. Each token gets its own iat and jti
// (fosite would keep those of the first token of the grant across
// refreshes), the lifespan of the API it is for, and the typ at+jwt,
// client_id and auth_time the profile requires. Refresh tokens and codes stay
// opaque HMAC tokens.
type accessTokenStrategy struct {
	*oauth2.DefaultJWTStrategy // Config.AccessTokenAlg's; it validates tokens of every algorithm
	byAlg                      map[string]*oauth2.DefaultJWTStrategy
	p                          *Provider
}

func (a *accessTokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	s, err := sessionFrom(r)
	if err != nil {
		return "", "", err
	}
	now := time.Now().UTC()
	if s.AccessClaims == nil {
		s.AccessClaims = &jwt.JWTClaims{}
	}
	if s.AccessHeader == nil {
		s.AccessHeader = &jwt.Headers{}
	}
	s.AccessClaims.IssuedAt, s.AccessClaims.JTI, s.AccessClaims.NotBefore = now, "", time.Time{}
	s.AccessClaims.Subject = s.Subject
	s.AccessClaims.Add("client_id", r.GetClient().GetID())
	if !s.Claims.AuthTime.IsZero() {
		s.AccessClaims.Add("auth_time", s.Claims.AuthTime.Unix())
	}
	s.AccessHeader.Add("typ", "at+jwt")
	if s.JKT != "" {
		s.AccessClaims.Add("cnf", map[string]any{"jkt": s.JKT}) // RFC 9449 §6.1
	} else {
		delete(s.AccessClaims.Extra, "cnf")
	}
	if lifespan := a.p.apiLifespan(r.GetGrantedAudience()); lifespan > 0 {
		s.SetExpiresAt(fosite.AccessToken, now.Add(lifespan).Round(time.Second))
	}
	return a.byAlg[a.p.accessTokenAlg(r.GetGrantedAudience())].GenerateAccessToken(ctx, r)
}
