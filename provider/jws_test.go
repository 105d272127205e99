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
