package handlers_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// cacheTTL is the replicas' Config.UserInfoCacheTTL in these tests. Their
// clocks (Config.Now) are moved past it by hand: no test waits for it.
const cacheTTL = 30 * time.Second

// startCachingReplica starts a replica on st, as startReplica does, whose
// provider runs on clock with the userinfo cache living cacheTTL;
// configure, if not nil, changes the provider's Config further.
func startCachingReplica(t *testing.T, name string, st *sqlstore.Store, clock *testClock, configure func(*provider.Config)) *replica {
	t.Helper()
	logger, _ := testLogger(t, "replica "+name)
	cfg := provider.Config{
		Issuer:                  replicaIssuer,
		InsecureAllowHTTPIssuer: true,
		Clients:                 st, Users: st, Grants: st, Keys: st,
		CleanupInterval:  -1,
		Logger:           logger,
		Now:              clock.Now,
		UserInfoCacheTTL: cacheTTL,
	}
	if configure != nil {
		configure(&cfg)
	}
	p, err := provider.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("replica %s: provider.New: %v", name, err)
	}
	h, err := handlers.New(p, handlers.Config{Sessions: st})
	if err != nil {
		t.Fatalf("replica %s: handlers.New: %v", name, err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &replica{name: name, url: srv.URL, p: p, h: h}
}

// userinfoStatus calls /userinfo on r with the access token and returns the
// status and, for a 200, the name claim.
func userinfoStatus(t *testing.T, r *replica, accessToken string) (int, any) {
	t.Helper()
	res := r.get(t, handlers.PathUserInfo, "Bearer "+accessToken)
	if res.Status != http.StatusOK {
		return res.Status, nil
	}
	return res.Status, res.JSON(t)["name"]
}

// wantUserInfo checks the status /userinfo on r answers for the token.
func wantUserInfo(t *testing.T, r *replica, accessToken string, want int, when string) {
	t.Helper()
	if got, _ := userinfoStatus(t, r, accessToken); got != want {
		t.Errorf("userinfo on %s %s: got %d, want %d", r.name, when, got, want)
	}
}

func TestUserInfoCacheReplicasSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	open := func() *sqlite.Store {
		st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	stA, stB := open(), open()
	testUserInfoCacheReplicas(t, stA.Store, stB.Store, stA.DB())
}

func TestUserInfoCacheReplicasPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), dsn, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	stA, stB := open(), open()
	testUserInfoCacheReplicas(t, stA.Store, stB.Store, stA.DB())
}

// testUserInfoCacheReplicas checks the staleness Config.UserInfoCacheTTL
// states, on two replicas over one database: a revocation shows at once on
// the replica that made it and within the TTL on the other, and so does a
// changed profile (written to db, as an admin tool would). Each replica has a clock of its own, an hour behind the
// wall clock and moved on by the test: fosite refuses to issue an ID token
// whose auth_time (from Config.Now) is ahead of the wall clock.
func testUserInfoCacheReplicas(t *testing.T, stA, stB *sqlstore.Store, db *sql.DB) {
	seedStore(t, stA)
	clockA, clockB := &testClock{}, &testClock{}
	elapsed := -time.Hour
	// elapse moves both clocks on by d.
	elapse := func(d time.Duration) {
		elapsed += d
		clockA.Shift(elapsed)
		clockB.Shift(elapsed)
	}
	elapse(0)
	a := startCachingReplica(t, "A", stA, clockA, nil)
	b := startCachingReplica(t, "B", stB, clockB, nil)
	flow := func(t *testing.T) (access, refresh string) {
		t.Helper()
		ar, code := a.authorize(t, testbrowser.NewClient(), alicePassword)
		tok := a.redeem(t, ar, code)
		return tok.AccessToken, tok.RefreshToken
	}

	t.Run("revocation", func(t *testing.T) {
		access, _ := flow(t)
		wantUserInfo(t, a, access, http.StatusOK, "before the revocation")
		wantUserInfo(t, b, access, http.StatusOK, "before the revocation")

		res := postTo(t, a, handlers.PathRevoke, url.Values{"token": {access}, "client_id": {nativeClient}})
		if res.Status != http.StatusOK {
			t.Fatalf("revoke on A: got %d %s, want 200", res.Status, res.Body)
		}
		wantUserInfo(t, a, access, http.StatusUnauthorized, "at once after the revocation on A")
		// B answers from its cache until the TTL has passed: the stated
		// staleness. (This also shows that the step below tests B's cache.)
		elapse(cacheTTL / 2)
		wantUserInfo(t, b, access, http.StatusOK, "within the TTL of the revocation on A")
		elapse(cacheTTL / 2)
		wantUserInfo(t, b, access, http.StatusUnauthorized, "once the TTL has passed since the revocation on A")
		wantUserInfo(t, a, access, http.StatusUnauthorized, "once the TTL has passed since the revocation on A")
	})

	t.Run("refresh token replay revokes the family", func(t *testing.T) {
		_, refresh1 := flow(t)
		tok2, err := a.refresh(t.Context(), refresh1)
		if err != nil {
			t.Fatalf("refresh on A: %v", err)
		}
		wantUserInfo(t, a, tok2.AccessToken, http.StatusOK, "with the refreshed access token")
		wantUserInfo(t, b, tok2.AccessToken, http.StatusOK, "with the refreshed access token")

		_, err = a.refresh(t.Context(), refresh1)
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		wantUserInfo(t, a, tok2.AccessToken, http.StatusUnauthorized, "at once after the replay on A")
		elapse(cacheTTL)
		wantUserInfo(t, b, tok2.AccessToken, http.StatusUnauthorized, "once the TTL has passed since the replay on A")
	})

	t.Run("refresh revokes the access token before it", func(t *testing.T) {
		access1, refresh1 := flow(t)
		wantUserInfo(t, a, access1, http.StatusOK, "before the refresh")
		wantUserInfo(t, b, access1, http.StatusOK, "before the refresh")
		tok2, err := a.refresh(t.Context(), refresh1)
		if err != nil {
			t.Fatalf("refresh on A: %v", err)
		}
		wantUserInfo(t, a, access1, http.StatusUnauthorized, "with the access token from before the refresh on A")
		wantUserInfo(t, a, tok2.AccessToken, http.StatusOK, "with the refreshed access token")
		elapse(cacheTTL)
		wantUserInfo(t, b, access1, http.StatusUnauthorized, "once the TTL has passed since the refresh on A")
		wantUserInfo(t, b, tok2.AccessToken, http.StatusOK, "with the refreshed access token")
	})

	t.Run("profile change", func(t *testing.T) {
		access, _ := flow(t)
		for _, r := range []*replica{a, b} {
			if _, name := userinfoStatus(t, r, access); name != aliceName {
				t.Fatalf("userinfo on %s: got name %v, want %q", r.name, name, aliceName)
			}
		}
		const renamed = "Alice Renamed"
		setName := func(name string) {
			t.Helper()
			// Not t.Context(): the cleanup runs once it is done.
			if _, err := db.ExecContext(context.Background(), "UPDATE users SET name = '"+name+"' WHERE subject = 'alice'"); err != nil {
				t.Fatalf("rename alice: %v", err)
			}
		}
		setName(renamed)
		t.Cleanup(func() { setName(aliceName) })
		elapse(cacheTTL / 2)
		for _, r := range []*replica{a, b} {
			if _, name := userinfoStatus(t, r, access); name != aliceName {
				t.Errorf("userinfo on %s within the TTL of the change: got name %v, want the cached %q", r.name, name, aliceName)
			}
		}
		elapse(cacheTTL / 2)
		for _, r := range []*replica{a, b} {
			if _, name := userinfoStatus(t, r, access); name != renamed {
				t.Errorf("userinfo on %s once the TTL has passed since the change: got name %v, want %q", r.name, name, renamed)
			}
		}
	})
}

// TestUserInfoCacheExpiredToken checks that an access token is refused once
// expired, though the cache (living far longer) holds its answer: expiry is
// checked on every request, against the wall clock as fosite does. The
// token lives two seconds: fosite rounds the expiry to the second (so it
// comes 1.5 to 2.5 seconds after the token is issued), and accepts a JWT
// through the second of its exp.
func TestUserInfoCacheExpiredToken(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		t.Run(map[bool]string{false: "JWT", true: "opaque"}[opaque], func(t *testing.T) {
			t.Parallel()
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: testKeySecret})
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			seedStore(t, st.Store)
			r := startCachingReplica(t, "A", st.Store, &testClock{}, func(c *provider.Config) {
				c.AccessTokenLifespan = 2 * time.Second
				c.UserInfoCacheTTL = time.Minute // the most Config.UserInfoCacheTTL may be
				c.OpaqueAccessTokens = opaque
			})
			ar, code := r.authorize(t, testbrowser.NewClient(), alicePassword)
			issuing := time.Now()
			tok := r.redeem(t, ar, code)
			wantUserInfo(t, r, tok.AccessToken, http.StatusOK, "before the token expires")
			time.Sleep(time.Until(issuing.Add(3600 * time.Millisecond)))
			wantUserInfo(t, r, tok.AccessToken, http.StatusUnauthorized, "once the token has expired")
		})
	}
}

// postTo POSTs a form to one of r's endpoints.
func postTo(t *testing.T, r *replica, path string, form url.Values) *httpResult {
	t.Helper()
	ts := &testServer{URL: r.url}
	return ts.postForm(t, path, form, nil)
}
