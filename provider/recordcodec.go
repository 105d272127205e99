package provider

import (
	"slices"
	"strconv"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// The record head (storedRequest) and the compact session are written by
// the append functions below rather than by json.Marshal, which costs an
// allocation or two per member through reflection. What they write is what
// json.Marshal writes, but for the escaping of <, > and & (left as they
// are, as appendJSONString says): decoded by encoding/json, as older pixie
// versions sharing the database do, it gives the same value
// (TestRecordCodecEquivalence, FuzzRecordHead, FuzzSessionCodec).

// appendJSONTime appends t as encoding/json writes a time.Time: quoted
// RFC 3339 with nanoseconds, and the same error for a year outside
// 0..9999.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

// appendJSONList appends l as a JSON array of strings, null when nil.
func appendJSONList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendMember appends ,"name": (name is a literal that needs no escaping).
func appendMember(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendJSON appends sr as json.Marshal writes it: members in field order,
// the omitempty ones left out when empty, the form's parameters sorted.
func (sr *storedRequest) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, sr.ID)
	b = appendMember(b, "requested_at")
	b, err := appendJSONTime(b, sr.RequestedAt)
	if err != nil {
		return nil, err
	}
	for _, l := range [...]struct {
		name string
		list []string
	}{
		{"requested_scope", sr.RequestedScope}, {"granted_scope", sr.GrantedScope},
		{"requested_audience", sr.RequestedAudience}, {"granted_audience", sr.GrantedAudience},
	} {
		if len(l.list) > 0 {
			b = appendJSONList(appendMember(b, l.name), l.list)
		}
	}
	if len(sr.Form) > 0 {
		var namesBuf [16]string
		names := namesBuf[:0]
		for k := range sr.Form {
			names = append(names, k)
		}
		slices.Sort(names)
		b = append(appendMember(b, "form"), '{')
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = appendJSONList(append(b, ':'), sr.Form[k])
		}
		b = append(b, '}')
	}
	if sr.Bundle {
		b = append(b, `,"bundle":true`...)
	}
	if sr.OIDC {
		b = append(b, `,"oidc":true`...)
	}
	return append(b, '}'), nil
}

// objWriter appends the members of a JSON object, each left out when zero
// as omitzero does, keeping the first error.
type objWriter struct {
	b     []byte
	err   error
	first bool
}

func (o *objWriter) name(n string) {
	if o.first {
		o.b = append(o.b, '"')
		o.first = false
	} else {
		o.b = append(o.b, ',', '"')
	}
	o.b = append(o.b, n...)
	o.b = append(o.b, '"', ':')
}

func (o *objWriter) open(n string) {
	o.name(n)
	o.b = append(o.b, '{')
	o.first = true
}

func (o *objWriter) close() {
	o.b = append(o.b, '}')
	o.first = false
}

func (o *objWriter) str(n, v string) {
	if v != "" {
		o.name(n)
		o.b = appendJSONString(o.b, v)
	}
}

func (o *objWriter) time(n string, t time.Time) {
	if !t.IsZero() && o.err == nil {
		o.name(n)
		o.b, o.err = appendJSONTime(o.b, t)
	}
}

func (o *objWriter) list(n string, l []string) {
	if l != nil {
		o.name(n)
		o.b = appendJSONList(o.b, l)
	}
}

func (o *objWriter) object(n string, m map[string]any) {
	if m != nil && o.err == nil {
		o.name(n)
		o.b, o.err = appendJSONObject(o.b, m)
	}
}

// headers appends a *jwt.Headers: {"extra":…}, its map null when nil.
func (o *objWriter) headers(n string, h *jwt.Headers) {
	if h != nil {
		o.open(n)
		o.name("extra")
		if h.Extra == nil {
			o.b = append(o.b, "null"...)
		} else if o.err == nil {
			o.b, o.err = appendJSONObject(o.b, h.Extra)
		}
		o.close()
	}
}

// expiries appends the session's expiry map, sorted by token type.
func (o *objWriter) expiries(n string, m map[fosite.TokenType]time.Time) {
	if m == nil {
		return
	}
	var keysBuf [8]fosite.TokenType
	keys := keysBuf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o.open(n)
	for _, k := range keys {
		if o.err != nil {
			return
		}
		if o.first {
			o.first = false
		} else {
			o.b = append(o.b, ',')
		}
		o.b = append(appendJSONString(o.b, string(k)), ':')
		o.b, o.err = appendJSONTime(o.b, m[k])
	}
	o.close()
}

// appendCompact appends s in the compact form, as json.Marshal writes
// s.toStored(), without building it.
func (s *session) appendCompact(b []byte) ([]byte, error) {
	o := &objWriter{b: append(b, compactPrefix...)}
	if c := s.Claims; c != nil {
		o.open("c")
		o.str("jti", c.JTI)
		o.str("iss", c.Issuer)
		o.str("sub", c.Subject)
		o.list("aud", c.Audience)
		o.str("nonce", c.Nonce)
		o.time("exp", c.ExpiresAt)
		o.time("iat", c.IssuedAt)
		o.time("rat", c.RequestedAt)
		o.time("auth_time", c.AuthTime)
		o.str("at_hash", c.AccessTokenHash)
		o.str("acr", c.AuthenticationContextClassReference)
		o.list("amr", c.AuthenticationMethodsReferences)
		o.str("c_hash", c.CodeHash)
		o.object("ext", c.Extra)
		o.close()
	}
	o.headers("h", s.Headers)
	o.expiries("e", s.ExpiresAt)
	o.str("u", s.Username)
	o.str("s", s.DefaultSession.Subject)
	s.appendAccess(o)
	o.headers("ah", s.AccessHeader)
	o.list("ic", s.RequestedIDTokenClaims)
	o.list("uc", s.RequestedUserInfoClaims)
	o.str("k", s.JKT)
	if o.err != nil {
		return nil, o.err
	}
	return append(o.b, '}'), nil
}

func (s *session) appendAccess(o *objWriter) {
	c := s.AccessClaims
	if c == nil {
		return
	}
	o.open("a")
	o.str("sub", c.Subject)
	o.str("iss", c.Issuer)
	o.list("aud", c.Audience)
	o.str("jti", c.JTI)
	o.time("iat", c.IssuedAt)
	o.time("nbf", c.NotBefore)
	o.time("exp", c.ExpiresAt)
	o.list("scope", c.Scope)
	o.object("ext", c.Extra)
	if c.ScopeField != 0 {
		o.name("sf")
		o.b = strconv.AppendInt(o.b, int64(c.ScopeField), 10)
	}
	o.close()
}
