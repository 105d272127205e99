package provider

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// A session is stored in the compact form below: fosite's structs written
// by encoding/json spell out every zero member ("jti":"", "exp":
// "0001-01-01T00:00:00Z", …), which was half of each record, and every byte
// a record holds is stored, written to disk and decoded on each read. The
// compact form has the same members under short names, each left out when
// zero (omitzero: a nil slice or map is left out, an empty one kept), and
// begins with {"v":2 so that records written before it, in fosite's form,
// still decode (see UnmarshalJSON).
type storedSession struct {
	V            int                            `json:"v"`
	Claims       *storedIDClaims                `json:"c,omitzero"`
	Headers      *jwt.Headers                   `json:"h,omitzero"`
	ExpiresAt    map[fosite.TokenType]time.Time `json:"e,omitzero"`
	Username     string                         `json:"u,omitzero"`
	Subject      string                         `json:"s,omitzero"`
	AccessClaims *storedAccessClaims            `json:"a,omitzero"`
	AccessHeader *jwt.Headers                   `json:"ah,omitzero"`
	IDClaims     []string                       `json:"ic,omitzero"`
	UIClaims     []string                       `json:"uc,omitzero"`
	JKT          string                         `json:"k,omitzero"`
}

// storedIDClaims mirrors jwt.IDTokenClaims (TestSessionCodec fails when a
// field is added to it and not here).
type storedIDClaims struct {
	JTI         string         `json:"jti,omitzero"`
	Issuer      string         `json:"iss,omitzero"`
	Subject     string         `json:"sub,omitzero"`
	Audience    []string       `json:"aud,omitzero"`
	Nonce       string         `json:"nonce,omitzero"`
	ExpiresAt   time.Time      `json:"exp,omitzero"`
	IssuedAt    time.Time      `json:"iat,omitzero"`
	RequestedAt time.Time      `json:"rat,omitzero"`
	AuthTime    time.Time      `json:"auth_time,omitzero"`
	ATHash      string         `json:"at_hash,omitzero"`
	ACR         string         `json:"acr,omitzero"`
	AMR         []string       `json:"amr,omitzero"`
	CodeHash    string         `json:"c_hash,omitzero"`
	Extra       map[string]any `json:"ext,omitzero"`
}

// storedAccessClaims mirrors jwt.JWTClaims.
type storedAccessClaims struct {
	Subject    string                `json:"sub,omitzero"`
	Issuer     string                `json:"iss,omitzero"`
	Audience   []string              `json:"aud,omitzero"`
	JTI        string                `json:"jti,omitzero"`
	IssuedAt   time.Time             `json:"iat,omitzero"`
	NotBefore  time.Time             `json:"nbf,omitzero"`
	ExpiresAt  time.Time             `json:"exp,omitzero"`
	Scope      []string              `json:"scope,omitzero"`
	Extra      map[string]any        `json:"ext,omitzero"`
	ScopeField jwt.JWTScopeFieldEnum `json:"sf,omitzero"`
}

const sessionCodecVersion = 2

// compactPrefix begins every session stored in the compact form.
var compactPrefix = []byte(`{"v":2`)

// toStored returns s in the compact form. Its maps and slices are s's own.
func (s *session) toStored() *storedSession {
	st := &storedSession{
		V: sessionCodecVersion, Headers: s.Headers, ExpiresAt: s.ExpiresAt, Username: s.Username,
		Subject: s.DefaultSession.Subject, AccessHeader: s.AccessHeader,
		IDClaims: s.RequestedIDTokenClaims, UIClaims: s.RequestedUserInfoClaims, JKT: s.JKT,
	}
	if c := s.Claims; c != nil {
		st.Claims = &storedIDClaims{c.JTI, c.Issuer, c.Subject, c.Audience, c.Nonce, c.ExpiresAt, c.IssuedAt,
			c.RequestedAt, c.AuthTime, c.AccessTokenHash, c.AuthenticationContextClassReference,
			c.AuthenticationMethodsReferences, c.CodeHash, c.Extra}
	}
	if c := s.AccessClaims; c != nil {
		st.AccessClaims = &storedAccessClaims{c.Subject, c.Issuer, c.Audience, c.JTI, c.IssuedAt, c.NotBefore,
			c.ExpiresAt, c.Scope, c.Extra, c.ScopeField}
	}
	return st
}

// setStored sets s from its compact form.
func (s *session) setStored(st *storedSession) {
	s.Headers, s.ExpiresAt, s.Username, s.DefaultSession.Subject = st.Headers, st.ExpiresAt, st.Username, st.Subject
	s.AccessHeader, s.RequestedIDTokenClaims, s.RequestedUserInfoClaims = st.AccessHeader, st.IDClaims, st.UIClaims
	s.JKT = st.JKT
	if c := st.Claims; c != nil {
		s.Claims = &jwt.IDTokenClaims{JTI: c.JTI, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
			Nonce: c.Nonce, ExpiresAt: c.ExpiresAt, IssuedAt: c.IssuedAt, RequestedAt: c.RequestedAt,
			AuthTime: c.AuthTime, AccessTokenHash: c.ATHash, AuthenticationContextClassReference: c.ACR,
			AuthenticationMethodsReferences: c.AMR, CodeHash: c.CodeHash, Extra: c.Extra}
	}
	if c := st.AccessClaims; c != nil {
		s.AccessClaims = &jwt.JWTClaims{Subject: c.Subject, Issuer: c.Issuer, Audience: c.Audience, JTI: c.JTI,
			IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, ExpiresAt: c.ExpiresAt, Scope: c.Scope, Extra: c.Extra,
			ScopeField: c.ScopeField}
	}
}

// MarshalJSON writes the session in the compact form.
func (s *session) MarshalJSON() ([]byte, error) {
	return s.appendCompact(nil)
}

// sessionFields is session without its JSON methods: fosite's form.
type sessionFields session

// UnmarshalJSON reads either form into s. As encoding/json does, members
// absent from data leave s's as they are, and maps are merged into.
func (s *session) UnmarshalJSON(data []byte) error {
	if !bytes.HasPrefix(data, compactPrefix) {
		return json.Unmarshal(data, (*sessionFields)(s))
	}
	st := s.toStored()
	if err := json.Unmarshal(data, st); err != nil {
		return err
	}
	s.setStored(st)
	return nil
}

// appendSession appends json.Marshal(sess) to b, without encoding/json's
// second pass over what MarshalJSON returns.
func appendSession(b []byte, sess fosite.Session) ([]byte, error) {
	if s, ok := sess.(*session); ok {
		return s.appendCompact(b)
	}
	js, err := json.Marshal(sess)
	if err != nil {
		return nil, err
	}
	return append(b, js...), nil
}

// decodeSession is json.Unmarshal(data, sess), without encoding/json's
// validating pass before UnmarshalJSON.
func decodeSession(data []byte, sess fosite.Session) error {
	if s, ok := sess.(*session); ok {
		return s.UnmarshalJSON(data)
	}
	return json.Unmarshal(data, sess)
}
