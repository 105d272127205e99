package provider

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// marshalPlain is json.Marshal(v) without its escaping of <, > and &.
// The hand-written encoders' bytes differ from it only in also leaving
// U+2028 and U+2029 as they are (sameBytes).
func marshalPlain(t *testing.T, v any) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sameBytes reports whether got is want, where want may escape U+2028 and
// U+2029 (then only the decoded values are compared).
func sameBytes(got, want []byte) bool {
	return bytes.Equal(got, want) || bytes.Contains(want, []byte(`\u202`))
}

// checkHead holds sr.appendJSON to encoding/json: the same bytes (but for
// HTML escaping) or both an error, and, decoded by encoding/json into
// storedRequest as older versions do, the same value as json.Marshal's.
func checkHead(t *testing.T, sr *storedRequest) {
	t.Helper()
	got, err := sr.appendJSON(nil)
	want, werr := marshalPlain(t, sr)
	if (err != nil) != (werr != nil) {
		t.Fatalf("appendJSON error %v, encoding/json's %v", err, werr)
	}
	if err != nil {
		return
	}
	if !sameBytes(got, want) {
		t.Fatalf("appendJSON:\ngot  %s\nwant %s", got, want)
	}
	ref, _ := json.Marshal(sr)
	var fromNew, fromRef storedRequest
	if err := json.Unmarshal(got, &fromNew); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", got, err)
	}
	if err := json.Unmarshal(ref, &fromRef); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromNew, fromRef) {
		t.Fatalf("decoded:\ngot  %+v\nwant %+v", fromNew, fromRef)
	}
}

// checkSession holds s.appendCompact to json.Marshal(s.toStored()), the
// encoding it replaces: the same bytes (but for HTML escaping) or both an
// error, and the same value decoded by encoding/json into storedSession,
// and into a session (through UnmarshalJSON, as older versions read it).
func checkSession(t *testing.T, s *session) {
	t.Helper()
	got, err := s.appendCompact(nil)
	want, werr := marshalPlain(t, s.toStored())
	if (err != nil) != (werr != nil) {
		t.Fatalf("appendCompact error %v, encoding/json's %v", err, werr)
	}
	if err != nil {
		return
	}
	if !sameBytes(got, want) {
		t.Fatalf("appendCompact:\ngot  %s\nwant %s", got, want)
	}
	ref, _ := json.Marshal(s.toStored())
	var stNew, stRef storedSession
	if err := json.Unmarshal(got, &stNew); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", got, err)
	}
	if err := json.Unmarshal(ref, &stRef); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stNew, stRef) {
		t.Fatalf("decoded into storedSession:\ngot  %+v\nwant %+v", stNew, stRef)
	}
	sNew, sRef := newSession(), newSession()
	if err := json.Unmarshal(got, sNew); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ref, sRef); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sNew, sRef) {
		t.Fatalf("decoded into session:\ngot  %+v\nwant %+v", sNew, sRef)
	}
}

// nasty are user-controlled strings that need escaping.
var nasty = []string{"", "a", `"quoted" \back\`, "\x00\x01\x1f\x7f", "\n\r\t", "\xff\xfe", "caf\xc3", "€ \u2028\u2029",
	"<script>&amp;</script>", "https://app.example/cb?a=1&b=<2>"}

// TestRecordCodecEquivalence: heads and sessions holding every field, nil
// and empty lists, and strings that need escaping are written as
// encoding/json writes them, and read back by it (as a pixie version from
// before the hand-written encoders reads them) to the same values.
func TestRecordCodecEquivalence(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 11, 23, 683359643, time.UTC)
	for i, s := range nasty {
		checkHead(t, &storedRequest{ID: s, RequestedAt: at, RequestedScope: []string{"openid", s},
			GrantedScope: []string{s}, RequestedAudience: []string{}, GrantedAudience: nil,
			Form: url.Values{"redirect_uri": {s}, s: {s, s}, "nil": nil, "empty": {}}, Bundle: i%2 == 0, OIDC: i%3 == 0})
	}
	checkHead(t, &storedRequest{})
	checkHead(t, &storedRequest{RequestedAt: at.In(time.FixedZone("x", -5*3600-30*60)), Form: url.Values{}})
	checkHead(t, &storedRequest{RequestedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}) // both refuse

	full := newSession()
	fill(t, reflect.ValueOf(full))
	checkSession(t, full)
	checkSession(t, newSession())
	checkSession(t, &session{})
	for _, s := range nasty {
		sess := newSession()
		sess.Subject, sess.Username, sess.JKT = s, s, s
		sess.Claims = &jwt.IDTokenClaims{Subject: s, Nonce: s, Audience: []string{s}, AuthTime: time.Now(),
			AuthenticationMethodsReferences: []string{}, Extra: map[string]any{s: s, "n": 1.5, "l": []any{s, 2.0, nil},
				"m": map[string]any{s: []string{s}}, "b": true, "i": int64(-3)}}
		sess.Headers = &jwt.Headers{Extra: map[string]any{"kid": s}}
		sess.AccessHeader = &jwt.Headers{}
		sess.ExpiresAt = map[fosite.TokenType]time.Time{fosite.AccessToken: at, fosite.RefreshToken: at.Add(time.Hour),
			fosite.TokenType(s): at.In(time.FixedZone("", 3600))}
		sess.AccessClaims = &jwt.JWTClaims{Scope: []string{s}, Extra: map[string]any{}, ScopeField: jwt.JWTScopeFieldBoth}
		sess.RequestedIDTokenClaims, sess.RequestedUserInfoClaims = []string{s}, []string{}
		checkSession(t, sess)
	}
	bad := newSession()
	bad.Claims.Extra = map[string]any{"x": func() {}} // both refuse
	checkSession(t, bad)
	bad = newSession()
	bad.SetExpiresAt(fosite.AccessToken, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))
	checkSession(t, bad)
}

// fuzzTime is a time from fuzzed parts: any instant (years outside
// 0..9999 included, which both encoders refuse) in any zone offset.
func fuzzTime(sec int64, nsec int32, offset int32) time.Time {
	t := time.Unix(sec, int64(nsec))
	if offset == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(offset)))
}

// FuzzRecordHead: appendJSON writes any record head as encoding/json does
// and encoding/json reads it back to the same value.
func FuzzRecordHead(f *testing.F) {
	f.Add("id", "openid", "redirect_uri", "https://app/cb", int64(1764879083), int32(5), int32(0), true)
	f.Add("\xff\"", "\x00", "", "\\", int64(-62135596801), int32(-1), int32(-3600), false)
	f.Fuzz(func(t *testing.T, id, scope, key, value string, sec int64, nsec, offset int32, flag bool) {
		sr := &storedRequest{ID: id, RequestedAt: fuzzTime(sec, nsec, offset), RequestedScope: []string{scope, value},
			GrantedScope: []string{scope}, GrantedAudience: []string{value}, Form: url.Values{key: {value}, value: {key, id}},
			Bundle: flag, OIDC: !flag}
		if flag {
			sr.Form[id] = nil
		}
		checkHead(t, sr)
	})
}

// FuzzSessionCodec: appendCompact writes any session as json.Marshal
// writes its compact form, and encoding/json reads it back to the same
// value.
func FuzzSessionCodec(f *testing.F) {
	f.Add("alice", "nonce", "kid", "value", "access_token", int64(1764879083), int32(5), int32(0))
	f.Add("\xff\"", "\x00", "\u2028", "<&>", "", int64(253402300800), int32(-1), int32(86400))
	f.Fuzz(func(t *testing.T, sub, nonce, name, value, tokenType string, sec int64, nsec, offset int32) {
		at := fuzzTime(sec, nsec, offset)
		s := newSession()
		s.Subject, s.Username, s.JKT = sub, name, value
		s.Claims.Subject, s.Claims.Nonce, s.Claims.AuthTime, s.Claims.RequestedAt = sub, nonce, at, at
		s.Claims.Extra = map[string]any{name: value, nonce: []string{value, sub}, "n": float64(sec)}
		s.Headers.Extra = map[string]any{name: value}
		s.ExpiresAt = map[fosite.TokenType]time.Time{fosite.TokenType(tokenType): at, fosite.AccessToken: at}
		s.AccessClaims.Scope, s.AccessClaims.Extra = []string{value}, map[string]any{value: map[string]any{name: sub}}
		s.RequestedIDTokenClaims = []string{name, nonce}
		checkSession(t, s)
	})
}

// checkDecodeHead holds decodeHead to json.Unmarshal: both refuse data, or
// both read it to the same value.
func checkDecodeHead(t *testing.T, data []byte) {
	t.Helper()
	var got, want storedRequest
	err := decodeHead(data, &got)
	werr := json.Unmarshal(data, &want)
	if (err != nil) != (werr != nil) {
		t.Fatalf("%q: decodeHead error %v, encoding/json's %v", data, err, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decodeHead:\ngot  %#v\nwant %#v", data, got, want)
	}
}

// TestDecodeHead: heads as appendJSON writes them are read without
// encoding/json, to what it reads; others, and those with strings it would
// unescape or repair, go to it.
func TestDecodeHead(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 11, 23, 683359643, time.UTC)
	typical := &storedRequest{ID: "521cef8f", RequestedAt: at, RequestedScope: []string{"openid", "profile"},
		GrantedScope: []string{"openid"}, GrantedAudience: []string{"https://id.example.com"},
		Form:   url.Values{"client_id": {"native"}, "scope": {"openid profile"}, "redirect_uri": {"http://127.0.0.1/cb?a=1&b=2"}},
		Bundle: true, OIDC: true}
	data, err := typical.appendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	var sr storedRequest
	if d := (headDecoder{data: data, str: string(data)}); !d.request(&sr) {
		t.Fatalf("%s: not read directly", data)
	}
	checkDecodeHead(t, data)
	// fosite appends to the lists it is given: each is capped at its end.
	sr.RequestedScope = append(sr.RequestedScope, "x")
	if sr.GrantedScope[0] != "openid" {
		t.Errorf("an append to one list overwrote the next: %v", sr.GrantedScope)
	}
	for _, s := range nasty {
		head, _ := (&storedRequest{ID: s, RequestedAt: at, RequestedScope: []string{s}, Form: url.Values{s: {s}}}).appendJSON(nil)
		checkDecodeHead(t, head)
	}
	for _, head := range []string{
		`{"id":"a","requested_at":"2026-12-04T20:11:23Z","requested_scope":[],"form":{"a":null,"b":[]}}`,
		`{"id":"a","requested_at":"2026-12-04T20:11:23+01:00","form":{"b":["1"],"a":["2"],"a":["3"]}}`,
		`{"ID":"a","requested_at":"2026-12-04T20:11:23Z","bundle":false}`,
		`{"id":"a","requested_at":"2026-12-04T20:11:23Z"} `,
		`{"id":"a","requested_at":"2026-12-04T20:11:23Z"}x`,
		`{"id":"a","requested_at":"2026-12-04 20:11:23Z"}`,
		`{"id":"a\u0041","requested_at":"2026-12-04T20:11:23Z"}`,
		`{"id":"a","requested_at":"2026-12-04T20:11:23Z","oidc":true,"bundle":true}`,
		`{"id":"a"}`, `{}`, `null`, ``, `{"id":"a","requested_at":"2026-12-04T20:11:23Z",`,
	} {
		checkDecodeHead(t, []byte(head))
	}
}

// FuzzDecodeHead: decodeHead reads any input as encoding/json does, and
// any head appendJSON writes back to what encoding/json reads from it.
func FuzzDecodeHead(f *testing.F) {
	f.Add([]byte(`{"id":"a","requested_at":"2026-12-04T20:11:23Z","granted_scope":["x","y"],"form":{"a":["1"],"b":["2","3"]},"bundle":true}`),
		"id", "openid", "redirect_uri", int64(1764879083), int32(5))
	f.Add([]byte(`{"id":"\ud800","requested_at":"2026-12-04T20:11:23.1-01:00","oidc":true}`), "\xff", "\\", "\"", int64(-1), int32(-3600))
	f.Fuzz(func(t *testing.T, data []byte, id, scope, value string, sec int64, offset int32) {
		checkDecodeHead(t, data)
		sr := &storedRequest{ID: id, RequestedAt: fuzzTime(sec, 0, offset), RequestedScope: []string{scope, value},
			RequestedAudience: []string{value}, Form: url.Values{scope: {value}, value: {id, scope}}}
		if head, err := sr.appendJSON(nil); err == nil {
			checkDecodeHead(t, head)
		}
	})
}
