package handlers_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// Two replicas of one deployment: two providers, each on its own store (its
// own connection pool) over one database, behind two HTTP servers, with one
// issuer. A load balancer may send any request to either; these tests send
// each step of a flow to the replica that did not serve the step before.

// replicaIssuer is the issuer both replicas share, as they would behind a
// load balancer. Clients reach each replica at its own server's URL; the
// issuer string in tokens and discovery stays this one.
const replicaIssuer = "http://pixie.test"

// replicaKeyRefresh is both replicas' Config.KeyRefreshInterval: the shortest
// allowed, so that the rotation test waits for one second only.
const replicaKeyRefresh = time.Second

// replica is one provider instance on its own store, served on its own
// httptest.Server.
type replica struct {
	name string
	url  string // the server's URL, where clients send this replica's requests
	p    *provider.Provider
	h    *handlers.Server
}

// startReplica starts a replica on st, closed when t ends.
func startReplica(t *testing.T, name string, st *sqlstore.Store) *replica {
	t.Helper()
	logger, _ := testLogger(t, "replica "+name)
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:                  replicaIssuer,
		InsecureAllowHTTPIssuer: true,
		Clients:                 st, Users: st, Grants: st, Keys: st,
		KeyRefreshInterval: replicaKeyRefresh,
		CleanupInterval:    -1,
		Logger:             logger,
	})
	if err != nil {
		t.Fatalf("replica %s: provider.New: %v", name, err)
	}
	// The login sessions too are in the shared store, as a deployment of
	// several replicas must have them.
	h, err := handlers.New(p, handlers.Config{Sessions: st})
	if err != nil {
		t.Fatalf("replica %s: handlers.New: %v", name, err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &replica{name: name, url: srv.URL, p: p, h: h}
}

// conf is the native app's x/oauth2 configuration, pointed at this replica.
func (r *replica) conf() *oauth2.Config {
	return &oauth2.Config{
		ClientID: nativeClient,
		Endpoint: oauth2.Endpoint{
			AuthURL:   r.url + handlers.PathAuthorize,
			TokenURL:  r.url + handlers.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: customSchemeURI,
		Scopes:      strings.Fields(allScopes),
	}
}

// verifier verifies ID tokens for the native app against this replica's
// JWKS, with a key set of its own (no keys cached from an earlier call).
func (r *replica) verifier(ctx context.Context) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(replicaIssuer, oidc.NewRemoteKeySet(ctx, r.url+handlers.PathJWKS), &oidc.Config{ClientID: nativeClient})
}

// authorize runs an authorization request on this replica in browser,
// signing in as alice with password if the login form comes up, and returns
// the request and the code.
func (r *replica) authorize(t *testing.T, browser *http.Client, password string) (*authRequest, string) {
	t.Helper()
	ar := newAuthRequest(r.conf())
	to, err := testbrowser.Login(t.Context(), browser, ar.URL, aliceUsername, password)
	if err != nil {
		t.Fatalf("authorize on %s: %v", r.name, err)
	}
	q := to.Query()
	if e := q.Get("error"); e != "" {
		t.Fatalf("authorize on %s: got error %q (%s), want a code", r.name, e, q.Get("error_description"))
	}
	if got := q.Get("state"); got != ar.State {
		t.Fatalf("authorize on %s: got state %q, want %q", r.name, got, ar.State)
	}
	if got := q.Get("iss"); got != replicaIssuer {
		t.Fatalf("authorize on %s: got iss %q, want the shared issuer %q", r.name, got, replicaIssuer)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatalf("authorize on %s: got no code in %s", r.name, to.Redacted())
	}
	return ar, code
}

// redeem exchanges a code, obtained on any replica, at this one.
func (r *replica) redeem(t *testing.T, ar *authRequest, code string) *oauth2.Token {
	t.Helper()
	tok, err := r.conf().Exchange(t.Context(), code, oauth2.VerifierOption(ar.Verifier))
	if err != nil {
		t.Fatalf("redeem on %s: %v", r.name, err)
	}
	if tok.RefreshToken == "" {
		t.Fatalf("redeem on %s: got no refresh token, want one for offline_access", r.name)
	}
	return tok
}

// refresh redeems a refresh token at this replica.
func (r *replica) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return refresh(ctx, r.conf(), refreshToken)
}

// get GETs a path of this replica.
func (r *replica) get(t *testing.T, path, authorization string) *httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return send(t, nil, req)
}

// jwks returns the kids this replica publishes, with their algorithms.
func (r *replica) jwks(t *testing.T) map[string]string {
	t.Helper()
	res := r.get(t, handlers.PathJWKS, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s on %s: got %d, want 200", handlers.PathJWKS, r.name, res.Status)
	}
	return parseKids(t, res.Body)
}

// parseKids returns the kids of a JWK Set, with their algorithms.
func parseKids(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS %q: %v", doc, err)
	}
	kids := map[string]string{}
	for _, k := range set.Keys {
		kids[k.KID] = k.Alg
	}
	return kids
}

// verifyIDToken verifies the token response's ID token and checks that it
// is alice's and, when nonce is not empty, carries it. It returns the raw
// token.
func verifyIDToken(t *testing.T, v *oidc.IDTokenVerifier, tok *oauth2.Token, nonce string) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response: got no id_token, want one")
	}
	idt, err := v.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify ID token (kid %v): %v", jwtHeader(t, raw)["kid"], err)
	}
	if idt.Subject != "alice" {
		t.Errorf("ID token: got sub %q, want alice", idt.Subject)
	}
	if nonce != "" && idt.Nonce != nonce {
		t.Errorf("ID token: got nonce %q, want %q", idt.Nonce, nonce)
	}
	return raw
}

func TestTwoReplicasPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	open := func() *sqlstore.Store {
		st, err := postgres.Open(t.Context(), dsn, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		st.DB().SetMaxOpenConns(16) // well below max_connections
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	}
	testTwoReplicas(t, open(), open())
}

// TestTwoReplicasSQLite runs the replicas on one SQLite file opened twice,
// as two processes on one machine would.
func TestTwoReplicasSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	open := func() *sqlstore.Store {
		st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	}
	testTwoReplicas(t, open(), open())
}

// testTwoReplicas runs the replica scenarios on two stores over one
// database. The subtests run in order: the rotation changes the keys.
func testTwoReplicas(t *testing.T, stA, stB *sqlstore.Store) {
	seedStore(t, stA)
	a := startReplica(t, "A", stA) // generates and stores the keys
	b := startReplica(t, "B", stB) // loads A's

	if ka, kb := a.jwks(t), b.jwks(t); len(ka) != 2 || !maps.Equal(ka, kb) {
		t.Fatalf("JWKS: got A %v and B %v, want the same two keys (RS256, ES256) from the shared store", ka, kb)
	}

	t.Run("one flow across replicas", func(t *testing.T) {
		ctx := t.Context()
		browser := testbrowser.NewClient()
		ar, code := a.authorize(t, browser, alicePassword)
		tok := b.redeem(t, ar, code)
		verifyIDToken(t, b.verifier(ctx), tok, ar.Nonce)

		tok2, err := a.refresh(ctx, tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh on A of a token issued by B: %v", err)
		}
		verifyIDToken(t, b.verifier(ctx), tok2, "")

		res := b.get(t, handlers.PathUserInfo, "Bearer "+tok2.AccessToken)
		if res.Status != http.StatusOK {
			t.Fatalf("userinfo on B with the access token A issued: got %d, want 200; body: %s", res.Status, res.Body)
		}
		if m := res.JSON(t); m["sub"] != "alice" || m["name"] != aliceName {
			t.Errorf("userinfo on B: got %v, want alice's claims", m)
		}
		// The refresh on A revoked the access token issued before it: B
		// sees that too.
		if res := b.get(t, handlers.PathUserInfo, "Bearer "+tok.AccessToken); res.Status != http.StatusUnauthorized {
			t.Errorf("userinfo on B with the access token from before the refresh on A: got %d, want 401", res.Status)
		}

		// The login cookie A set opens B: the cookie keys derive from the
		// shared store's token secret. (Cookies are not bound to a port: the
		// jar sends A's cookie to B, both on 127.0.0.1, as a browser sends it
		// to whichever replica the load balancer picks.) Were the login form
		// shown, this wrong password would be refused.
		ar3, code3 := b.authorize(t, browser, "not alice's password")
		verifyIDToken(t, a.verifier(ctx), a.redeem(t, ar3, code3), ar3.Nonce)
	})

	t.Run("concurrent redemption across replicas", func(t *testing.T) {
		const (
			rounds     = 3
			goroutines = 20 // half to A, half to B
		)
		replicas := []*replica{a, b}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: goroutines}, Timeout: 30 * time.Second}
		t.Cleanup(client.CloseIdleConnections)
		browser := testbrowser.NewClient()
		for round := range rounds {
			ar, code := replicas[round%2].authorize(t, browser, alicePassword)
			body := url.Values{
				"grant_type":    {"authorization_code"},
				"code":          {code},
				"redirect_uri":  {ar.Conf.RedirectURL},
				"client_id":     {nativeClient},
				"code_verifier": {ar.Verifier},
			}.Encode()
			redeemTogether(t, client, []string{a.url, b.url}, goroutines, body, round)
		}
	})

	t.Run("key rotation reaches the other replica", func(t *testing.T) {
		ctx := t.Context()
		browser := testbrowser.NewClient()
		ar, code := a.authorize(t, browser, alicePassword)
		oldTok := b.redeem(t, ar, code)
		oldRaw := verifyIDToken(t, b.verifier(ctx), oldTok, ar.Nonce)
		oldKid := jwtHeader(t, oldRaw)["kid"]

		before := b.jwks(t)
		// The new keys sign from two intervals after RotateKeys began
		// (rotating); rotated is when it returned, which under load (RSA
		// key generation) may be much later.
		rotating := time.Now()
		if err := a.p.RotateKeys(ctx); err != nil {
			t.Fatalf("RotateKeys on A: %v", err)
		}
		rotated := time.Now()
		fresh := map[string]string{} // alg → the kid rotated in
		for kid, alg := range parseKids(t, a.p.JWKS(ctx)) {
			if _, ok := before[kid]; !ok {
				fresh[alg] = kid
			}
		}
		if len(fresh) != 2 || fresh[provider.RS256] == "" || fresh[provider.ES256] == "" {
			t.Fatalf("A's JWKS after RotateKeys: got new keys %v, want one RS256 and one ES256", fresh)
		}
		if fresh[provider.RS256] == oldKid {
			t.Fatalf("the new RS256 kid %s is the old one", oldKid)
		}

		// B last read the key store before the rotation; once its
		// KeyRefreshInterval has passed, it reads it again on the next
		// request. A real interval: B's keyring reads the wall clock.
		time.Sleep(time.Until(rotated.Add(replicaKeyRefresh + 50*time.Millisecond)))
		after := b.jwks(t)
		for alg, kid := range fresh {
			if after[kid] != alg {
				t.Errorf("B's JWKS %v KeyRefreshInterval after the rotation on A: no %s key %s", after, alg, kid)
			}
		}
		for kid := range before {
			if _, ok := after[kid]; !ok {
				t.Errorf("B's JWKS after the rotation: the replaced key %s is gone, want it published while its tokens live", kid)
			}
		}
		if ka := a.jwks(t); !maps.Equal(ka, after) {
			t.Errorf("after the rotation: got JWKS A %v and B %v, want the same", slices.Sorted(maps.Keys(ka)), slices.Sorted(maps.Keys(after)))
		}

		// ...but signs with the old one until two intervals after the
		// rotation, when every replica and client has the new key...
		arEarly, codeEarly := a.authorize(t, browser, alicePassword)
		early := verifyIDToken(t, b.verifier(ctx), b.redeem(t, arEarly, codeEarly), arEarly.Nonce)
		if kid := jwtHeader(t, early)["kid"]; kid != oldKid && time.Since(rotating) < 2*replicaKeyRefresh {
			t.Errorf("ID token issued by B one interval after the rotation: got kid %v, want the old key %v", kid, oldKid)
		}
		time.Sleep(time.Until(rotated.Add(2*replicaKeyRefresh + 50*time.Millisecond)))

		// ...and with the new key from then on...
		ar2, code2 := a.authorize(t, browser, alicePassword)
		raw := verifyIDToken(t, b.verifier(ctx), b.redeem(t, ar2, code2), ar2.Nonce)
		if kid := jwtHeader(t, raw)["kid"]; kid != fresh[provider.RS256] {
			t.Errorf("ID token issued by B after the rotation: got kid %v, want the new RS256 key %s", kid, fresh[provider.RS256])
		}
		// ...and the ID token signed before the rotation still verifies.
		if _, err := b.verifier(ctx).Verify(ctx, oldRaw); err != nil {
			t.Errorf("ID token signed with the replaced key %v: verify against B's JWKS: %v", oldKid, err)
		}
	})

	t.Run("refresh token replayed on the other replica", func(t *testing.T) {
		ctx := t.Context()
		ar, code := a.authorize(t, testbrowser.NewClient(), alicePassword)
		tok1 := a.redeem(t, ar, code)
		tok2, err := a.refresh(ctx, tok1.RefreshToken)
		if err != nil {
			t.Fatalf("refresh on A: %v", err)
		}
		if tok2.RefreshToken == tok1.RefreshToken {
			t.Fatal("refresh on A: got the same refresh token, want a new one")
		}

		_, err = b.refresh(ctx, tok1.RefreshToken)
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		// The replay revoked the family: the newest refresh token and its
		// access token are dead on both replicas.
		_, err = b.refresh(ctx, tok2.RefreshToken)
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		_, err = a.refresh(ctx, tok2.RefreshToken)
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		if res := a.get(t, handlers.PathUserInfo, "Bearer "+tok2.AccessToken); res.Status != http.StatusUnauthorized {
			t.Errorf("userinfo on A after the replay on B: got %d, want 401", res.Status)
		}
	})
}
