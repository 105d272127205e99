package handlers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/dpoptest"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// The tests of this file play a native app that uses DPoP (RFC 9449): its
// proofs are written with go-jose, not with the code under test, and
// golang.org/x/oauth2 makes the token requests through dpopTransport, as an
// app adds DPoP to an OAuth library that knows nothing of it.

// dpopKey is an app's DPoP key pair (P-256, ES256).
type dpopKey struct {
	priv *ecdsa.PrivateKey
	jkt  string // its RFC 7638 thumbprint
}

func newDPoPKey(t testing.TB) *dpopKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{priv: priv, jkt: dpoptest.Thumbprint(t, &priv.PublicKey)}
}

// proofClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// newClaims returns the claims of a fresh proof for a request; token, if
// set, is the access token the proof goes with (ath).
func newClaims(method, rawURL, token string) proofClaims {
	c := proofClaims{JTI: randomString(), HTM: method, HTU: rawURL, IAT: time.Now().Unix()}
	if token != "" {
		c.ATH = dpoptest.ATH(token)
	}
	return c
}

// sign writes a proof with the claims, signed with the key, whose public
// half is in the header.
func (k *dpopKey) sign(t testing.TB, c proofClaims) string {
	t.Helper()
	return dpoptest.Sign(t, dpoptest.Signer(t, jose.ES256, k.priv), c)
}

// proof is sign with fresh claims.
func (k *dpopKey) proof(t testing.TB, method, rawURL, token string) string {
	t.Helper()
	return k.sign(t, newClaims(method, rawURL, token))
}

// dpopTransport adds a fresh proof of its key to every request, and when
// the server answers use_dpop_nonce, takes up its DPoP-Nonce and tries once
// more, as RFC 9449 §8 has a client do.
type dpopTransport struct {
	t     *testing.T
	key   *dpopKey
	mu    sync.Mutex
	nonce string
}

func (d *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		u := *req.URL
		u.RawQuery = ""
		c := newClaims(req.Method, u.String(), "")
		d.mu.Lock()
		c.Nonce = d.nonce
		d.mu.Unlock()
		r.Header.Set("DPoP", d.key.sign(d.t, c))
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || try > 0 || resp.Header.Get("DPoP-Nonce") == "" {
			return resp, err
		}
		d.mu.Lock()
		d.nonce = resp.Header.Get("DPoP-Nonce")
		d.mu.Unlock()
		if resp.StatusCode < 400 {
			return resp, nil
		}
		resp.Body.Close()
	}
}

// dpopContext makes x/oauth2 send its requests through a dpopTransport of
// the key.
func dpopContext(t *testing.T, key *dpopKey) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: &dpopTransport{t: t, key: key}})
}

// dpopUserinfo calls /userinfo with the DPoP scheme and the proof (none if
// "").
func (ts *testServer) dpopUserinfo(t *testing.T, token, proof string) *httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+handlers.PathUserInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+token)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return send(t, nil, req)
}

// jwtClaims decodes the payload of a JWT, unverified (the other tests
// verify the signatures).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("got %d parts in the token, want a JWS", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// cnfJKT returns cnf.jkt of a JWT's claims or an introspection answer.
func cnfJKT(m map[string]any) string {
	cnf, _ := m["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// wantChallenge checks a protected resource's DPoP refusal (RFC 9449 §7.1).
func wantChallenge(t *testing.T, res *httpResult, code string) {
	t.Helper()
	wa := res.Header.Get("WWW-Authenticate")
	if res.Status != http.StatusUnauthorized || !strings.HasPrefix(wa, `DPoP algs="ES256 RS256 PS256 EdDSA"`) || !strings.Contains(wa, `error="`+code+`"`) {
		t.Errorf("got %d, WWW-Authenticate %q; want 401 with a DPoP challenge, error=%q", res.Status, wa, code)
	}
}

// TestDPoPFlow: a native app with a DPoP key gets tokens bound to it
// (token_type DPoP, cnf.jkt in the JWT access token and in introspection),
// uses the access token at /userinfo only with a proof for it, and
// refreshes only with a proof of the same key.
func TestDPoPFlow(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key := newDPoPKey(t)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	code := newBrowser(t, ts).code(t, ar)
	tok, err := conf.Exchange(dpopContext(t, key), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("exchange with a DPoP proof: %v", err)
	}
	if tok.TokenType != "DPoP" {
		t.Errorf("got token_type %q, want DPoP", tok.TokenType)
	}
	if got := cnfJKT(jwtClaims(t, tok.AccessToken)); got != key.jkt {
		t.Errorf("got cnf.jkt %q in the access token, want the key's %q", got, key.jkt)
	}
	in := ts.introspect(t, tok.AccessToken)
	if cnfJKT(in) != key.jkt || in["token_type"] != "DPoP" || in["active"] != true {
		t.Errorf("introspection: got %v, want active, token_type DPoP and cnf.jkt %q", in, key.jkt)
	}
	if got := cnfJKT(ts.introspect(t, tok.RefreshToken)); got != key.jkt {
		t.Errorf("introspection of the refresh token: got cnf.jkt %q, want %q (a public client's is bound)", got, key.jkt)
	}

	userinfo := ts.URL + handlers.PathUserInfo
	good := key.proof(t, http.MethodGet, userinfo, tok.AccessToken)
	if res := ts.dpopUserinfo(t, tok.AccessToken, good); res.Status != http.StatusOK || res.JSON(t)["sub"] != "alice" {
		t.Fatalf("userinfo with DPoP: got %d %s, want alice's claims", res.Status, res.Body)
	}
	other := newDPoPKey(t)
	for _, tc := range []struct {
		name   string
		res    *httpResult
		wantEr string
	}{
		{"AsBearer", ts.userinfo(t, "Bearer "+tok.AccessToken), "invalid_token"},
		{"NoProof", ts.dpopUserinfo(t, tok.AccessToken, ""), "invalid_dpop_proof"},
		{"Replayed", ts.dpopUserinfo(t, tok.AccessToken, good), "invalid_dpop_proof"},
		{"NoATH", ts.dpopUserinfo(t, tok.AccessToken, key.proof(t, http.MethodGet, userinfo, "")), "invalid_dpop_proof"},
		{"ATHOfAnotherToken", ts.dpopUserinfo(t, tok.AccessToken, key.proof(t, http.MethodGet, userinfo, tok.RefreshToken)), "invalid_dpop_proof"},
		{"OtherKey", ts.dpopUserinfo(t, tok.AccessToken, other.proof(t, http.MethodGet, userinfo, tok.AccessToken)), "invalid_dpop_proof"},
		{"WrongMethod", ts.dpopUserinfo(t, tok.AccessToken, key.proof(t, http.MethodPost, userinfo, tok.AccessToken)), "invalid_dpop_proof"},
		{"WrongURL", ts.dpopUserinfo(t, tok.AccessToken, key.proof(t, http.MethodGet, ts.URL+handlers.PathToken, tok.AccessToken)), "invalid_dpop_proof"},
	} {
		t.Run("Userinfo"+tc.name, func(t *testing.T) { wantChallenge(t, tc.res, tc.wantEr) })
	}

	// Refreshing: without a proof, or with another key, refused; the
	// refresh token still works with its own key afterwards.
	if _, err := refresh(t.Context(), conf, tok.RefreshToken); err == nil {
		t.Error("refresh without a proof: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	if _, err := refresh(dpopContext(t, other), conf, tok.RefreshToken); err == nil {
		t.Error("refresh with another key: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	next, err := refresh(dpopContext(t, key), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with the key: %v", err)
	}
	if next.TokenType != "DPoP" || cnfJKT(jwtClaims(t, next.AccessToken)) != key.jkt {
		t.Errorf("refreshed: got token_type %q, cnf.jkt %q; want DPoP, %q", next.TokenType, cnfJKT(jwtClaims(t, next.AccessToken)), key.jkt)
	}
}

// TestDPoPTokenProofs: the token endpoint refuses bad proofs with
// invalid_dpop_proof (RFC 9449 §4.3, §5), and a refused proof leaves the
// code unused: the app may try again.
func TestDPoPTokenProofs(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key := newDPoPKey(t)
	form := ts.codeForm(t)
	tokenURL := ts.URL + handlers.PathToken
	used := key.proof(t, http.MethodPost, tokenURL, "")
	claims := func(edit func(*proofClaims)) proofClaims {
		c := newClaims(http.MethodPost, tokenURL, "")
		edit(&c)
		return c
	}
	cases := []struct {
		name  string
		proof string
	}{
		{"WrongMethod", key.proof(t, http.MethodGet, tokenURL, "")},
		{"WrongURL", key.proof(t, http.MethodPost, ts.URL+handlers.PathUserInfo, "")},
		{"OtherHost", key.proof(t, http.MethodPost, "https://elsewhere.example.com"+handlers.PathToken, "")},
		{"StaleIAT", key.sign(t, claims(func(c *proofClaims) { c.IAT -= 600 }))},
		{"FutureIAT", key.sign(t, claims(func(c *proofClaims) { c.IAT += 600 }))},
		{"NoJTI", key.sign(t, claims(func(c *proofClaims) { c.JTI = "" }))},
		{"PrivateKeyInside", privateKeyProof(t, key, claims(func(*proofClaims) {}))},
		{"AlgNone", unsignedProof(t, key, claims(func(*proofClaims) {}))},
		{"HS256", hmacProof(t, key, claims(func(*proofClaims) {}))},
		{"WrongType", typedProof(t, key, "JWT", claims(func(*proofClaims) {}))},
		{"NotAJWS", "not.a.proof"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts.postForm(t, handlers.PathToken, form, http.Header{"Dpop": {tc.proof}}).wantOAuthError(t, http.StatusBadRequest, "invalid_dpop_proof")
		})
	}
	t.Run("TwoProofs", func(t *testing.T) {
		two := http.Header{"Dpop": {key.proof(t, http.MethodPost, tokenURL, ""), key.proof(t, http.MethodPost, tokenURL, "")}}
		ts.postForm(t, handlers.PathToken, form, two).wantOAuthError(t, http.StatusBadRequest, "invalid_dpop_proof")
	})

	// The query of the URL does not count (§4.3), and the code still works.
	res := ts.postForm(t, handlers.PathToken, form, http.Header{"Dpop": {used}})
	if res.Status != http.StatusOK {
		t.Fatalf("exchange after the refusals: got %d %s, want tokens", res.Status, res.Body)
	}
	m := res.JSON(t)
	if m["token_type"] != "DPoP" {
		t.Errorf("got token_type %v, want DPoP", m["token_type"])
	}
	// The same proof again, for the refresh: a replay.
	rt, _ := m["refresh_token"].(string)
	again := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {nativeClient}}
	ts.postForm(t, handlers.PathToken, again, http.Header{"Dpop": {used}}).wantOAuthError(t, http.StatusBadRequest, "invalid_dpop_proof")
	withQuery := key.proof(t, http.MethodPost, tokenURL+"?x=1#f", "")
	if res := ts.postForm(t, handlers.PathToken, again, http.Header{"Dpop": {withQuery}}); res.Status != http.StatusOK {
		t.Errorf("refresh with a proof whose htu has a query: got %d %s, want tokens", res.Status, res.Body)
	}
}

// codeForm logs alice in for example-native and returns the form of the
// token request redeeming the code, to send by hand.
func (ts *testServer) codeForm(t *testing.T) url.Values {
	t.Helper()
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	code := newBrowser(t, ts).code(t, ar)
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {conf.RedirectURL},
		"client_id": {nativeClient}, "code_verifier": {ar.Verifier},
	}
}

// signed writes a proof with go-jose with the header members the test
// chooses: alg and key for the signature, and the jwk and typ to show.
func signed(t *testing.T, alg jose.SignatureAlgorithm, sigKey any, jwk any, typ string, c proofClaims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("jwk", jwk)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: sigKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dpoptest.Sign(t, signer, c)
}

// privateKeyProof carries the private key in its jwk header (§4.3 check 6).
func privateKeyProof(t *testing.T, k *dpopKey, c proofClaims) string {
	return signed(t, jose.ES256, k.priv, jose.JSONWebKey{Key: k.priv}, "dpop+jwt", c)
}

// hmacProof is signed with HS256, a symmetric algorithm (§4.3 check 5).
func hmacProof(t *testing.T, k *dpopKey, c proofClaims) string {
	secret := []byte("a shared secret of thirty-two by")
	return signed(t, jose.HS256, secret, jose.JSONWebKey{Key: &k.priv.PublicKey}, "dpop+jwt", c)
}

// typedProof has another typ than dpop+jwt (§4.3 check 4).
func typedProof(t *testing.T, k *dpopKey, typ string, c proofClaims) string {
	return signed(t, jose.ES256, k.priv, jose.JSONWebKey{Key: &k.priv.PublicKey}, typ, c)
}

// unsignedProof has alg none and no signature, which go-jose will not
// write: it is put together by hand.
func unsignedProof(t *testing.T, k *dpopKey, c proofClaims) string {
	t.Helper()
	jwk, err := json.Marshal(jose.JSONWebKey{Key: &k.priv.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	header := `{"alg":"none","typ":"dpop+jwt","jwk":` + string(jwk) + `}`
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "."
}

// TestDPoPNonce: with Config.DPoPNonce the token endpoint asks for a
// server nonce (RFC 9449 §8): a proof without one gets use_dpop_nonce and
// a DPoP-Nonce header; the app's next proof carries it and succeeds.
func TestDPoPNonce(t *testing.T) {
	ts := newTestServer(t, serverOptions{Provider: func(c *provider.Config) { c.DPoPNonce = true }})
	key := newDPoPKey(t)
	form := ts.codeForm(t)
	tokenURL := ts.URL + handlers.PathToken
	res := ts.postForm(t, handlers.PathToken, form, http.Header{"Dpop": {key.proof(t, http.MethodPost, tokenURL, "")}})
	res.wantOAuthError(t, http.StatusBadRequest, "use_dpop_nonce")
	nonce := res.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	forged := newClaims(http.MethodPost, tokenURL, "")
	forged.Nonce = nonce[:len(nonce)-2] + "AA"
	ts.postForm(t, handlers.PathToken, form, http.Header{"Dpop": {key.sign(t, forged)}}).wantOAuthError(t, http.StatusBadRequest, "use_dpop_nonce")
	c := newClaims(http.MethodPost, tokenURL, "")
	c.Nonce = nonce
	if res := ts.postForm(t, handlers.PathToken, form, http.Header{"Dpop": {key.sign(t, c)}}); res.Status != http.StatusOK || res.JSON(t)["token_type"] != "DPoP" {
		t.Fatalf("exchange with the nonce: got %d %s, want DPoP tokens", res.Status, res.Body)
	}
	// x/oauth2 through a transport that takes up nonces, as an app's would.
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	if _, err := conf.Exchange(dpopContext(t, key), newBrowser(t, ts).code(t, ar), oauth2.VerifierOption(ar.Verifier)); err != nil {
		t.Errorf("exchange through the nonce-aware transport: %v", err)
	}
}

// TestDPoPAuthorizeJKT: a code bound at /authorize with dpop_jkt (RFC 9449
// §10) is redeemed only with a proof of that key.
func TestDPoPAuthorizeJKT(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key, other := newDPoPKey(t), newDPoPKey(t)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	ar.URL += "&dpop_jkt=" + key.jkt
	code := newBrowser(t, ts).code(t, ar)
	if _, err := ar.exchange(t.Context(), code); err == nil {
		t.Error("bound code without a proof: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	if _, err := conf.Exchange(dpopContext(t, other), code, oauth2.VerifierOption(ar.Verifier)); err == nil {
		t.Error("bound code with another key: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	tok, err := conf.Exchange(dpopContext(t, key), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("bound code with its key: %v", err)
	}
	if got := cnfJKT(jwtClaims(t, tok.AccessToken)); got != key.jkt {
		t.Errorf("got cnf.jkt %q, want %q", got, key.jkt)
	}

	// A dpop_jkt that is no thumbprint is refused at /authorize.
	bad := newAuthRequest(conf)
	p := newBrowser(t, ts).get(t, bad.URL+"&dpop_jkt=not-a-thumbprint")
	if p.Callback == nil || p.Callback.Query().Get("error") != "invalid_request" {
		t.Errorf("dpop_jkt not a thumbprint: got %d at %s, want a redirect with invalid_request", p.Status, p.URL)
	}
}

// TestDPoPRequired: a client registered with RequireDPoP, and every public
// client with Config.RequireDPoP, gets no tokens without a proof.
func TestDPoPRequired(t *testing.T) {
	const strict = "example-strict"
	for _, tc := range []struct {
		name   string
		client string
		config bool // Config.RequireDPoP
	}{
		{"PerClient", strict, false},
		{"AllPublicClients", nativeClient, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{
				Clients:  []*store.Client{{ID: strict, Name: "Strict App", RedirectURIs: []string{loopbackURI}, Scopes: strings.Fields(allScopes), Native: true, FirstParty: true, RequireDPoP: true}},
				Provider: func(c *provider.Config) { c.RequireDPoP = tc.config },
			})
			conf := ts.oauth2Config(tc.client, ts.loopbackRedirect(), allScopes)
			ar := newAuthRequest(conf)
			code := newBrowser(t, ts).code(t, ar)
			if _, err := ar.exchange(t.Context(), code); err == nil {
				t.Fatal("exchange without a proof: got tokens, want a refusal")
			} else {
				wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
			}
			if _, err := conf.Exchange(dpopContext(t, newDPoPKey(t)), code, oauth2.VerifierOption(ar.Verifier)); err != nil {
				t.Errorf("exchange with a proof: %v", err)
			}
		})
	}
}

// TestDPoPCoexistence: without a proof a client gets bearer tokens, as
// before, and the DPoP scheme is refused for them; a confidential client
// with a proof gets a bound access token and a refresh token bound to its
// credentials only (RFC 9449 §5).
func TestDPoPCoexistence(t *testing.T) {
	const webFirstParty = "example-web-first-party" // confidential, no consent page
	hash, err := apiSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: webFirstParty, Name: "Web App", SecretHash: hash, RedirectURIs: []string{"https://app.example.com/callback"},
		Scopes: strings.Fields(allScopes), FirstParty: true,
	}}})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	_, tok := newBrowser(t, ts).tokens(t, conf)
	if !strings.EqualFold(tok.TokenType, "bearer") || cnfJKT(jwtClaims(t, tok.AccessToken)) != "" {
		t.Errorf("without a proof: got token_type %q, cnf %v; want a bearer token", tok.TokenType, jwtClaims(t, tok.AccessToken)["cnf"])
	}
	if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
		t.Errorf("bearer token at userinfo: got %d %s", res.Status, res.Body)
	}
	key := newDPoPKey(t)
	wantChallenge(t, ts.dpopUserinfo(t, tok.AccessToken, key.proof(t, http.MethodGet, ts.URL+handlers.PathUserInfo, tok.AccessToken)), "invalid_token")

	web := ts.oauth2Config(webFirstParty, "https://app.example.com/callback", allScopes)
	web.ClientSecret = apiSecret
	ar := newAuthRequest(web)
	code := newBrowser(t, ts).code(t, ar)
	bound, err := web.Exchange(dpopContext(t, key), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("confidential exchange with a proof: %v", err)
	}
	if bound.TokenType != "DPoP" || cnfJKT(jwtClaims(t, bound.AccessToken)) != key.jkt {
		t.Errorf("confidential client: got token_type %q, want DPoP bound to the key", bound.TokenType)
	}
	if got := cnfJKT(ts.introspect(t, bound.RefreshToken)); got != "" {
		t.Errorf("confidential client's refresh token: got cnf.jkt %q, want none", got)
	}
	next, err := refresh(t.Context(), web, bound.RefreshToken)
	if err != nil {
		t.Fatalf("confidential refresh without a proof: %v", err)
	}
	if !strings.EqualFold(next.TokenType, "bearer") {
		t.Errorf("confidential refresh without a proof: got token_type %q, want bearer", next.TokenType)
	}
}

// TestDPoPDiscovery: the discovery documents list the proof algorithms.
func TestDPoPDiscovery(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, path := range []string{handlers.PathOIDCConfig, handlers.PathOAuthConfig} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
		m := send(t, nil, req).JSON(t)
		got, _ := m["dpop_signing_alg_values_supported"].([]any)
		var algs []string
		for _, a := range got {
			s, _ := a.(string)
			algs = append(algs, s)
		}
		if !slices.Equal(algs, []string{"ES256", "RS256", "PS256", "EdDSA"}) {
			t.Errorf("%s: got dpop_signing_alg_values_supported %v", path, m["dpop_signing_alg_values_supported"])
		}
	}
}

// TestDPoPPushedJKT: dpop_jkt pushed with the authorization request (RFC
// 9126 and RFC 9449 §10 together) binds the code as it does at /authorize.
func TestDPoPPushedJKT(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key, other := newDPoPKey(t), newDPoPKey(t)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	ar.URL += "&dpop_jkt=" + key.jkt
	ts.pushed(t, ar, nil)
	if strings.Contains(ar.URL, "dpop_jkt") {
		t.Fatalf("the browser's URL %s still carries dpop_jkt", ar.URL)
	}
	code := newBrowser(t, ts).code(t, ar)
	if _, err := conf.Exchange(dpopContext(t, other), code, oauth2.VerifierOption(ar.Verifier)); err == nil {
		t.Error("pushed bound code with another key: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	tok, err := conf.Exchange(dpopContext(t, key), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("pushed bound code with its key: %v", err)
	}
	if got := cnfJKT(jwtClaims(t, tok.AccessToken)); got != key.jkt {
		t.Errorf("got cnf.jkt %q, want %q", got, key.jkt)
	}

	// A pushed dpop_jkt that is no thumbprint is refused at the push.
	bad := pushParams(t, newAuthRequest(conf))
	bad.Set("dpop_jkt", "not-a-thumbprint")
	ts.push(t, bad, nil).wantOAuthError(t, http.StatusBadRequest, "invalid_request")
}

// TestDPoPPushedProof: a DPoP proof sent with the push (RFC 9449 §10.1)
// binds the code to its key as dpop_jkt does; one that disagrees with a
// dpop_jkt sent along, or names another URL, is refused at the push.
func TestDPoPPushedProof(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	key, other := newDPoPKey(t), newDPoPKey(t)
	parURL := ts.URL + parPath
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)

	ar := newAuthRequest(conf)
	ts.pushed(t, ar, http.Header{"Dpop": {key.proof(t, http.MethodPost, parURL, "")}})
	code := newBrowser(t, ts).code(t, ar)
	if _, err := conf.Exchange(dpopContext(t, other), code, oauth2.VerifierOption(ar.Verifier)); err == nil {
		t.Error("code pushed with a proof, redeemed with another key: got tokens, want a refusal")
	} else {
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_dpop_proof")
	}
	tok, err := conf.Exchange(dpopContext(t, key), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("code pushed with a proof, redeemed with its key: %v", err)
	}
	if got := cnfJKT(jwtClaims(t, tok.AccessToken)); got != key.jkt {
		t.Errorf("got cnf.jkt %q, want %q", got, key.jkt)
	}

	for _, tc := range []struct {
		name  string
		jkt   string // dpop_jkt pushed along; "" for none
		proof string
	}{
		{"DisagreesWithDPoPJKT", other.jkt, key.proof(t, http.MethodPost, parURL, "")},
		{"OtherURL", "", key.proof(t, http.MethodPost, ts.URL+handlers.PathToken, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := pushParams(t, newAuthRequest(conf))
			if tc.jkt != "" {
				form.Set("dpop_jkt", tc.jkt)
			}
			ts.push(t, form, http.Header{"Dpop": {tc.proof}}).wantOAuthError(t, http.StatusBadRequest, "invalid_dpop_proof")
		})
	}
}
