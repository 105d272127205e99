package provider

import (
	"slices"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/store"
)

// TestValidateClient checks the registration rules of ValidateClient's doc
// comment (RFC 8252 §7 for native clients).
func TestValidateClient(t *testing.T) {
	tests := []struct {
		name     string
		redirect string // the client's one redirect URI; empty for none
		native   bool   // store.Client.Native
		grants   []string
		alg      string // store.Client.IDTokenAlg
		// wantErr is a fragment of the expected error; empty when the
		// client is valid.
		wantErr string
	}{
		{"HTTPS", "https://app.example.com/cb", false, nil, "", ""},
		{"HTTPSNative", "https://app.example.com/cb", true, nil, "", ""},
		{"HTTPSWithQuery", "https://app.example.com/cb?tenant=1", false, nil, "", ""},
		{"NoRedirectURIs", "", false, nil, "", ""},
		{"HTTPSNoHost", "https:///cb", false, nil, "", "no host"},
		// A port alone is not a host.
		{"HTTPSPortOnly", "https://:8443/cb", false, nil, "", "host"},
		// Loopback IP literals over http, for native apps only (RFC 8252 §7.3).
		{"LoopbackIPv4Native", "http://127.0.0.1/cb", true, nil, "", ""},
		{"LoopbackIPv4PortNative", "http://127.0.0.1:51004/cb", true, nil, "", ""},
		{"LoopbackIPv6Native", "http://[::1]/cb", true, nil, "", ""},
		{"LoopbackIPv6PortNative", "http://[::1]:8080/cb", true, nil, "", ""},
		{"LoopbackIPv4Web", "http://127.0.0.1/cb", false, nil, "", "http"},
		{"LoopbackIPv6Web", "http://[::1]/cb", false, nil, "", "http"},
		// localhost is not an IP literal (RFC 8252 §8.3).
		{"LocalhostNative", "http://localhost/cb", true, nil, "", "http"},
		{"LocalhostWeb", "http://localhost/cb", false, nil, "", "http"},
		{"HTTPOtherHostNative", "http://app.example.com/cb", true, nil, "", "http"},
		{"HTTPOtherHostWeb", "http://app.example.com/cb", false, nil, "", "http"},
		{"HTTPLoopbackUserinfoTrick", "http://127.0.0.1@evil.example/cb", true, nil, "", "http"},
		// Private-use schemes, reverse-domain, native only (RFC 8252 §7.1).
		{"CustomSchemeNative", "com.example.app:/cb", true, nil, "", ""},
		{"CustomSchemeNativeSlashes", "com.example.app://cb", true, nil, "", ""},
		{"CustomSchemeWeb", "com.example.app:/cb", false, nil, "", "custom scheme"},
		{"CustomSchemeNoDot", "myapp:/cb", true, nil, "", "reverse domain"},
		{"JavascriptScheme", "javascript:alert(1)", true, nil, "", "reverse domain"},
		// Fragments and relative references.
		{"Fragment", "https://app.example.com/cb#frag", false, nil, "", "fragment"},
		{"EmptyFragment", "https://app.example.com/cb#", false, nil, "", "fragment"},
		{"FragmentNative", "com.example.app:/cb#x", true, nil, "", "fragment"},
		{"Relative", "/cb", false, nil, "", "absolute"},
		{"RelativeNative", "cb", true, nil, "", "absolute"},
		{"Unparsable", "https://app.example.com:port/cb", false, nil, "", "redirect URI"},
		// Grant types.
		{"GrantTypes", "https://app.example.com/cb", false, []string{"authorization_code", "refresh_token"}, "", ""},
		{"GrantImplicit", "https://app.example.com/cb", false, []string{"authorization_code", "implicit"}, "", "grant type"},
		{"GrantPassword", "https://app.example.com/cb", false, []string{"password"}, "", "grant type"},
		{"GrantClientCredentials", "https://app.example.com/cb", false, []string{"client_credentials"}, "", "grant type"},
		// ID token algorithm.
		{"IDTokenAlgRS256", "https://app.example.com/cb", false, nil, RS256, ""},
		{"IDTokenAlgES256", "https://app.example.com/cb", false, nil, ES256, ""},
		{"IDTokenAlgHS256", "https://app.example.com/cb", false, nil, "HS256", "IDTokenAlg"},
		{"IDTokenAlgNone", "https://app.example.com/cb", false, nil, "none", "IDTokenAlg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &store.Client{ID: "app", Native: tc.native, GrantTypes: tc.grants, IDTokenAlg: tc.alg}
			if tc.redirect != "" {
				c.RedirectURIs = []string{tc.redirect}
			}
			err := ValidateClient(c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%q (native %v): got error %v, want nil", tc.redirect, tc.native, err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("%q (native %v): got nil error, want one about %q", tc.redirect, tc.native, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("got error %q, want one about %q", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), `client "app"`):
				t.Errorf("got error %q, want it to name the client", err)
			}
		})
	}
}

// TestValidateClientChecksEveryRedirectURI: one bad URI among good ones is
// enough to refuse the client, wherever it is.
func TestValidateClientChecksEveryRedirectURI(t *testing.T) {
	good := "https://app.example.com/cb"
	bad := "http://app.example.com/cb"
	for _, uris := range [][]string{{bad, good}, {good, bad}, {good, good, bad}} {
		err := ValidateClient(&store.Client{ID: "app", RedirectURIs: uris})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("redirect URIs %q: got error %v, want one naming %q", uris, err, bad)
		}
	}
}

// TestValidateClientNoID: a client must have an ID.
func TestValidateClientNoID(t *testing.T) {
	if err := ValidateClient(&store.Client{RedirectURIs: []string{"https://app.example.com/cb"}}); err == nil {
		t.Error("got nil error for a client without ID, want one")
	}
}

// TestFositeClient: the adapter presents the registration to fosite as
// documented: code only, default grant types, public iff no secret.
func TestFositeClient(t *testing.T) {
	tests := []struct {
		name       string
		client     store.Client
		wantGrants []string
		wantPublic bool
	}{
		{"PublicDefaultGrants", store.Client{ID: "a"}, []string{"authorization_code", "refresh_token"}, true},
		{"ConfidentialCodeOnly", store.Client{ID: "b", SecretHash: "$argon2id$…", GrantTypes: []string{"authorization_code"}}, []string{"authorization_code"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fositeClient{c: &tc.client}
			if got := []string(f.GetGrantTypes()); !slices.Equal(got, tc.wantGrants) {
				t.Errorf("got grant types %v, want %v", got, tc.wantGrants)
			}
			if got := f.IsPublic(); got != tc.wantPublic {
				t.Errorf("got public %v, want %v", got, tc.wantPublic)
			}
			if got := []string(f.GetResponseTypes()); !slices.Equal(got, []string{"code"}) {
				t.Errorf("got response types %v, want [code]", got)
			}
			if allowsGrant(&tc.client, "refresh_token") != slices.Contains(tc.wantGrants, "refresh_token") {
				t.Errorf("allowsGrant(refresh_token) disagrees with grant types %v", tc.wantGrants)
			}
		})
	}
}
