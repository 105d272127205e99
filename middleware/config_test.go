package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/pixieauth/pixie/middleware"
)

func TestNewVerifierConfig(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	keys := middleware.StaticKeys(setOf(t, a))
	intro := &middleware.IntrospectionConfig{Endpoint: "https://auth.example.com/oauth/introspect", ClientID: "api", ClientSecret: "secret"}
	tests := []struct {
		name string
		cfg  middleware.Config
		// wantErr is a substring of the error, naming the field; "" for success.
		wantErr string
	}{
		{"minimal in-process", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys}, ""},
		{"introspection only", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: intro}, ""},
		{"no issuer", middleware.Config{Audience: testAudience, KeySet: keys}, "Config.Issuer"},
		{"no audience", middleware.Config{Issuer: testIssuer, KeySet: keys}, "Config.Audience"},
		{"no key source", middleware.Config{Issuer: testIssuer, Audience: testAudience}, "Config.KeySet"},
		{"two key sources", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, JWKSURL: "https://auth.example.com/jwks"}, "Config.JWKSURL"},
		{"http JWKS URL", middleware.Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: "http://auth.example.com/jwks"}, "Config.JWKSURL"},
		{"relative JWKS URL", middleware.Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: "/jwks"}, "Config.JWKSURL"},
		{"alg none", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Algorithms: []string{"RS256", "none"}}, "Config.Algorithms"},
		{"alg HS256", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Algorithms: []string{"HS256"}}, "Config.Algorithms"},
		{"alg hs512", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Algorithms: []string{"hs512"}}, "Config.Algorithms"},
		{"alg unknown", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Algorithms: []string{"RS1"}}, "Config.Algorithms"},
		{"no key for the algorithms", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Algorithms: []string{"ES256"}}, "Config.Algorithms"},
		{"leeway too large", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Leeway: 6 * time.Minute}, "Config.Leeway"},
		{"negative leeway", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Leeway: -time.Second}, "Config.Leeway"},
		{"refresh interval too small", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, RefreshInterval: time.Second}, "Config.RefreshInterval"},
		{"negative refetch interval", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, MinRefetchInterval: -time.Second}, "Config.MinRefetchInterval"},
		{"quote in realm", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: keys, Realm: `a"b`}, "Config.Realm"},
		{"quote in audience (the default realm)", middleware.Config{Issuer: testIssuer, Audience: `a"b`, KeySet: keys}, "Config.Realm"},
		{"introspection without endpoint", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: &middleware.IntrospectionConfig{ClientID: "a", ClientSecret: "b"}}, "Config.Introspection.Endpoint"},
		{"introspection over http", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: &middleware.IntrospectionConfig{Endpoint: "http://auth.example.com/i", ClientID: "a", ClientSecret: "b"}}, "Config.Introspection.Endpoint"},
		{"introspection over http, allowed", middleware.Config{Issuer: testIssuer, Audience: testAudience, InsecureAllowHTTP: true, Introspection: &middleware.IntrospectionConfig{Endpoint: "http://auth.example.com/i", ClientID: "a", ClientSecret: "b"}}, ""},
		{"introspection without client", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: &middleware.IntrospectionConfig{Endpoint: intro.Endpoint, ClientSecret: "b"}}, "Config.Introspection.ClientID"},
		{"introspection without secret", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: &middleware.IntrospectionConfig{Endpoint: intro.Endpoint, ClientID: "a"}}, "Config.Introspection.ClientSecret"},
		{"negative cache size", middleware.Config{Issuer: testIssuer, Audience: testAudience, Introspection: &middleware.IntrospectionConfig{Endpoint: intro.Endpoint, ClientID: "a", ClientSecret: "b", CacheSize: -1}}, "Config.Introspection.CacheSize"},
		{"key set with only a symmetric key", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: middleware.StaticKeys(symmetricSet(t))}, "Config.KeySet"},
		{"nil static set", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: middleware.StaticKeys(nil)}, "Config.KeySet"},
		{"failing key set", middleware.Config{Issuer: testIssuer, Audience: testAudience, KeySet: failingKeys{}}, "Config.KeySet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = discard()
			v, err := middleware.NewVerifier(t.Context(), tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				v.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error naming %s", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "middleware: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func symmetricSet(t *testing.T) jwk.Set {
	k, err := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "oct")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	return set
}

type failingKeys struct{}

func (failingKeys) Keys(context.Context) (jwk.Set, error) { return nil, errors.New("boom") }

// TestConfigNotRetained: NewVerifier copies what it keeps; changing the
// caller's slices afterwards changes nothing.
func TestConfigNotRetained(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	algs := []string{"RS256"}
	v := newVerifier(t, middleware.Config{KeySet: middleware.StaticKeys(setOf(t, a)), Algorithms: algs, Now: fixed(t0)})
	algs[0] = "ES256"
	if _, err := v.Verify(t.Context(), token(t, a, t0)); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultLoggerAtCallTime: a nil Logger means slog.Default() when
// logging, not when the Verifier was made.
func TestDefaultLoggerAtCallTime(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	v, err := middleware.NewVerifier(t.Context(), middleware.Config{
		Issuer: testIssuer, Audience: testAudience, KeySet: middleware.StaticKeys(setOf(t, a)), Now: fixed(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	logs := &syncBuffer{}
	old := slog.Default()
	slog.SetDefault(bufferLogger(logs))
	defer slog.SetDefault(old)
	rec := serve(v, "a.b")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(logs.String(), "bearer token refused") {
		t.Errorf("got %d, logs %q", rec.Code, logs)
	}
}

func TestRequireTokenPanics(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	v := newVerifier(t, middleware.Config{KeySet: middleware.StaticKeys(setOf(t, a))})
	for name, f := range map[string]func(){
		"nil verifier":   func() { middleware.RequireToken(nil) },
		"empty scope":    func() { middleware.RequireToken(v, "") },
		"scope w/ space": func() { middleware.RequireToken(v, "a b") },
		"scope w/ quote": func() { middleware.RequireToken(v, `a"`) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestIntrospectionConfigLogValue(t *testing.T) {
	logs := &syncBuffer{}
	bufferLogger(logs).Info("config", "introspection", middleware.IntrospectionConfig{ClientID: "api", ClientSecret: "hunter2"})
	if strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "api") {
		t.Errorf("log: %s", logs)
	}
}
