package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// This file holds the fixture of the package's internal tests (testEnv and
// its flow helpers) as well as the tests of the fosite storage adapter.

// The registered fixture: a native public client, a confidential web client
// allowed to introspect, and one user.
const (
	testIssuer     = "https://id.example.com"
	nativeID       = "native"
	nativeRedirect = "http://127.0.0.1/cb"
	webID          = "web"
	webSecret      = "web-secret-9f8e7d6c5b4a"
	webRedirect    = "https://app.example.com/cb"
	testSubject    = "248289761001"
	testState      = "state-0123456789"
	testNonce      = "nonce-0123456789"
)

// testEnv is a Provider over the real memory store.
type testEnv struct {
	p   *Provider
	mem *memory.Store
}

// newTestEnv registers the fixture in a fresh memory store and builds a
// provider on it. edit, if not nil, may change the config first (for
// instance wrap a store in a fault injector).
func newTestEnv(t testing.TB, edit func(*Config)) *testEnv {
	t.Helper()
	mem := memory.New()
	hash, err := store.HashSecret(webSecret)
	if err != nil {
		t.Fatalf("HashSecret: %v", err)
	}
	for _, c := range []*store.Client{{
		ID:           nativeID,
		Native:       true,
		RedirectURIs: []string{nativeRedirect},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
	}, {
		ID:           webID,
		SecretHash:   hash,
		RedirectURIs: []string{webRedirect},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
		Introspect:   true,
	}} {
		if err := mem.AddClient(t.Context(), c); err != nil {
			t.Fatalf("AddClient: %v", err)
		}
	}
	u := &store.User{Subject: testSubject, PreferredUsername: "alice", Name: "Alice Example", Email: "alice@example.com", EmailVerified: true}
	if err := mem.AddUser(t.Context(), u, "alice", "correct horse battery staple"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	return newTestEnvOn(t, mem, edit)
}

// newTestEnvOn builds a provider on an existing store: a restart, or a
// second replica sharing the store.
func newTestEnvOn(t testing.TB, mem *memory.Store, edit func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{
		Issuer:  testIssuer,
		Clients: mem, Users: mem, Grants: mem, Keys: mem,
		// Shown only for a failing test, or with -v.
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	return &testEnv{p: p, mem: mem}
}

// pkcePair returns a fresh RFC 7636 verifier and its S256 challenge.
func pkcePair(t testing.TB) (verifier, challenge string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeQuery is an authorization request of the native client.
func authorizeQuery(challenge, method string) url.Values {
	return url.Values{
		"client_id":             {nativeID},
		"response_type":         {"code"},
		"redirect_uri":          {nativeRedirect},
		"scope":                 {"openid profile offline_access"},
		"state":                 {testState},
		"nonce":                 {testNonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {method},
	}
}

// authorizeRequest returns GET /authorize with the query.
func authorizeRequest(q url.Values) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil)
}

// issued is an authorization code not yet redeemed.
type issued struct {
	code, verifier string
	clientID       string
	redirectURI    string
}

// issueCode runs the authorization endpoint for a client of the fixture
// (nativeID or webID) and returns the code.
func (e *testEnv) issueCode(t testing.TB, clientID string) issued {
	t.Helper()
	verifier, challenge := pkcePair(t)
	q := authorizeQuery(challenge, "S256")
	redirect := nativeRedirect
	if clientID == webID {
		redirect = webRedirect
		q.Set("client_id", webID)
		q.Set("redirect_uri", webRedirect)
	}
	areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(q))
	if err != nil {
		t.Fatalf("ParseAuthorizeRequest: got error %v, want nil", err)
	}
	to, err := e.p.issueCode(t.Context(), areq, Login{Subject: testSubject, AMR: []string{"pwd"}})
	if err != nil {
		t.Fatalf("IssueCode: got error %v, want nil", err)
	}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatalf("IssueCode: redirect %q: %v", to, err)
	}
	code := u.Query().Get("code")
	if code == "" || u.Query().Get("state") != testState {
		t.Fatalf("IssueCode: got redirect %q, want a code and state %q", to, testState)
	}
	return issued{code: code, verifier: verifier, clientID: clientID, redirectURI: redirect}
}

// formRequest returns a form POST to path.
func formRequest(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// authenticate adds the client's credentials to form: client_secret_post for
// the web client, client_id alone for the public one.
func authenticate(form url.Values, clientID string) url.Values {
	form.Set("client_id", clientID)
	if clientID == webID {
		form.Set("client_secret", webSecret)
	}
	return form
}

// redeem calls the token endpoint with the code.
func (e *testEnv) redeem(ctx context.Context, c issued) (map[string]any, error) {
	return e.p.token(ctx, formRequest("/oauth/token", authenticate(url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {c.code},
		"redirect_uri":  {c.redirectURI},
		"code_verifier": {c.verifier},
	}, c.clientID)))
}

// refresh calls the token endpoint with a refresh token.
func (e *testEnv) refresh(ctx context.Context, clientID, refreshToken string) (map[string]any, error) {
	return e.p.token(ctx, formRequest("/oauth/token", authenticate(url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	}, clientID)))
}

// tokens is a successful token response.
type tokens struct {
	access, refresh, id string
	expiresIn           int64
}

// login runs a whole authorization-code flow for the client.
func (e *testEnv) login(t testing.TB, clientID string) tokens {
	t.Helper()
	resp, err := e.redeem(t.Context(), e.issueCode(t, clientID))
	if err != nil {
		t.Fatalf("Token: got error %v, want nil", err)
	}
	return tokensOf(t, resp)
}

func tokensOf(t testing.TB, resp map[string]any) tokens {
	t.Helper()
	var tk tokens
	tk.access, _ = resp["access_token"].(string)
	tk.refresh, _ = resp["refresh_token"].(string)
	tk.id, _ = resp["id_token"].(string)
	tk.expiresIn, _ = resp["expires_in"].(int64)
	if tk.access == "" || tk.refresh == "" || tk.id == "" {
		t.Fatalf("token response %v: want access_token, refresh_token and id_token", resp)
	}
	return tk
}

// hmacSignature is the part of fosite's HMAC token after the dot: the
// signature the store keys it by.
func hmacSignature(t testing.TB, token string) string {
	t.Helper()
	_, sig, ok := strings.Cut(token, ".")
	if !ok || sig == "" {
		t.Fatalf("token %q has no signature part", token)
	}
	return sig
}

// asError returns err as an *engine.Error, failing the test if it is not one.
func asError(t testing.TB, err error) *engine.Error {
	t.Helper()
	var e *engine.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want an *engine.Error", err, err)
	}
	return e
}

// errStoreDown is what the fault injectors return: a database that went away.
var errStoreDown = errors.New("faulty: connection refused to db-internal.corp:5432")

// faultyGrants is the real memory store behind a switch that makes chosen
// methods fail as a database that went away would. It also records every
// record created, so that tests can inspect what reached the store.
type faultyGrants struct {
	store.Grants
	mu      sync.Mutex
	failing map[string]bool // method name → fail
	created []*store.Grant
	// beforeDelete, if set, runs before each Delete reaches the store: it
	// lets a test interleave another request's work deterministically.
	beforeDelete func(ctx context.Context, kind store.Kind, sig string)
}

func (f *faultyGrants) fail(methods ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing == nil {
		f.failing = map[string]bool{}
	}
	for _, m := range methods {
		f.failing[m] = true
	}
}

func (f *faultyGrants) down(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing[method]
}

func (f *faultyGrants) records() []*store.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.created)
}

func (f *faultyGrants) CreateGrant(ctx context.Context, g *store.Grant) error {
	if f.down("CreateGrant") {
		return errStoreDown
	}
	f.mu.Lock()
	f.created = append(f.created, g.Clone())
	f.mu.Unlock()
	return f.Grants.CreateGrant(ctx, g)
}

func (f *faultyGrants) Grant(ctx context.Context, kind store.Kind, sig string) (*store.Grant, error) {
	if f.down("Grant") {
		return nil, errStoreDown
	}
	return f.Grants.Grant(ctx, kind, sig)
}

func (f *faultyGrants) Consume(ctx context.Context, kind store.Kind, sig string) error {
	if f.down("Consume") {
		return errStoreDown
	}
	return f.Grants.Consume(ctx, kind, sig)
}

func (f *faultyGrants) Delete(ctx context.Context, kind store.Kind, sig string) error {
	if f.down("Delete") {
		return errStoreDown
	}
	f.mu.Lock()
	hook := f.beforeDelete
	f.mu.Unlock()
	if hook != nil {
		hook(ctx, kind, sig)
	}
	return f.Grants.Delete(ctx, kind, sig)
}

func (f *faultyGrants) Revoke(ctx context.Context, kind store.Kind, requestID string) error {
	if f.down("Revoke") {
		return errStoreDown
	}
	return f.Grants.Revoke(ctx, kind, requestID)
}

// faultyClients is the real memory store's client lookup behind a switch.
type faultyClients struct {
	store.Clients
	isDown atomic.Bool
}

func (f *faultyClients) Client(ctx context.Context, id string) (*store.Client, error) {
	if f.isDown.Load() {
		return nil, errStoreDown
	}
	return f.Clients.Client(ctx, id)
}

// newFaultyEnv is a testEnv whose grant and client stores can be failed.
func newFaultyEnv(t testing.TB) (*testEnv, *faultyGrants, *faultyClients) {
	t.Helper()
	var fg *faultyGrants
	var fc *faultyClients
	e := newTestEnv(t, func(c *Config) {
		fg = &faultyGrants{Grants: c.Grants}
		fc = &faultyClients{Clients: c.Clients}
		c.Grants, c.Clients = fg, fc
		c.ClientCacheTTL = -1 // every lookup reaches the failing store
	})
	return e, fg, fc
}

// testRequest is a fosite request of the native client as the token
// endpoint would hold it, with every secret-bearing parameter in its form.
func testRequest(t testing.TB, e *testEnv, id string) *fosite.Request {
	t.Helper()
	c, err := e.mem.Client(t.Context(), nativeID)
	if err != nil {
		t.Fatal(err)
	}
	sess := newSession()
	sess.Subject = testSubject
	sess.Claims.Subject = testSubject
	sess.SetExpiresAt(fosite.AuthorizeCode, time.Now().Add(time.Minute))
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(24*time.Hour))
	return &fosite.Request{
		ID:             id,
		RequestedAt:    time.Now().UTC().Truncate(time.Second),
		Client:         e.p.fositeClient(c),
		RequestedScope: fosite.Arguments{"openid", "offline_access"},
		GrantedScope:   fosite.Arguments{"openid", "offline_access"},
		Form: url.Values{
			"code":          {"ory_ac_RAWCODE.codesig"},
			"code_verifier": {"RAW-VERIFIER-dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"},
			"refresh_token": {"ory_rt_RAWREFRESH.refreshsig"},
			"client_secret": {"RAW-CLIENT-SECRET"},
			"id_token_hint": {"RAW.ID.TOKEN"},
			"redirect_uri":  {nativeRedirect},
			"scope":         {"openid offline_access"},
			"grant_type":    {"refresh_token"},
		},
		Session: sess,
	}
}

// TestStoredDataHoldsNoSecrets serializes, through every create method of
// the adapter, a request whose form carries a code, a verifier, a refresh
// token, a client secret and an ID token, and checks that none of them
// reaches the store, while the parameters fosite reads back do.
func TestStoredDataHoldsNoSecrets(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	const rawCode = "ory_ac_RAWOIDCCODE.oidcsig"

	tests := []struct {
		name   string
		kind   store.Kind
		sig    string // the key the record is stored under
		create func(r fosite.Requester) error
	}{
		{"AuthorizeCode", store.KindAuthorizeCode, "ac-sig", func(r fosite.Requester) error {
			return s.CreateAuthorizeCodeSession(ctx, "ac-sig", r)
		}},
		{"PKCE", store.KindPKCE, "pkce-sig", func(r fosite.Requester) error {
			return s.CreatePKCERequestSession(ctx, "pkce-sig", r)
		}},
		{"OIDC", store.KindOIDC, oidcKey(rawCode), func(r fosite.Requester) error {
			return s.CreateOpenIDConnectSession(ctx, rawCode, r)
		}},
		{"AccessToken", store.KindAccessToken, "at-sig", func(r fosite.Requester) error {
			return s.CreateAccessTokenSession(ctx, "at-sig", r)
		}},
		{"RefreshToken", store.KindRefreshToken, "rt-sig", func(r fosite.Requester) error {
			return s.CreateRefreshTokenSession(ctx, "rt-sig", "at-sig", r)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest(t, e, "req-"+tc.name)
			if err := tc.create(r); err != nil {
				t.Fatalf("create: got error %v, want nil", err)
			}
			g, err := e.mem.Grant(ctx, tc.kind, tc.sig)
			if err != nil {
				t.Fatalf("Grant(%s, %q): got error %v, want nil", tc.kind, tc.sig, err)
			}
			data := string(g.Data)
			for _, param := range []string{"code", "code_verifier", "refresh_token", "client_secret", "id_token_hint"} {
				raw := r.Form.Get(param)
				if strings.Contains(data, raw) {
					t.Errorf("stored data holds the raw %s %q: %s", param, raw, data)
				}
			}
			if strings.Contains(data, rawCode) {
				t.Errorf("stored data holds the raw code %q", rawCode)
			}
			// The whitelist keeps what fosite reads back.
			if !strings.Contains(data, nativeRedirect) {
				t.Errorf("stored data lost redirect_uri %q: %s", nativeRedirect, data)
			}
			if g.RequestID != r.ID || g.ClientID != nativeID || g.Subject != testSubject {
				t.Errorf("got request %q, client %q, subject %q, want %q, %q, %q",
					g.RequestID, g.ClientID, g.Subject, r.ID, nativeID, testSubject)
			}
		})
	}
}

// TestFlowStoresNoSecrets runs a real flow of the confidential client (code,
// redemption with client_secret_post, refresh) and checks that no record
// created on the way holds a raw code, verifier, token or secret, in its data
// or as its key.
func TestFlowStoresNoSecrets(t *testing.T) {
	e, fg, _ := newFaultyEnv(t)
	c := e.issueCode(t, webID)
	resp, err := e.redeem(t.Context(), c)
	if err != nil {
		t.Fatalf("Token: got error %v, want nil", err)
	}
	first := tokensOf(t, resp)
	resp, err = e.refresh(t.Context(), webID, first.refresh)
	if err != nil {
		t.Fatalf("refresh: got error %v, want nil", err)
	}
	second := tokensOf(t, resp)

	secrets := map[string]string{
		"code":                 c.code,
		"code_verifier":        c.verifier,
		"client_secret":        webSecret,
		"access_token":         first.access,
		"refresh_token":        first.refresh,
		"id_token":             first.id,
		"rotated access_token": second.access,
		"rotated refresh":      second.refresh,
	}
	recs := fg.records()
	if len(recs) < 5 { // code (with its PKCE and OIDC requests), 2 access, 2 refresh
		t.Fatalf("got %d records created, want at least 5", len(recs))
	}
	for _, g := range recs {
		for name, raw := range secrets {
			if strings.Contains(string(g.Data), raw) {
				t.Errorf("%s record %q: data holds the raw %s", g.Kind, g.Signature, name)
			}
			if g.Signature == raw {
				t.Errorf("%s record is keyed by the raw %s", g.Kind, name)
			}
		}
	}
}

// TestCodeRecordBundled checks that an authorization is one record: the
// code's, under fosite's HMAC signature of the code, holding the PKCE
// challenge and the OIDC request (nonce) but not the raw code; none under
// the raw code or its SHA-256, no separate PKCE or OIDC record. Redeeming
// the code consumes the record, which stays (inactive) to detect replays.
func TestCodeRecordBundled(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	c := e.issueCode(t, nativeID)
	sum := sha256.Sum256([]byte(c.code))
	hashed := base64.RawURLEncoding.EncodeToString(sum[:])
	sig := hmacSignature(t, c.code)
	for _, kind := range []store.Kind{store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC, store.KindAccessToken, store.KindRefreshToken} {
		for _, key := range []string{c.code, hashed} {
			if _, err := e.mem.Grant(ctx, kind, key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Grant(%s, %.12s…): got error %v, want ErrNotFound", kind, key, err)
			}
		}
	}
	for _, kind := range []store.Kind{store.KindPKCE, store.KindOIDC} {
		if _, err := e.mem.Grant(ctx, kind, sig); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Grant(%s, HMAC signature): got error %v, want ErrNotFound (bundled)", kind, err)
		}
	}
	g, err := e.mem.Grant(ctx, store.KindAuthorizeCode, sig)
	if err != nil {
		t.Fatalf("Grant(code, HMAC signature): got error %v, want nil", err)
	}
	if g.ClientID != nativeID || g.Subject != testSubject {
		t.Errorf("code record: got client %q subject %q, want %q %q", g.ClientID, g.Subject, nativeID, testSubject)
	}
	data := string(g.Data)
	sum = sha256.Sum256([]byte(c.verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	for _, want := range []string{challenge, `"nonce"`, `"bundle":true`, `"oidc":true`} {
		if !strings.Contains(data, want) {
			t.Errorf("code record lacks %s: %s", want, data)
		}
	}
	if strings.Contains(data, c.code) {
		t.Errorf("code record holds the raw code")
	}

	resp, err := e.redeem(ctx, c)
	if err != nil {
		t.Fatalf("Token: got error %v, want nil", err)
	}
	if tokensOf(t, resp).id == "" {
		t.Error("Token: got no ID token for an openid request")
	}
	if g, err := e.mem.Grant(ctx, store.KindAuthorizeCode, sig); err != nil || g.Active {
		t.Errorf("after redemption, code record: got %+v, %v, want an inactive record", g, err)
	}
}

// TestCodeRecordUnbundled: a code stored by an earlier version, as three
// records (the code, its PKCE record under the same signature, its OIDC
// record under SHA-256 of the code), still redeems during an upgrade: the
// verifier is checked against the PKCE record, the ID token made from the
// OIDC record, and the code is consumed.
func TestCodeRecordUnbundled(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	c := e.issueCode(t, nativeID)
	sig := hmacSignature(t, c.code)
	g, err := e.mem.Grant(ctx, store.KindAuthorizeCode, sig)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the bundled record as the three of the earlier format.
	old := g.Clone()
	old.Data = []byte(strings.Replace(string(old.Data), `,"bundle":true,"oidc":true`, "", 1))
	if string(old.Data) == string(g.Data) {
		t.Fatalf("code record has no bundle flags: %s", g.Data)
	}
	if err := e.mem.Delete(ctx, store.KindAuthorizeCode, sig); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(c.code))
	hashed := base64.RawURLEncoding.EncodeToString(sum[:])
	for _, r := range []struct {
		kind store.Kind
		sig  string
	}{{store.KindAuthorizeCode, sig}, {store.KindPKCE, sig}, {store.KindOIDC, hashed}} {
		rec := old.Clone()
		rec.Kind, rec.Signature = r.kind, r.sig
		if err := e.mem.CreateGrant(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}

	wrong := c
	wrong.verifier = strings.Repeat("w", 43)
	if _, err := e.redeem(ctx, wrong); err == nil {
		t.Fatal("Token with a wrong verifier: got nil error, want invalid_grant")
	}
	resp, err := e.redeem(ctx, c)
	if err != nil {
		t.Fatalf("Token: got error %v, want nil", err)
	}
	if tokensOf(t, resp).id == "" {
		t.Error("Token: got no ID token from the OIDC record")
	}
	// The companions are left to expire with the code (the exchange's
	// writes are one batch); the code itself is consumed, so nothing can
	// be redeemed with them again.
	if g, err := e.mem.Grant(ctx, store.KindAuthorizeCode, sig); err != nil || g.Active {
		t.Errorf("after redemption, code record: got %+v, %v, want an inactive record", g, err)
	}
	if _, err := e.redeem(ctx, c); err == nil {
		t.Error("second redemption: got nil error, want invalid_grant")
	}
}

// TestConsumedCode covers the authorization code contract: a consumed code
// is returned with fosite.ErrInvalidatedAuthorizeCode (so that fosite revokes
// what was issued from it), and a second invalidation loses the
// compare-and-set.
func TestConsumedCode(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	if err := s.CreateAuthorizeCodeSession(ctx, "code-sig", testRequest(t, e, "req-1")); err != nil {
		t.Fatalf("CreateAuthorizeCodeSession: %v", err)
	}

	r, err := s.GetAuthorizeCodeSession(ctx, "code-sig", newSession())
	if err != nil || r == nil || r.GetID() != "req-1" {
		t.Fatalf("active code: got %v, %v, want request req-1 and nil", r, err)
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
		t.Fatalf("first Invalidate: got error %v, want nil", err)
	}
	r, err = s.GetAuthorizeCodeSession(ctx, "code-sig", newSession())
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Errorf("consumed code: got error %v, want ErrInvalidatedAuthorizeCode", err)
	}
	if r == nil || r.GetID() != "req-1" {
		t.Errorf("consumed code: got request %v, want req-1 (fosite needs its ID to revoke)", r)
	} else if sess, ok := r.GetSession().(*session); !ok || sess.Subject != testSubject {
		t.Errorf("consumed code: got session %#v, want subject %q", r.GetSession(), testSubject)
	}
	err = s.InvalidateAuthorizeCodeSession(ctx, "code-sig")
	if !errors.Is(err, store.ErrConsumed) {
		t.Errorf("second Invalidate: got error %v, want one wrapping store.ErrConsumed", err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "no-such-code", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("unknown code: got error %v, want fosite.ErrNotFound", err)
	}
}

// TestInvalidateCodeConcurrently: of concurrent invalidations of one code,
// exactly one succeeds.
func TestInvalidateCodeConcurrently(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	if err := s.CreateAuthorizeCodeSession(t.Context(), "code-sig", testRequest(t, e, "req-1")); err != nil {
		t.Fatal(err)
	}
	wins := race(t, 16, func() error { return s.InvalidateAuthorizeCodeSession(t.Context(), "code-sig") })
	if wins != 1 {
		t.Errorf("got %d successful invalidations, want 1", wins)
	}
}

// race runs f in n goroutines at once and returns how many got nil; every
// other result must wrap store.ErrConsumed.
func race(t *testing.T, n int, f func() error) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConsumed):
			t.Errorf("loser: got error %v, want one wrapping store.ErrConsumed", err)
		}
	}
	return wins
}

// TestRotateRefreshToken: rotation consumes the refresh token with a
// compare-and-set and revokes the access tokens of its request, not of
// others; the rotated token then comes back with fosite.ErrInactiveToken.
func TestRotateRefreshToken(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	reqA, reqB := testRequest(t, e, "req-A"), testRequest(t, e, "req-B")
	for _, err := range []error{
		s.CreateRefreshTokenSession(ctx, "rt-A", "at-A", reqA),
		s.CreateAccessTokenSession(ctx, "at-A", reqA),
		s.CreateAccessTokenSession(ctx, "at-B", reqB),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	if wins := race(t, 8, func() error { return s.RotateRefreshToken(ctx, "req-A", "rt-A") }); wins != 1 {
		t.Fatalf("got %d successful rotations, want 1", wins)
	}
	for _, tc := range []struct {
		kind       store.Kind
		sig        string
		wantActive bool
	}{
		{store.KindRefreshToken, "rt-A", false}, // consumed
		{store.KindAccessToken, "at-A", false},  // revoked with its request
		{store.KindAccessToken, "at-B", true},   // another request: untouched
	} {
		g, err := e.mem.Grant(ctx, tc.kind, tc.sig)
		if err != nil {
			t.Fatalf("Grant(%s, %s): %v", tc.kind, tc.sig, err)
		}
		if g.Active != tc.wantActive {
			t.Errorf("%s %s: got active %v, want %v", tc.kind, tc.sig, g.Active, tc.wantActive)
		}
	}

	r, err := s.GetRefreshTokenSession(ctx, "rt-A", newSession())
	if !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("rotated refresh token: got error %v, want fosite.ErrInactiveToken", err)
	}
	if r == nil || r.GetID() != "req-A" {
		t.Errorf("rotated refresh token: got request %v, want req-A (fosite revokes the family by its ID)", r)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-A", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("revoked access token: got error %v, want fosite.ErrNotFound", err)
	}
	if err := s.RotateRefreshToken(ctx, "req-A", "rt-missing"); !errors.Is(err, store.ErrConsumed) {
		t.Errorf("rotating an unknown token: got error %v, want one wrapping store.ErrConsumed", err)
	}
}

// TestGetSessionWithoutPrototype: fosite's revocation handler passes a nil
// session; the adapter must decode into a fresh one.
func TestGetSessionWithoutPrototype(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	req := testRequest(t, e, "req-1")
	if err := s.CreateRefreshTokenSession(ctx, "rt", "at", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(ctx, "at", req); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		get  func() (fosite.Requester, error)
	}{
		{"RefreshToken", func() (fosite.Requester, error) { return s.GetRefreshTokenSession(ctx, "rt", nil) }},
		{"AccessToken", func() (fosite.Requester, error) { return s.GetAccessTokenSession(ctx, "at", nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.get()
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := r.GetSession().GetSubject(); got != testSubject {
				t.Errorf("got subject %q, want %q", got, testSubject)
			}
			if got := r.GetClient().GetID(); got != nativeID {
				t.Errorf("got client %q, want %q", got, nativeID)
			}
		})
	}

	// Through the real revocation handler: revoking the refresh token
	// revokes the grant's access token too.
	tk := e.login(t, webID)
	form := authenticate(url.Values{"token": {tk.refresh}}, webID)
	if err := e.p.revoke(ctx, formRequest("/oauth/revoke", form)); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	if _, err := e.p.userInfoClaims(ctx, tk.access); err == nil || asError(t, err).Code != engine.CodeInvalidToken {
		t.Errorf("UserInfo after revocation: got error %v, want invalid_token", err)
	}
	if _, err := e.refresh(ctx, webID, tk.refresh); err == nil || asError(t, err).Code != engine.CodeInvalidGrant {
		t.Errorf("refresh after revocation: got error %v, want invalid_grant", err)
	}
}

// TestReplayedCodeRevokesTokens: redeeming a code twice is invalid_grant and
// revokes what the first redemption issued (RFC 6749 §4.1.2).
func TestReplayedCodeRevokesTokens(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	c := e.issueCode(t, nativeID)
	resp, err := e.redeem(ctx, c)
	if err != nil {
		t.Fatalf("first redemption: got error %v, want nil", err)
	}
	tk := tokensOf(t, resp)
	if _, err := e.p.userInfoClaims(ctx, tk.access); err != nil {
		t.Fatalf("UserInfo before the replay: got error %v, want nil", err)
	}
	_, err = e.redeem(ctx, c)
	if err == nil || asError(t, err).Code != engine.CodeInvalidGrant {
		t.Fatalf("replay: got error %v, want invalid_grant", err)
	}
	if _, err := e.p.userInfoClaims(ctx, tk.access); err == nil || asError(t, err).Code != engine.CodeInvalidToken {
		t.Errorf("UserInfo after the replay: got error %v, want invalid_token", err)
	}
	if _, err := e.refresh(ctx, nativeID, tk.refresh); err == nil || asError(t, err).Code != engine.CodeInvalidGrant {
		t.Errorf("refresh after the replay: got error %v, want invalid_grant", err)
	}
}

// TestConcurrentRedemption: of concurrent redemptions of one code, or of
// concurrent refreshes with one refresh token, exactly one succeeds and the
// others get invalid_grant (the contract in Provider.Token's doc).
func TestConcurrentRedemption(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		name string
		// setup returns the call to race, on a grant of its own.
		setup func(t *testing.T) func() (map[string]any, error)
	}{
		{"Code", func(t *testing.T) func() (map[string]any, error) {
			c := e.issueCode(t, nativeID)
			return func() (map[string]any, error) { return e.redeem(t.Context(), c) }
		}},
		{"RefreshToken", func(t *testing.T) func() (map[string]any, error) {
			rt := e.login(t, nativeID).refresh
			return func() (map[string]any, error) { return e.refresh(t.Context(), nativeID, rt) }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			concurrently(t, 8, tc.setup(t))
		})
	}
}

// concurrently runs call in n goroutines at once and checks that exactly
// one succeeds and the others get invalid_grant.
func concurrently(t *testing.T, n int, call func() (map[string]any, error)) {
	t.Helper()
	var wg sync.WaitGroup
	resps := make([]map[string]any, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resps[i], errs[i] = call()
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			tokensOf(t, resps[i])
			continue
		}
		if e := asError(t, err); e.Code != engine.CodeInvalidGrant {
			t.Errorf("loser: got %s (%d) %q, want invalid_grant", e.Code, e.Status, e.Description)
		}
	}
	if wins != 1 {
		t.Fatalf("got %d successes, want 1", wins)
	}
}

// TestRefreshReuseRace replays a rotated refresh token while another replay
// of it has just been handled: fosite detects the reuse and deletes the
// rotated record, but the record is already gone. The replay must still be
// invalid_grant, as every other reuse is, not invalid_request ("Please retry
// the request"), which tells a client to try the same token again.
// TestConcurrentRedemption/RefreshToken hits this window by chance.
func TestRefreshReuseRace(t *testing.T) {
	e, fg, _ := newFaultyEnv(t)
	ctx := t.Context()
	old := e.login(t, nativeID).refresh
	if _, err := e.refresh(ctx, nativeID, old); err != nil {
		t.Fatalf("first refresh: got error %v, want nil", err)
	}
	fg.mu.Lock()
	fg.beforeDelete = func(ctx context.Context, kind store.Kind, sig string) {
		if kind == store.KindRefreshToken {
			// The concurrent replay's reuse handling wins the delete.
			_ = e.mem.Delete(ctx, kind, sig)
		}
	}
	fg.mu.Unlock()

	_, err := e.refresh(ctx, nativeID, old)
	if err == nil {
		t.Fatal("replay of a rotated refresh token: got nil error, want invalid_grant")
	}
	if oe := asError(t, err); oe.Code != engine.CodeInvalidGrant || oe.Status != http.StatusBadRequest {
		t.Errorf("replay of a rotated refresh token: got %s (%d) %q, want invalid_grant (400)", oe.Code, oe.Status, oe.Description)
	}
}

// TestStoreFailureIsInternal: a failing store surfaces from the adapter as
// an *internalError, which fosite cannot mistake for a client error.
func TestStoreFailureIsInternal(t *testing.T) {
	e, fg, fc := newFaultyEnv(t)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	req := testRequest(t, e, "req-1")
	if err := s.CreateAuthorizeCodeSession(ctx, "code", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt", "at", req); err != nil {
		t.Fatal(err)
	}
	if err := e.mem.AddClient(t.Context(), &store.Client{ID: "broken", RedirectURIs: []string{"http://app.example.com/cb"}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		call func() error
		down func() // the fault to inject
	}{
		{"GetClient", func() error { _, err := s.GetClient(ctx, nativeID); return err }, func() { fc.isDown.Store(true) }},
		// A registration that breaks the rules is the operator's fault.
		{"GetClientInvalidRegistration", func() error { _, err := s.GetClient(ctx, "broken"); return err }, func() {}},
		{"GetAuthorizeCodeSession", func() error { _, err := s.GetAuthorizeCodeSession(ctx, "code", newSession()); return err }, func() { fg.fail("Grant") }},
		{"GetRefreshTokenSession", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt", nil); return err }, func() { fg.fail("Grant") }},
		{"GetAuthorizeCodeSessionClientDown", func() error { _, err := s.GetAuthorizeCodeSession(ctx, "code", newSession()); return err }, func() { fc.isDown.Store(true) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.down()
			t.Cleanup(func() {
				fc.isDown.Store(false)
				fg.mu.Lock()
				fg.failing = nil
				fg.mu.Unlock()
			})
			err := tc.call()
			var ie *internalError
			if !errors.As(err, &ie) {
				t.Fatalf("got error %v (%T), want an *internalError", err, err)
			}
			if errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("got error %v, which fosite reads as not found", err)
			}
			oe := e.p.oauthError(ctx, "test", err)
			if oe.Code != engine.CodeServerError || oe.Status != http.StatusInternalServerError {
				t.Errorf("oauthError: got %s (%d), want server_error (500)", oe.Code, oe.Status)
			}
		})
	}
}

// TestStoreFailureIsServerError drives every endpoint of the provider while
// a store fails. Each must answer server_error with status 500, never a
// client error such as invalid_client or invalid_grant, and must not leak
// the cause to the client.
func TestStoreFailureIsServerError(t *testing.T) {
	tests := []struct {
		name    string
		grants  []string // grant store methods that fail
		clients bool     // whether the client store fails
		// dropsCause: fosite's revocation handler answers a store failure
		// with temporarily_unavailable and drops the cause, so it cannot
		// reach the log through Unwrap.
		dropsCause bool
		// call runs the endpoint; c is an unredeemed code of the web
		// client and tk tokens issued to it earlier.
		call func(t *testing.T, e *testEnv, c issued, tk tokens) error
	}{
		{"AuthorizeClientLookup", nil, true, false, func(t *testing.T, e *testEnv, _ issued, _ tokens) error {
			_, challenge := pkcePair(t)
			_, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(authorizeQuery(challenge, "S256")))
			return err
		}},
		{"IssueCodeCreate", []string{"CreateGrant"}, false, false, func(t *testing.T, e *testEnv, _ issued, _ tokens) error {
			_, challenge := pkcePair(t)
			areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(authorizeQuery(challenge, "S256")))
			if err != nil {
				t.Fatalf("ParseAuthorizeRequest: %v", err)
			}
			_, err = e.p.issueCode(t.Context(), areq, Login{Subject: testSubject})
			return err
		}},
		{"TokenClientLookup", nil, true, false, func(t *testing.T, e *testEnv, c issued, _ tokens) error {
			_, err := e.redeem(t.Context(), c)
			return err
		}},
		{"TokenCodeLookup", []string{"Grant"}, false, false, func(t *testing.T, e *testEnv, c issued, _ tokens) error {
			_, err := e.redeem(t.Context(), c)
			return err
		}},
		{"TokenCodeConsume", []string{"Consume"}, false, false, func(t *testing.T, e *testEnv, c issued, _ tokens) error {
			_, err := e.redeem(t.Context(), c)
			return err
		}},
		{"TokenCreate", []string{"CreateGrant"}, false, false, func(t *testing.T, e *testEnv, c issued, _ tokens) error {
			_, err := e.redeem(t.Context(), c)
			return err
		}},
		{"RefreshLookup", []string{"Grant"}, false, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.refresh(t.Context(), webID, tk.refresh)
			return err
		}},
		{"RefreshRotate", []string{"Consume"}, false, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.refresh(t.Context(), webID, tk.refresh)
			return err
		}},
		{"RefreshClientLookup", nil, true, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.refresh(t.Context(), webID, tk.refresh)
			return err
		}},
		{"RevokeLookup", []string{"Grant"}, false, true, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			return e.p.revoke(t.Context(), formRequest("/oauth/revoke", authenticate(url.Values{"token": {tk.refresh}}, webID)))
		}},
		{"RevokeRevoke", []string{"Revoke"}, false, true, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			return e.p.revoke(t.Context(), formRequest("/oauth/revoke", authenticate(url.Values{"token": {tk.refresh}}, webID)))
		}},
		{"RevokeClientLookup", nil, true, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			return e.p.revoke(t.Context(), formRequest("/oauth/revoke", authenticate(url.Values{"token": {tk.refresh}}, webID)))
		}},
		{"IntrospectLookup", []string{"Grant"}, false, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.p.introspect(t.Context(), formRequest("/oauth/introspect", authenticate(url.Values{"token": {tk.access}}, webID)))
			return err
		}},
		{"IntrospectClientLookup", nil, true, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.p.introspect(t.Context(), formRequest("/oauth/introspect", authenticate(url.Values{"token": {tk.access}}, webID)))
			return err
		}},
		{"UserInfoLookup", []string{"Grant"}, false, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.p.userInfoClaims(t.Context(), tk.access)
			return err
		}},
		{"UserInfoClientLookup", nil, true, false, func(t *testing.T, e *testEnv, _ issued, tk tokens) error {
			_, err := e.p.userInfoClaims(t.Context(), tk.access)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, fg, fc := newFaultyEnv(t)
			tk := e.login(t, webID)
			c := e.issueCode(t, webID)
			fg.fail(tc.grants...)
			fc.isDown.Store(tc.clients)

			err := tc.call(t, e, c, tk)
			if err == nil {
				t.Fatal("got nil error, want server_error")
			}
			var oe *engine.Error
			if !errors.As(err, &oe) {
				t.Fatalf("got error %v (%T), want an *engine.Error", err, err)
			}
			if oe.Code != engine.CodeServerError || oe.Status != http.StatusInternalServerError {
				t.Errorf("got %s (%d) %q, want server_error (500)", oe.Code, oe.Status, oe.Description)
			}
			if strings.Contains(oe.Description, "db-internal") || strings.Contains(oe.Description, "faulty") {
				t.Errorf("description %q leaks the cause", oe.Description)
			}
			if !tc.dropsCause && !errors.Is(err, errStoreDown) {
				t.Errorf("got error %v, want it to wrap the store's error for the log", err)
			}
			var ae *engine.AuthorizeError
			if errors.As(err, &ae) && ae.RedirectURL != "" && !strings.Contains(ae.RedirectURL, "error=server_error") {
				t.Errorf("got redirect %q, want error=server_error", ae.RedirectURL)
			}
		})
	}
}

// TestStoredRequestRoundTrip: what the adapter reads back is what was
// stored, and a fresh copy each time.
func TestStoredRequestRoundTrip(t *testing.T) {
	e := newTestEnv(t, nil)
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	req := testRequest(t, e, "req-1")
	req.Session.(*session).Claims.Extra = map[string]any{"email": "alice@example.com"}
	if err := s.CreateAccessTokenSession(ctx, "at", req); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccessTokenSession(ctx, "at", newSession())
	if err != nil {
		t.Fatalf("GetAccessTokenSession: %v", err)
	}
	if got.GetID() != req.ID || !got.GetRequestedAt().Equal(req.RequestedAt) {
		t.Errorf("got ID %q requested at %v, want %q %v", got.GetID(), got.GetRequestedAt(), req.ID, req.RequestedAt)
	}
	if !slices.Equal(got.GetGrantedScopes(), req.GrantedScope) {
		t.Errorf("got granted scopes %v, want %v", got.GetGrantedScopes(), req.GrantedScope)
	}
	if got.GetRequestForm().Get("redirect_uri") != nativeRedirect {
		t.Errorf("got form %v, want redirect_uri %q", got.GetRequestForm(), nativeRedirect)
	}
	sess := got.GetSession().(*session)
	if sess.Claims.Extra["email"] != "alice@example.com" {
		t.Errorf("got claims %v, want email alice@example.com", sess.Claims.Extra)
	}
	wantExp := req.Session.GetExpiresAt(fosite.AccessToken)
	if !sess.GetExpiresAt(fosite.AccessToken).Equal(wantExp) {
		t.Errorf("got access token expiry %v, want %v", sess.GetExpiresAt(fosite.AccessToken), wantExp)
	}
	g, err := e.mem.Grant(ctx, store.KindAccessToken, "at")
	if err != nil {
		t.Fatal(err)
	}
	if !g.ExpiresAt.Equal(wantExp.UTC()) {
		t.Errorf("record expires at %v, want the access token expiry %v", g.ExpiresAt, wantExp.UTC())
	}
	// Mutating what was returned does not change the next read.
	sess.Subject = "mallory"
	again, err := s.GetAccessTokenSession(ctx, "at", newSession())
	if err != nil {
		t.Fatal(err)
	}
	if got := again.GetSession().GetSubject(); got != testSubject {
		t.Errorf("after mutating a read, got subject %q, want %q", got, testSubject)
	}
	// The documented format: version line, request, session.
	version, rest, _ := strings.Cut(string(g.Data), "\n")
	head, sessJSON, _ := strings.Cut(rest, "\n")
	var sr storedRequest
	var ds session
	if version != "1" || json.Unmarshal([]byte(head), &sr) != nil || json.Unmarshal([]byte(sessJSON), &ds) != nil {
		t.Errorf("got data %q, want \"1\\n\", the request as JSON, \"\\n\", the session as JSON", g.Data)
	} else if sr.ID != req.ID || ds.Subject != testSubject {
		t.Errorf("decoded request %q subject %q, want %q %q", sr.ID, ds.Subject, req.ID, testSubject)
	}
}

// TestDeleteExpired: Provider.DeleteExpired removes the records that expired
// by Config.Now, active or not, and keeps the others; a grant store that
// cannot delete expired records yields ErrNoCleanup.
func TestDeleteExpired(t *testing.T) {
	clk := newFakeClock()
	e := newTestEnv(t, withClock(clk, nil))
	s := &fositeStorage{p: e.p}
	ctx := t.Context()
	req := testRequest(t, e, "req-1") // code: 1 minute, access: 1 hour, refresh: 1 day
	for _, err := range []error{
		s.CreateAuthorizeCodeSession(ctx, "code", req),
		s.CreateAccessTokenSession(ctx, "at", req),
		s.CreateRefreshTokenSession(ctx, "rt", "at", req),
		s.InvalidateAuthorizeCodeSession(ctx, "code"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The expiries above are from the wall clock; move Config.Now past the
	// access token's but not the refresh token's.
	clk.Advance(time.Until(req.Session.GetExpiresAt(fosite.AccessToken)) + 12*time.Hour + time.Minute)

	n, err := e.p.DeleteExpired(ctx)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpired: got %d, %v, want 2 (the consumed code and the access token), nil", n, err)
	}
	for _, tc := range []struct {
		kind store.Kind
		sig  string
		want error // nil: still there
	}{
		{store.KindAuthorizeCode, "code", store.ErrNotFound},
		{store.KindAccessToken, "at", store.ErrNotFound},
		{store.KindRefreshToken, "rt", nil},
	} {
		if _, err := e.mem.Grant(ctx, tc.kind, tc.sig); !errors.Is(err, tc.want) {
			t.Errorf("Grant(%s): got error %v, want %v", tc.kind, err, tc.want)
		}
	}

	f, _, _ := newFaultyEnv(t) // its grant store is a wrapper without DeleteExpired
	if _, err := f.p.DeleteExpired(ctx); !errors.Is(err, ErrNoCleanup) {
		t.Errorf("DeleteExpired on a store without the capability: got %v, want ErrNoCleanup", err)
	}
}

var updateFlowRecords = flag.Bool("update-flow-records", false,
	"rewrite ../store/memory/testdata/flow-records.json from a real flow")

// flowRecordsFile holds the Data of the records of one real flow and one
// refresh, which store/memory's BenchmarkGrantFootprint stores: the memory
// store's footprint depends on what the provider writes, so the benchmark
// uses what it writes, not a guess.
var flowRecordsFile = filepath.Join("..", "store", "memory", "testdata", "flow-records.json")

// flowSample is the content of flowRecordsFile.
type flowSample struct {
	// RequestID is the request ID in the Data, which the benchmark
	// replaces with each flow's own.
	RequestID string `json:"request_id"`
	// Records are the records the flow created, in order: the code (with
	// its PKCE and OIDC requests), the first access and refresh tokens,
	// the rotated pair.
	Records []flowSampleRecord `json:"records"`
}

type flowSampleRecord struct {
	Kind store.Kind `json:"kind"`
	Data string     `json:"data"`
}

// TestFlowRecordsSample runs a flow and a refresh of the native client
// (scope openid profile offline_access) and checks that the records it
// creates are those of flowRecordsFile, give or take 5% in the size of
// each Data (times and IDs differ from run to run). With
// -update-flow-records it rewrites the file instead.
func TestFlowRecordsSample(t *testing.T) {
	e, fg, _ := newFaultyEnv(t)
	tk := e.login(t, nativeID)
	if _, err := e.refresh(t.Context(), nativeID, tk.refresh); err != nil {
		t.Fatal(err)
	}
	recs := fg.records()
	got := flowSample{RequestID: recs[0].RequestID}
	for _, g := range recs {
		if g.RequestID != got.RequestID {
			t.Fatalf("%s record of request %q, want every record of %q", g.Kind, g.RequestID, got.RequestID)
		}
		got.Records = append(got.Records, flowSampleRecord{Kind: g.Kind, Data: string(g.Data)})
	}
	if *updateFlowRecords {
		js, err := json.MarshalIndent(got, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(flowRecordsFile, append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	js, err := os.ReadFile(flowRecordsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want flowSample
	if err := json.NewDecoder(bytes.NewReader(js)).Decode(&want); err != nil {
		t.Fatal(err)
	}
	const regen = "; rerun with -update-flow-records, and BenchmarkGrantFootprint"
	if len(got.Records) != len(want.Records) {
		t.Fatalf("the flow created %d records, %s holds %d%s", len(got.Records), flowRecordsFile, len(want.Records), regen)
	}
	for i, g := range got.Records {
		w := want.Records[i]
		if n, m := len(g.Data), len(w.Data); g.Kind != w.Kind || n < m*95/100 || n > m*105/100 {
			t.Errorf("record %d: got %s with %d bytes of Data, %s holds %s with %d%s", i, g.Kind, n, flowRecordsFile, w.Kind, m, regen)
		}
	}
}
