package middleware_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/middleware"
)

func TestParseBearer(t *testing.T) {
	tests := []struct {
		h       string
		want    string
		wantErr error
	}{
		{"Bearer abc", "abc", nil},
		{"bearer abc", "abc", nil},
		{"BEARER abc", "abc", nil},
		{"Bearer   abc", "abc", nil}, // 1*SP
		{"Bearer a-b.c_d~e+f/g==", "a-b.c_d~e+f/g==", nil},
		{"", "", middleware.ErrNoToken},
		{"Basic xyz", "", middleware.ErrNoToken},
		{"Bearerabc", "", middleware.ErrNoToken},
		{"Digest a=b", "", middleware.ErrNoToken},
		{"Bearer", "", middleware.ErrMalformedHeader},
		{"Bearer ", "", middleware.ErrMalformedHeader},
		{"Bearer  ", "", middleware.ErrMalformedHeader},
		{"Bearer ===", "", middleware.ErrMalformedHeader},
		{"Bearer a=b", "", middleware.ErrMalformedHeader},
		{"Bearer a b", "", middleware.ErrMalformedHeader},
		{"Bearer a\tb", "", middleware.ErrMalformedHeader},
		{"Bearer abc ", "", middleware.ErrMalformedHeader},
		{"Bearer ab\x00c", "", middleware.ErrMalformedHeader},
		{"Bearer tökén", "", middleware.ErrMalformedHeader},
		{"Bearer " + strings.Repeat("a", 16<<10+1), "", middleware.ErrMalformedHeader},
	}
	for _, tc := range tests {
		got, err := middleware.ParseBearer(tc.h)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("ParseBearer(%.40q): got %q, %v; want %q, %v", tc.h, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer  x==", "Basic xyz", "Bearer", "Bearer tökén", "Bearer a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := middleware.ParseBearer(h)
		if err != nil {
			var e *middleware.Error
			if tok != "" || !errors.As(err, &e) {
				t.Fatalf("ParseBearer(%q): got %q, %v", h, tok, err)
			}
			if !errors.Is(err, middleware.ErrNoToken) && !errors.Is(err, middleware.ErrMalformedHeader) {
				t.Fatalf("ParseBearer(%q): unexpected error %v", h, err)
			}
			// The challenge never carries anything of the header.
			if c := e.Challenge("r"); strings.ContainsAny(c, "\r\n") {
				t.Fatalf("challenge %q", c)
			}
			return
		}
		// Accepted: "Bearer" (any case), spaces, then a b64token that is
		// the rest of the header.
		if len(h) < 7 || !strings.EqualFold(h[:6], "Bearer") || h[6] != ' ' || strings.TrimLeft(h[6:], " ") != tok {
			t.Fatalf("ParseBearer(%q) accepted %q", h, tok)
		}
		body := strings.TrimRight(tok, "=")
		if body == "" || strings.Trim(body, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") != "" {
			t.Fatalf("ParseBearer(%q) accepted %q, not a b64token", h, tok)
		}
	})
}

// FuzzVerify feeds arbitrary strings to Verify: it never panics, always
// returns exactly one of a token and an *Error, and accepts nothing but the
// properly signed seed tokens.
func FuzzVerify(f *testing.F) {
	rsaKey, ecKey := sharedKey(f, "rsa-a", "RS256"), sharedKey(f, "ec-b", "ES256")
	v := newVerifier(f, middleware.Config{KeySet: middleware.StaticKeys(setOf(f, rsaKey, ecKey)), Now: fixed(t0)})
	valid := map[string]bool{
		token(f, rsaKey, t0): true,
		token(f, ecKey, t0):  true,
	}
	for tok := range valid {
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + ".." + parts[2])
		f.Add(b64json(f, map[string]any{"alg": "none", "typ": "at+jwt"}) + "." + parts[1] + ".")
		f.Add(b64json(f, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": rsaKey.kid}) + "." + parts[1] + "." + parts[2])
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJ9.e30.")
	f.Add("e30.e30.e30")
	f.Add("bnVsbA.bnVsbA.AA")

	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(t.Context(), raw)
		if err == nil {
			if tok == nil {
				t.Fatalf("Verify(%q): no token and no error", raw)
			}
			if !valid[raw] {
				t.Fatalf("Verify accepted %q, which is not a token the keys signed", raw)
			}
			return
		}
		if tok != nil {
			t.Fatalf("Verify(%q): a token with error %v", raw, err)
		}
		var e *middleware.Error
		if !errors.As(err, &e) || e.Code != "invalid_token" || e.Status != 401 {
			t.Fatalf("Verify(%q): got %#v", raw, err)
		}
	})
}
