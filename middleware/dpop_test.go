package middleware_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pixieauth/pixie/internal/dpoptest"
	"github.com/pixieauth/pixie/middleware"
)

// DPoP proofs here are written with go-jose, independently of the jwx the
// middleware verifies them with.

const dpopAlgs = `DPoP algs="ES256 RS256 PS256 EdDSA"`

// proofOpts are the claims of one proof; zero values take the defaults.
type proofOpts struct {
	htm, htu string
	token    string // ath is its hash; "" leaves ath out
	iat      time.Time
	jti      string
}

// proof returns a DPoP proof (RFC 9449 §4.2) signed by key with go-jose.
func proof(tb testing.TB, key crypto.Signer, o proofOpts) string {
	tb.Helper()
	alg := jose.ES256
	if _, ok := key.(ed25519.PrivateKey); ok {
		alg = jose.EdDSA
	} else if _, ok := key.(*ecdsa.PrivateKey); !ok {
		alg = jose.PS256
	}
	if o.jti == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		o.jti = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if o.iat.IsZero() {
		o.iat = t0
	}
	if o.htm == "" {
		o.htm = http.MethodGet
	}
	claims := map[string]any{"jti": o.jti, "htm": o.htm, "htu": o.htu, "iat": o.iat.Unix()}
	if o.token != "" {
		claims["ath"] = dpoptest.ATH(o.token)
	}
	return dpoptest.Sign(tb, dpoptest.Signer(tb, alg, key), claims)
}

// jkt is the RFC 7638 thumbprint of key's public key, by go-jose.
func jkt(tb testing.TB, key crypto.Signer) string {
	tb.Helper()
	return dpoptest.Thumbprint(tb, key.Public())
}

// boundToken returns an access token signed by k, issued at t0 and bound
// to the key whose thumbprint is thumb (cnf.jkt, RFC 9449 §6.1).
func boundToken(tb testing.TB, k *testKey, thumb string) string {
	tb.Helper()
	c := claimsAt(t0)
	c["cnf"] = map[string]any{"jkt": thumb}
	return sign(tb, k.priv, header(k), c)
}

// dpopFixture is an API behind RequireToken over a real HTTP server.
type dpopFixture struct {
	srv      *httptest.Server
	v        *middleware.Verifier
	tokenKey *testKey
	key      crypto.Signer // the client's DPoP key
	other    crypto.Signer // another DPoP key
	url      string        // the protected resource
}

func newDPoPFixture(t *testing.T, cfg middleware.Config) *dpopFixture {
	t.Helper()
	f := &dpopFixture{tokenKey: sharedKey(t, "ec-b", "ES256")}
	f.key = sharedKey(t, "dpop-client", "ES256").priv
	f.other = sharedKey(t, "dpop-other", "ES256").priv
	if cfg.KeySet == nil && cfg.Introspection == nil {
		cfg.KeySet = middleware.StaticKeys(setOf(t, f.tokenKey))
	}
	if cfg.Now == nil {
		cfg.Now = fixed(t0)
	}
	f.v = newVerifier(t, cfg)
	mux := http.NewServeMux()
	mux.Handle("/v1/things", middleware.RequireToken(f.v, "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := middleware.TokenFrom(r.Context())
		_, _ = io.WriteString(w, "jkt="+tok.JKT)
	})))
	mux.Handle("/v1/admin", middleware.RequireToken(f.v, "admin")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.url = f.srv.URL + "/v1/things"
	return f
}

// do sends one request with the given Authorization and DPoP headers.
func (f *dpopFixture) do(t *testing.T, method, url, authz string, proofs ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestRequireTokenDPoP(t *testing.T) {
	f := newDPoPFixture(t, middleware.Config{})
	bound := boundToken(t, f.tokenKey, jkt(t, f.key))
	unbound := token(t, f.tokenKey, t0)
	expired := expiredBound(t, f)
	spent := proof(t, f.key, proofOpts{htu: f.url, token: bound})
	if res, body := f.do(t, "GET", f.url, "DPoP "+bound, spent); res.StatusCode != 200 {
		t.Fatalf("first use of a proof: %d %s", res.StatusCode, body)
	}

	type dpopCase struct {
		name string
		// authz is the Authorization header ("" sends none).
		authz string
		// proofs are the DPoP header values.
		proofs []string
		// method and url of the request; zero: GET f.url.
		method, url string
		// wantStatus is the response status; 200 means the handler ran.
		wantStatus int
		// wantChallenges are the exact WWW-Authenticate values.
		wantChallenges []string
	}
	invalidProof := func(desc string) []string {
		return []string{dpopAlgs + `, error="invalid_dpop_proof", error_description="` + desc + `"`}
	}
	invalidToken := func(desc string) []string {
		return []string{dpopAlgs + `, error="invalid_token", error_description="` + desc + `"`}
	}
	tests := []dpopCase{
		{name: "DPoP token with its proof", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound})}, wantStatus: 200},
		{name: "scheme in lower case", authz: "dpop " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound})}, wantStatus: 200},
		{name: "query and fragment of htu ignored", authz: "DPoP " + bound, url: f.url + "?page=2",
			proofs: []string{proof(t, f.key, proofOpts{htu: f.url + "#x", token: bound})}, wantStatus: 200},
		{name: "POST with a POST proof", method: "POST", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htm: "POST", htu: f.url, token: bound})}, wantStatus: 200},

		{name: "no credentials: both challenges", wantStatus: 401,
			wantChallenges: []string{`Bearer realm="` + testAudience + `"`, dpopAlgs}},
		{name: "bound token as Bearer", authz: "Bearer " + bound, wantStatus: 401,
			wantChallenges: invalidToken("The access token is DPoP-bound: send it with the DPoP authorization scheme and a DPoP proof (RFC 9449 section 7.1).")},
		{name: "bound token as Bearer, even with a proof", authz: "Bearer " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound})}, wantStatus: 401,
			wantChallenges: invalidToken("The access token is DPoP-bound: send it with the DPoP authorization scheme and a DPoP proof (RFC 9449 section 7.1).")},
		{name: "unbound token with the DPoP scheme", authz: "DPoP " + unbound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: unbound})}, wantStatus: 401,
			wantChallenges: invalidToken("The access token is not DPoP-bound: send it with the Bearer authorization scheme.")},
		{name: "unbound token as Bearer still works", authz: "Bearer " + unbound, wantStatus: 200},
		{name: "expired bound token", authz: "DPoP " + expired, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: expired})}, wantStatus: 401,
			wantChallenges: invalidToken("The access token has expired.")},
		{name: "DPoP scheme without a token", authz: "DPoP", wantStatus: 400,
			wantChallenges: []string{dpopAlgs + `, error="invalid_request", error_description="The DPoP authorization header has no access token in the token68 syntax (RFC 9449 section 7.1)."`}},

		{name: "no proof", authz: "DPoP " + bound, wantStatus: 401, wantChallenges: invalidProof("missing DPoP proof")},
		{name: "two proofs", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound}), proof(t, f.key, proofOpts{htu: f.url, token: bound})},
			wantStatus: 401, wantChallenges: invalidProof("more than one DPoP header")},
		{name: "missing ath", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url})}, wantStatus: 401, wantChallenges: invalidProof("DPoP proof has no ath string")},
		{name: "ath of another token", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: boundToken(t, f.tokenKey, jkt(t, f.key)) + "x"})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof ath does not match the access token")},
		{name: "htu of another path", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.srv.URL + "/v1/other", token: bound})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof htu does not match the request URL")},
		{name: "htu of another host", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: "https://api.example.com/v1/things", token: bound})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof htu does not match the request URL")},
		{name: "htm of another method", method: "POST", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof htm does not match the request method")},
		{name: "stale proof", authz: "DPoP " + bound, proofs: []string{proof(t, f.key, proofOpts{htu: f.url, token: bound, iat: t0.Add(-10 * time.Minute)})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof is too old (iat)")},
		{name: "replayed proof", authz: "DPoP " + bound, proofs: []string{spent}, wantStatus: 401, wantChallenges: invalidProof("DPoP proof replayed")},
		{name: "proof key is not cnf.jkt", authz: "DPoP " + bound, proofs: []string{proof(t, f.other, proofOpts{htu: f.url, token: bound})},
			wantStatus: 401, wantChallenges: invalidProof("DPoP proof key does not match the key the access token is bound to")},
		{name: "garbage proof", authz: "DPoP " + bound, proofs: []string{"garbage"}, wantStatus: 401, wantChallenges: invalidProof("DPoP proof is not a compact JWS")},

		{name: "insufficient scope, DPoP challenge", authz: "DPoP " + bound, url: f.srv.URL + "/v1/admin", proofs: []string{proof(t, f.key, proofOpts{htu: f.srv.URL + "/v1/admin", token: bound})},
			wantStatus: 403, wantChallenges: []string{dpopAlgs + `, error="insufficient_scope", error_description="The access token lacks a scope this request needs.", scope="admin"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, url := tc.method, tc.url
			if method == "" {
				method = "GET"
			}
			if url == "" {
				url = f.url
			}
			res, body := f.do(t, method, url, tc.authz, tc.proofs...)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s; WWW-Authenticate %q", res.StatusCode, tc.wantStatus, body, res.Header.Values("WWW-Authenticate"))
			}
			if tc.wantStatus == 200 {
				want := ""
				if strings.HasPrefix(strings.ToLower(tc.authz), "dpop ") {
					want = jkt(t, f.key)
				}
				if body != "jkt="+want {
					t.Errorf("handler saw %q, want jkt=%s", body, want)
				}
				return
			}
			if got := res.Header.Values("WWW-Authenticate"); strings.Join(got, "\n") != strings.Join(tc.wantChallenges, "\n") {
				t.Errorf("WWW-Authenticate:\n got %q\nwant %q", got, tc.wantChallenges)
			}
			for _, p := range tc.proofs {
				if len(p) > 30 && strings.Contains(body, p[len(p)-30:]) {
					t.Errorf("the body echoes the proof: %s", body)
				}
			}
		})
	}

	// Verify alone reports the binding.
	tok, err := f.v.Verify(t.Context(), bound)
	if err != nil || tok.JKT != jkt(t, f.key) {
		t.Fatalf("Verify(bound) = %+v, %v; want JKT %s", tok, err, jkt(t, f.key))
	}
	if _, err := f.v.Verify(t.Context(), boundTokenCnf(t, f, map[string]any{"jkt": 7})); !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Errorf("cnf.jkt a number: %v, want ReasonMalformedToken", err)
	}
	if _, err := f.v.Verify(t.Context(), boundTokenCnf(t, f, "jkt")); !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Errorf("cnf a string: %v, want ReasonMalformedToken", err)
	}
}

func expiredBound(t *testing.T, f *dpopFixture) string {
	c := claimsAt(t0.Add(-2 * time.Hour))
	c["cnf"] = map[string]any{"jkt": jkt(t, f.key)}
	return sign(t, f.tokenKey.priv, header(f.tokenKey), c)
}

func boundTokenCnf(t *testing.T, f *dpopFixture, cnf any) string {
	c := claimsAt(t0)
	c["cnf"] = cnf
	return sign(t, f.tokenKey.priv, header(f.tokenKey), c)
}

// TestDPoPPublicURL: behind a proxy, htu is Config.PublicURL and the
// path; the address the request reached is then not accepted.
func TestDPoPPublicURL(t *testing.T) {
	f := newDPoPFixture(t, middleware.Config{PublicURL: "https://API.example.com:443/"})
	bound := boundToken(t, f.tokenKey, jkt(t, f.key))
	for _, tc := range []struct {
		name       string
		htu        string
		wantStatus int
	}{
		{"public URL", "https://api.example.com/v1/things", 200},
		{"the backend's own address", f.url, 401},
	} {
		res, body := f.do(t, "GET", f.url, "DPoP "+bound, proof(t, f.key, proofOpts{htu: tc.htu, token: bound}))
		if res.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, res.StatusCode, tc.wantStatus, body)
		}
	}
	if _, err := middleware.NewVerifier(t.Context(), middleware.Config{Issuer: testIssuer, Audience: testAudience,
		KeySet: middleware.StaticKeys(setOf(t, f.tokenKey)), PublicURL: "api.example.com/v1"}); err == nil || !strings.Contains(err.Error(), "Config.PublicURL") {
		t.Errorf("a PublicURL without scheme: %v, want an error naming Config.PublicURL", err)
	}
}

// TestDPoPReplayStore: Config.DPoPReplay is used, and its failure is an
// outage (503), not the client's fault.
func TestDPoPReplayStore(t *testing.T) {
	var keys []string
	fail := false
	f := newDPoPFixture(t, middleware.Config{DPoPReplay: func(_ context.Context, key string, exp time.Time) (bool, error) {
		if fail {
			return false, errors.New("replay store down")
		}
		keys = append(keys, key)
		return true, nil
	}})
	bound := boundToken(t, f.tokenKey, jkt(t, f.key))
	p := proof(t, f.key, proofOpts{htu: f.url, token: bound})
	if res, body := f.do(t, "GET", f.url, "DPoP "+bound, p); res.StatusCode != 200 || len(keys) != 1 {
		t.Fatalf("status %d (%s), replay keys %d", res.StatusCode, body, len(keys))
	}
	fail = true
	res, body := f.do(t, "GET", f.url, "DPoP "+bound, proof(t, f.key, proofOpts{htu: f.url, token: bound}))
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("WWW-Authenticate") != "" || !strings.Contains(body, "temporarily_unavailable") {
		t.Errorf("replay store down: %d %q %s", res.StatusCode, res.Header.Values("WWW-Authenticate"), body)
	}
}

// TestDPoPIntrospection: the binding comes from the introspection answer's
// cnf.jkt (RFC 9449 §6.2), with token_type DPoP.
func TestDPoPIntrospection(t *testing.T) {
	intro := newIntroServer(t)
	f := newDPoPFixture(t, middleware.Config{Introspection: intro.config()})
	bound, unbound, inconsistent := opaque(3), opaque(4), opaque(5)
	intro.add(bound, t0, func(m map[string]any) {
		m["token_type"] = "DPoP"
		m["cnf"] = map[string]any{"jkt": jkt(t, f.key)}
	})
	intro.add(unbound, t0, nil)
	intro.add(inconsistent, t0, func(m map[string]any) { m["token_type"] = "DPoP" })

	for _, tc := range []struct {
		name          string
		authz         string
		proof         string
		wantStatus    int
		wantChallenge string
	}{
		{"DPoP token with its proof", "DPoP " + bound, proof(t, f.key, proofOpts{htu: f.url, token: bound}), 200, ""},
		{"DPoP token as Bearer", "Bearer " + bound, "", 401,
			dpopAlgs + `, error="invalid_token", error_description="The access token is DPoP-bound: send it with the DPoP authorization scheme and a DPoP proof (RFC 9449 section 7.1)."`},
		{"proof by another key", "DPoP " + bound, proof(t, f.other, proofOpts{htu: f.url, token: bound}), 401,
			dpopAlgs + `, error="invalid_dpop_proof", error_description="DPoP proof key does not match the key the access token is bound to"`},
		{"bearer token", "Bearer " + unbound, "", 200, ""},
		{"token_type DPoP without cnf.jkt", "Bearer " + inconsistent, "", 401,
			`Bearer realm="` + testAudience + `", error="invalid_token", error_description="The introspection answer says token_type DPoP but has no cnf.jkt."`},
	} {
		var proofs []string
		if tc.proof != "" {
			proofs = []string{tc.proof}
		}
		res, body := f.do(t, "GET", f.url, tc.authz, proofs...)
		if res.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, res.StatusCode, tc.wantStatus, body)
			continue
		}
		if got := res.Header.Get("WWW-Authenticate"); got != tc.wantChallenge {
			t.Errorf("%s: WWW-Authenticate\n got %s\nwant %s", tc.name, got, tc.wantChallenge)
		}
	}
}
