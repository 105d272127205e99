package provider

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
)

// len returns the number of entries.
func (c *userInfoCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// TestUserInfoCacheBound: however many distinct tokens are used, the cache
// holds at most Config.UserInfoCacheSize of them, and every token, dropped
// or not, still gets its user's claims.
func TestUserInfoCacheBound(t *testing.T) {
	const size = 32
	e := newTestEnv(t, func(c *Config) { c.UserInfoCacheSize = size })
	var access []string
	for i := range 4 * size {
		access = append(access, e.login(t, nativeID).access)
		claims, err := e.p.userInfoClaims(t.Context(), access[i])
		if err != nil || claims["sub"] != testSubject {
			t.Fatalf("UserInfo with token %d: got %v, %v; want alice's claims", i, claims, err)
		}
		if n := e.p.userInfo.len(); n > size {
			t.Fatalf("after %d tokens: the cache holds %d, want at most %d", i+1, n, size)
		}
	}
	// 128 tokens over 16 shards of 2: a shard left with fewer than 2 is
	// possible, half the cache empty is not.
	if n := e.p.userInfo.len(); n < size/2 {
		t.Errorf("after %d tokens: the cache holds %d, want it (about) full: %d", len(access), n, size)
	}
	for i, tok := range access {
		if claims, err := e.p.userInfoClaims(t.Context(), tok); err != nil || claims["name"] != "Alice Example" {
			t.Errorf("UserInfo again with token %d: got %v, %v; want alice's claims", i, claims, err)
		}
	}
	if n := e.p.userInfo.len(); n > size {
		t.Errorf("after using every token again: the cache holds %d, want at most %d", n, size)
	}
}

// TestUserInfoCacheOnlySuccess: a token refused at userinfo (unknown,
// forged, a refresh token, without openid) is never remembered, and is
// refused again; a revocation drops the token at once.
func TestUserInfoCacheOnlySuccess(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	tk := e.login(t, nativeID)
	noOpenID := e.loginWithScope(t, "profile offline_access")
	head, _, _ := strings.Cut(tk.access, ".")
	tests := []struct {
		name, token string
		wantCode    string
	}{
		{"garbage", "not-a-token", engine.CodeInvalidToken},
		{"forged signature", tk.access[:len(tk.access)-4] + "AAAA", engine.CodeInvalidToken},
		{"header only", head, engine.CodeInvalidToken},
		{"refresh token", tk.refresh, engine.CodeInvalidToken},
		{"without openid", noOpenID, engine.CodeInsufficientScope},
	}
	for _, tc := range tests {
		for range 2 {
			_, err := e.p.userInfoClaims(ctx, tc.token)
			if err == nil || asError(t, err).Code != tc.wantCode {
				t.Errorf("%s: got error %v, want %s", tc.name, err, tc.wantCode)
			}
		}
		if n := e.p.userInfo.len(); n != 0 {
			t.Errorf("%s: the cache holds %d entries, want none", tc.name, n)
		}
	}
	if _, err := e.p.userInfoClaims(ctx, tk.access); err != nil {
		t.Fatalf("UserInfo: %v", err)
	}
	if n := e.p.userInfo.len(); n != 1 {
		t.Fatalf("after a good token: the cache holds %d entries, want 1", n)
	}
	if err := e.p.revoke(ctx, formRequest("/oauth/revoke", authenticate(url.Values{"token": {tk.access}}, nativeID))); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if n := e.p.userInfo.len(); n != 0 {
		t.Errorf("after the revocation: the cache holds %d entries, want none", n)
	}
	if _, err := e.p.userInfoClaims(ctx, tk.access); err == nil || asError(t, err).Code != engine.CodeInvalidToken {
		t.Errorf("UserInfo after the revocation: got error %v, want invalid_token", err)
	}
}

// loginWithScope runs a flow of the native client asking for scope and
// returns the access token.
func (e *testEnv) loginWithScope(t *testing.T, scope string) string {
	t.Helper()
	verifier, challenge := pkcePair(t)
	q := authorizeQuery(challenge, "S256")
	q.Set("scope", scope)
	areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(q))
	if err != nil {
		t.Fatalf("ParseAuthorizeRequest: %v", err)
	}
	to, err := e.p.issueCode(t.Context(), areq, Login{Subject: testSubject, AMR: []string{"pwd"}})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	u, _ := url.Parse(to)
	resp, err := e.redeem(t.Context(), issued{code: u.Query().Get("code"), verifier: verifier, clientID: nativeID, redirectURI: nativeRedirect})
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	access, _ := resp["access_token"].(string)
	return access
}

// TestUserInfoCacheEntries checks the cache's own rules on entries made by
// hand: the TTL by Config.Now, the token's expiry by the wall clock, and
// that a forget racing a verification keeps its answer out.
func TestUserInfoCacheEntries(t *testing.T) {
	clk := newFakeClock()
	const ttl = 5 * time.Second
	entry := func(token, requestID string, expires time.Time) *userInfoEntry {
		return &userInfoEntry{key: userInfoKey(token), requestID: requestID, stored: clk.Now(),
			expires: expires, body: []byte(`{"sub":"` + testSubject + `"}` + "\n")}
	}
	later := time.Now().Add(time.Hour)

	c := newUserInfoCache(ttl, 100, clk.Now)
	c.put(c.begin(), entry("a", "r1", later))
	c.put(c.begin(), entry("b", "r1", later))
	c.put(c.begin(), entry("c", "r2", later))
	if c.get(userInfoKey("a")) == nil || c.get(userInfoKey("c")) == nil {
		t.Fatal("get right after put: got nil, want the entry")
	}
	c.forget("r1")
	if c.get(userInfoKey("a")) != nil || c.get(userInfoKey("b")) != nil {
		t.Error("get after forgetting the grant: got an entry, want nil")
	}
	if c.get(userInfoKey("c")) == nil {
		t.Error("get of another grant's token after a forget: got nil, want the entry")
	}

	// A forget between the start of a verification and its put: the
	// revocation may have come after the token's record was read.
	epoch := c.begin()
	c.forget("r3")
	c.put(epoch, entry("d", "r3", later))
	if c.get(userInfoKey("d")) != nil {
		t.Error("get of an answer verified across a forget: got the entry, want nil")
	}

	// The TTL, by Config.Now.
	clk.Advance(ttl - time.Millisecond)
	if c.get(userInfoKey("c")) == nil {
		t.Error("get just within the TTL: got nil, want the entry")
	}
	clk.Advance(time.Millisecond)
	if c.get(userInfoKey("c")) != nil {
		t.Error("get once the TTL has passed: got the entry, want nil")
	}
	// A clock set back is no reason to trust an entry longer.
	c.put(c.begin(), entry("e", "r4", later))
	clk.Advance(-time.Minute)
	if c.get(userInfoKey("e")) != nil {
		t.Error("get with the clock set back before the entry: got the entry, want nil")
	}
	clk.Advance(time.Minute)

	// The token's expiry, by the wall clock, whatever Config.Now says.
	c.put(c.begin(), entry("f", "r5", time.Now().Add(-time.Millisecond)))
	if c.get(userInfoKey("f")) != nil {
		t.Error("get of an expired token: got the entry, want nil")
	}
	c.put(c.begin(), entry("g", "r6", time.Time{}))
	if c.get(userInfoKey("g")) != nil {
		t.Error("get of a token without expiry: got the entry, want nil")
	}

	// Putting a token again replaces its entry, in the ring and the grant's list.
	c.put(c.begin(), entry("h", "r7", later))
	c.put(c.begin(), entry("h", "r8", later))
	c.forget("r7")
	if c.get(userInfoKey("h")) == nil {
		t.Error("get after forgetting the grant of a replaced entry: got nil, want the new entry")
	}
	c.forget("r8")
	if c.get(userInfoKey("h")) != nil {
		t.Error("get after forgetting the new entry's grant: got it, want nil")
	}
}

// TestUserInfoCacheConfig: the TTL's bounds and the switch that disables
// the cache.
func TestUserInfoCacheConfig(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		size      int
		wantErr   string // what the error must name; "" for none
		wantCache bool
	}{
		{"defaults", 0, 0, "", true},
		{"at most a minute", maxUserInfoCacheTTL, 1, "", true},
		{"over a minute", maxUserInfoCacheTTL + time.Second, 0, "Config.UserInfoCacheTTL", false},
		{"negative size", 0, -1, "Config.UserInfoCacheSize", false},
		{"disabled", -1, 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.UserInfoCacheTTL, cfg.UserInfoCacheSize = tc.ttl, tc.size
			p, err := New(t.Context(), cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: got error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := p.userInfo != nil; got != tc.wantCache {
				t.Errorf("got a cache: %v, want %v", got, tc.wantCache)
			}
		})
	}
	cfg := validConfig()
	if err := cfg.validate(); err != nil || cfg.UserInfoCacheTTL != defaultUserInfoCacheTTL || cfg.UserInfoCacheSize != defaultUserInfoCacheSize {
		t.Errorf("defaults: got TTL %v size %d (%v), want %v and %d", cfg.UserInfoCacheTTL, cfg.UserInfoCacheSize, err, defaultUserInfoCacheTTL, defaultUserInfoCacheSize)
	}
}

// TestUserInfoWithoutCache: with the cache disabled, userinfo still
// answers, and refuses a revoked token.
func TestUserInfoWithoutCache(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.UserInfoCacheTTL = -1 })
	tk := e.login(t, nativeID)
	for range 2 {
		if claims, err := e.p.userInfoClaims(t.Context(), tk.access); err != nil || claims["sub"] != testSubject {
			t.Fatalf("UserInfo: got %v, %v; want alice's claims", claims, err)
		}
	}
	if err := e.p.revoke(t.Context(), formRequest("/oauth/revoke", authenticate(url.Values{"token": {tk.access}}, nativeID))); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := e.p.userInfoClaims(t.Context(), tk.access); err == nil || asError(t, err).Code != engine.CodeInvalidToken {
		t.Errorf("UserInfo after the revocation: got error %v, want invalid_token", err)
	}
}

// TestUserInfoJSON: UserInfoJSON answers UserInfo's claims, encoded as
// json.Marshal does with a newline, from the cache or not, and the caller
// may change what it gets.
func TestUserInfoJSON(t *testing.T) {
	for _, ttl := range []time.Duration{0, -1} {
		e := newTestEnv(t, func(c *Config) { c.UserInfoCacheTTL = ttl })
		tk := e.login(t, nativeID)
		claims, err := e.p.userInfoClaims(t.Context(), tk.access)
		if err != nil {
			t.Fatalf("TTL %v: UserInfo: %v", ttl, err)
		}
		want, _ := json.Marshal(claims)
		want = append(want, '\n')
		for i := range 2 {
			got, err := e.p.userInfoJSON(t.Context(), userinfoRequest(t, tk.access))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("TTL %v: UserInfoJSON %d: got %q, %v; want %q", ttl, i, got, err, want)
			}
			clear(got)
		}
		if _, err := e.p.userInfoJSON(t.Context(), userinfoRequest(t, tk.refresh)); err == nil || asError(t, err).Code != engine.CodeInvalidToken {
			t.Errorf("TTL %v: UserInfoJSON with the refresh token: got error %v, want invalid_token", ttl, err)
		}
	}
}

// userinfoRequest is a GET of the userinfo endpoint with the token in an
// Authorization: Bearer header.
func userinfoRequest(t *testing.T, token string) *http.Request {
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "https://op.example.com/userinfo", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
