package provider

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/ory/fosite/token/jwt"
)

// TestJWTSignerGenerate: the tokens pixie signs verify with jwx against the
// provider's JWKS for both algorithms, carry alg, kid and typ as they
// should (a header may set typ, never alg or kid), and hold the claims as
// given; the signature returned is the token's third part.
func TestJWTSignerGenerate(t *testing.T) {
	e := newTestEnv(t, nil)
	set, err := jwk.Parse(e.p.JWKS(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{RS256, ES256} {
		t.Run(alg, func(t *testing.T) {
			s := newJWTSigner(e.p.keys, alg)
			claims := jwt.MapClaims{"sub": "alice", "aud": []string{"app"}, "iat": int64(1700000000), "name": "A <b> & c"}
			header := &jwt.Headers{Extra: map[string]any{"typ": "at+jwt", "alg": "none", "kid": "forged"}}
			token, sig, err := s.Generate(t.Context(), claims, header)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if parts := strings.Split(token, "."); len(parts) != 3 || parts[2] != sig {
				t.Fatalf("got token %q and signature %q, want three parts, the last the signature", token, sig)
			}
			payload, err := jws.Verify([]byte(token), jws.WithKeySet(set, jws.WithRequireKid(true)))
			if err != nil {
				t.Fatalf("jws.Verify against the JWKS: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(payload, &got); err != nil {
				t.Fatal(err)
			}
			if got["sub"] != "alice" || got["name"] != "A <b> & c" || got["iat"] != float64(1700000000) {
				t.Errorf("got claims %v", got)
			}
			raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
			var h map[string]any
			if err := json.Unmarshal(raw, &h); err != nil {
				t.Fatal(err)
			}
			if h["alg"] != alg || h["typ"] != "at+jwt" || h["kid"] != e.p.keys.signer(alg).kid {
				t.Errorf("got header %v, want alg %s, typ at+jwt and the signing key's kid", h, alg)
			}
			// fosite's own parser, which userinfo and introspection use, takes it too.
			if _, err := s.Decode(t.Context(), token); err != nil {
				t.Errorf("Decode: %v", err)
			}
			plain, _, err := s.Generate(t.Context(), claims, &jwt.Headers{})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ = base64.RawURLEncoding.DecodeString(strings.Split(plain, ".")[0])
			if err := json.Unmarshal(raw, &h); err != nil || h["typ"] != "JWT" {
				t.Errorf("header without typ: got %s, want typ JWT", raw)
			}
		})
	}
}

// TestAppendJSONObject: the JWT encoder's JSON parses, with encoding/json,
// to what encoding/json itself would have written for the same claims.
func TestAppendJSONObject(t *testing.T) {
	m := map[string]any{
		"s": "plain", "q": `quote " and \ back`, "ctl": "tab\tnl\nnul\x00del\x7f", "u": "añ€😀",
		"bad": "a\xffb", "html": "<a&b>", "i": int64(-42), "n": 7, "t": true, "f": false,
		"list": []string{"x", `"y"`}, "nil": []string(nil), "float": 1.5,
		"obj": map[string]any{"k": "v", "z": []any{1, "two"}}, "any": []any{"a", 2},
	}
	got, err := appendJSONObject(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if gs, ws := fmt.Sprint(g), fmt.Sprint(w); gs != ws {
		t.Errorf("got %s\nwant %s", gs, ws)
	}
}

// FuzzAppendJSONString: any string, valid UTF-8 or not, is written as a
// JSON string that decodes to what encoding/json's encoding decodes to.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f", "\xff", "€", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: not a JSON string: %v", s, err)
		}
		ref, _ := json.Marshal(s)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", s, got, want)
		}
	})
}

// TestAppendRS: an ECDSA-Sig-Value becomes r || s, each left-padded to the
// curve's size whether its INTEGER is shorter (leading zero bytes dropped)
// or carries the 0x00 that keeps it positive; anything else is refused.
func TestAppendRS(t *testing.T) {
	long := append([]byte{0x00, 0x80}, make([]byte, 31)...) // 33 bytes: 0x00 then 32
	short := []byte{0x01, 0x02}                             // 2 bytes
	der := func(r, s []byte) []byte {
		body := append(append([]byte{0x02, byte(len(r))}, r...), append([]byte{0x02, byte(len(s))}, s...)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	got, err := appendRS(nil, der(long, short), 32)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{0x80}, make([]byte, 31)...), append(make([]byte, 30), 0x01, 0x02)...)
	if string(got) != string(want) {
		t.Errorf("appendRS = %x, want %x", got, want)
	}
	for _, bad := range [][]byte{
		der(append([]byte{0x01}, long...), short), // 34 bytes, too long for P-256
		der(short, short)[:5],                     // truncated
		append(der(short, short), 0x00),           // trailing data
	} {
		if _, err := appendRS(nil, bad, 32); err == nil {
			t.Errorf("appendRS(%x) accepted", bad)
		}
	}
}

// TestJWSBufferRelease: a buffer goes back to the pool zeroed, so the
// claims one token held are not there for the next.
func TestJWSBufferRelease(t *testing.T) {
	b := &jwsBuffer{raw: append(make([]byte, 0, 64), `{"email":"alice@example.com"}`...), input: append(make([]byte, 0, 64), "eyJ.eyJ"...)}
	raw, input := b.raw[:cap(b.raw)], b.input[:cap(b.input)]
	b.release()
	if len(b.raw) != 0 || len(b.input) != 0 {
		t.Errorf("released buffer has lengths %d and %d, want 0", len(b.raw), len(b.input))
	}
	for _, s := range [][]byte{raw, input} {
		for i, c := range s {
			if c != 0 {
				t.Fatalf("byte %d of a released buffer is %q, want 0", i, c)
			}
		}
	}
}
