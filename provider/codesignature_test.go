package provider

import "testing"

// TestCodeSignature: the provider finds a code's record under the
// signature fosite's HMAC strategy takes from it, for codes and for
// anything else presented as one.
func TestCodeSignature(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, code := range []string{"ory_ac_abc.def", "abc.def", "abc", "", ".", "a.", ".b", "a.b.c", "ory_ac_.x", "a..b"} {
		if got, want := e.p.codeSignature(t.Context(), code), e.p.codes.AuthorizeCodeSignature(t.Context(), code); got != want {
			t.Errorf("codeSignature(%q) = %q, fosite's is %q", code, got, want)
		}
	}
}
