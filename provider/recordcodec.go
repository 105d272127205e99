package provider

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// decodeHead is json.Unmarshal(head, sr) for a zero sr. A head as
// appendJSON writes it (members in its order, strings without escapes, in
// valid UTF-8) is read directly, its strings sharing one copy of head;
// anything else is left to encoding/json, so that both read any head the
// same (FuzzDecodeHead).
func decodeHead(head []byte, sr *storedRequest) error {
	d := headDecoder{data: head, str: string(head)}
	if d.request(sr) {
		return nil
	}
	*sr = storedRequest{}
	return json.Unmarshal(head, sr)
}

// headDecoder reads a record head as appendJSON writes it. Each method
// reports whether the input went on as expected.
type headDecoder struct {
	data []byte
	str  string // data, whose substrings the strings read are
	pos  int
	all  []string // the lists' strings, one backing array
}

// lit consumes s if the input goes on with it.
func (d *headDecoder) lit(s string) bool {
	if !strings.HasPrefix(d.str[d.pos:], s) {
		return false
	}
	d.pos += len(s)
	return true
}

// string reads a JSON string without escapes or control characters, in
// valid UTF-8: one that encoding/json reads as it is.
func (d *headDecoder) string() (string, bool) {
	if !d.lit(`"`) {
		return "", false
	}
	start := d.pos
	for ; d.pos < len(d.str); d.pos++ {
		switch c := d.str[d.pos]; {
		case c == '"':
			s := d.str[start:d.pos]
			d.pos++
			return s, utf8.ValidString(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// list reads a non-empty array of strings into d.all, and returns where
// in it they are.
func (d *headDecoder) list() (start, end int, ok bool) {
	if !d.lit(`[`) {
		return 0, 0, false
	}
	start = len(d.all)
	for {
		s, ok := d.string()
		if !ok {
			return 0, 0, false
		}
		d.all = append(d.all, s)
		if d.lit(`]`) {
			return start, len(d.all), true
		}
		if !d.lit(`,`) {
			return 0, 0, false
		}
	}
}

// form reads a non-empty object of string arrays with its names in
// increasing order (so none repeats), as appendJSON writes a form; the
// arrays' places in d.all are in spans, after the names.
func (d *headDecoder) form(names []string, spans [][2]int) ([]string, [][2]int, bool) {
	if !d.lit(`{`) {
		return nil, nil, false
	}
	for {
		k, ok := d.string()
		if !ok || !d.lit(`:`) || len(names) > 0 && k <= names[len(names)-1] {
			return nil, nil, false
		}
		start, end, ok := d.list()
		if !ok {
			return nil, nil, false
		}
		names, spans = append(names, k), append(spans, [2]int{start, end})
		if d.lit(`}`) {
			return names, spans, true
		}
		if !d.lit(`,`) {
			return nil, nil, false
		}
	}
}

// request reads the whole head into sr.
func (d *headDecoder) request(sr *storedRequest) bool {
	var ok bool
	if !d.lit(`{"id":`) {
		return false
	}
	if sr.ID, ok = d.string(); !ok || !d.lit(`,"requested_at":"`) {
		return false
	}
	end := strings.IndexByte(d.str[d.pos:], '"')
	if end < 0 || sr.RequestedAt.UnmarshalText(d.data[d.pos:d.pos+end]) != nil {
		return false
	}
	d.pos += end + 1
	d.all = make([]string, 0, 24)
	var spans [4][2]int
	for i, name := range [...]string{`,"requested_scope":`, `,"granted_scope":`, `,"requested_audience":`, `,"granted_audience":`} {
		spans[i][0] = -1
		if d.lit(name) {
			if spans[i][0], spans[i][1], ok = d.list(); !ok {
				return false
			}
		}
	}
	var namesBuf [16]string
	var formBuf [16][2]int
	names, form := namesBuf[:0], formBuf[:0]
	if d.lit(`,"form":`) {
		if names, form, ok = d.form(names, form); !ok {
			return false
		}
	}
	sr.Bundle = d.lit(`,"bundle":true`)
	sr.OIDC = d.lit(`,"oidc":true`)
	if !d.lit(`}`) || d.pos != len(d.str) {
		return false
	}
	part := func(span [2]int) []string {
		if span[0] < 0 {
			return nil
		}
		return d.all[span[0]:span[1]:span[1]]
	}
	sr.RequestedScope, sr.GrantedScope = part(spans[0]), part(spans[1])
	sr.RequestedAudience, sr.GrantedAudience = part(spans[2]), part(spans[3])
	if len(names) > 0 {
		sr.Form = make(url.Values, len(names))
		for i, k := range names {
			sr.Form[k] = part(form[i])
		}
	}
	return true
}
