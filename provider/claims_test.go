package provider

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/store"
)

// FuzzClaimsParam checks the claims parameter parser (OIDC Core §5.5) on
// arbitrary input: it never panics; what it refuses is invalid_request;
// what it accepts is a JSON object no longer than maxClaimsParam; and only
// standard claims of scopes the client is registered for are ever released.
func FuzzClaimsParam(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"id_token":null}`,
		`{"id_token":{"email":null,"acr":{"essential":true,"values":["a","b"]}}}`,
		`{"userinfo":{"phone_number":{"essential":false,"value":"+1"},"address":{}}}`,
		`{"id_token":{"sub":{"value":"alice"}},"userinfo":{"x":{"values":[1,{"a":2},null]}}}`,
		`{"id_token":{"email":true}}`, `{"id_token":{"email":{"essential":"yes"}}}`,
		`{"id_token":{"email":{"values":"a"}}}`, `{"id_token":{}} x`, `{"id_token":{"email":null,"email":{"essential":1}}}`,
	} {
		f.Add(seed)
	}
	client := &store.Client{Scopes: []string{"openid", "email"}}
	f.Fuzz(func(t *testing.T, raw string) {
		cr, err := parseClaimsParam(raw)
		if err != nil {
			if rfc := fosite.ErrorToRFC6749Error(err); rfc.ErrorField != engine.CodeInvalidRequest {
				t.Fatalf("parseClaimsParam(%q): got error %q, want invalid_request", raw, rfc.ErrorField)
			}
			return
		}
		if raw == "" {
			if cr != nil {
				t.Fatalf("parseClaimsParam(\"\"): got %+v, want nil", cr)
			}
			return
		}
		var obj map[string]any
		if len(raw) > maxClaimsParam || json.Unmarshal([]byte(raw), &obj) != nil || obj == nil {
			t.Fatalf("parseClaimsParam(%q): accepted what is not a JSON object of at most %d bytes", raw, maxClaimsParam)
		}
		for _, req := range []map[string]claimRequest{cr.IDToken, cr.UserInfo} {
			for _, name := range releasable(req, client) {
				if sc := claimScope(name); sc != "email" {
					t.Fatalf("parseClaimsParam(%q): released %q (scope %q), which the client is not registered for", raw, name, sc)
				}
			}
		}
	})
}

// TestUserClaims: the claims of a scope are released with the scope or
// when named one by one; claims the user lacks never are.
func TestUserClaims(t *testing.T) {
	u := &store.User{Subject: "s", Name: "N", Email: "e@example.com", PhoneNumber: "+1", Address: store.Address{Country: "NZ"}}
	tests := []struct {
		name   string
		scopes fosite.Arguments
		named  []string
		want   []string // the claim names released
	}{
		{"nothing", nil, nil, nil},
		{"email scope", fosite.Arguments{"email"}, nil, []string{"email", "email_verified"}},
		{"email by name", nil, []string{"email"}, []string{"email"}},
		{"profile: only what the user has", fosite.Arguments{"profile"}, nil, []string{"name"}},
		{"address and phone scopes", fosite.Arguments{"address", "phone"}, nil, []string{"address", "phone_number", "phone_number_verified"}},
		{"unknown and lacking names", nil, []string{"nickname", "given_name", "sub"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for k := range userClaims(u, tc.scopes, tc.named) {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := userClaims(u, fosite.Arguments{"address"}, nil)["address"]; !equalJSON(got, map[string]any{"country": "NZ"}) {
		t.Errorf("got address %v, want only country", got)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
