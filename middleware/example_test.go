package middleware_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/pixieauth/pixie/middleware"
)

// An API protected by RequireToken. In production the keys come from the
// authorization server: JWKSURL, or KeySet: middleware.ProviderKeys(p) in
// the same process. Here an in-memory key signs a token the way pixie does.
func ExampleRequireToken() {
	key, keys := exampleKey()
	v, err := middleware.NewVerifier(context.Background(), middleware.Config{
		Issuer:   "https://auth.example.com",
		Audience: "https://api.example.com",
		KeySet:   middleware.StaticKeys(keys),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := middleware.TokenFrom(r.Context())
		fmt.Fprintf(w, "hello %s (client %s)", tok.Subject, tok.ClientID)
	})
	api := http.NewServeMux()
	api.Handle("GET /me", middleware.RequireToken(v, "profile")(me))
	api.Handle("POST /posts", middleware.RequireToken(v, "posts:write")(me))

	tok := exampleToken(key, "openid profile")
	for _, req := range []struct{ method, path, auth string }{
		{"GET", "/me", "Bearer " + tok},
		{"GET", "/me", ""},
		{"GET", "/me", "Bearer not-a-jwt"},
		{"POST", "/posts", "Bearer " + tok},
	} {
		r := httptest.NewRequest(req.method, req.path, nil)
		if req.auth != "" {
			r.Header.Set("Authorization", req.auth)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		fmt.Println(req.method, req.path, w.Code)
		if c := w.Header().Get("WWW-Authenticate"); c != "" {
			fmt.Println("  WWW-Authenticate:", c)
		}
		fmt.Println(" ", strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// GET /me 200
	//   hello user-42 (client my-app)
	// GET /me 401
	//   WWW-Authenticate: Bearer realm="https://api.example.com"
	//   {"error_description":"The request has no bearer access token."}
	// GET /me 401
	//   WWW-Authenticate: Bearer realm="https://api.example.com", error="invalid_token", error_description="The access token is not a JWT: it needs three dot-separated parts."
	//   {"error":"invalid_token","error_description":"The access token is not a JWT: it needs three dot-separated parts."}
	// POST /posts 403
	//   WWW-Authenticate: Bearer realm="https://api.example.com", error="insufficient_scope", error_description="The access token lacks a scope this request needs.", scope="posts:write"
	//   {"error":"insufficient_scope","error_description":"The access token lacks a scope this request needs."}
}

// Code that checks tokens itself, outside RequireToken, branches on the
// answer with errors.Is and renders it with the *Error's Status and
// Challenge; the message, for logs, says which check failed. Here the
// clock is two hours on, so the token has expired.
func ExampleVerifier_Verify() {
	key, keys := exampleKey()
	v, err := middleware.NewVerifier(context.Background(), middleware.Config{
		Issuer:   "https://auth.example.com",
		Audience: "https://api.example.com",
		KeySet:   middleware.StaticKeys(keys),
		Now:      func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	raw, err := middleware.ParseBearer("Bearer " + exampleToken(key, "profile"))
	if err == nil {
		_, err = v.Verify(context.Background(), raw)
	}
	var e *middleware.Error
	switch {
	case errors.Is(err, middleware.ErrExpired):
		fmt.Println("expired: refresh the token and retry")
	case errors.Is(err, middleware.ErrUnavailable):
		fmt.Println("retry later")
	}
	if errors.As(err, &e) {
		fmt.Println(errors.Is(err, middleware.ErrInvalidToken), e.Status)
		fmt.Println(e.Challenge("https://api.example.com"))
		fmt.Println(err)
	}
	// Output:
	// expired: refresh the token and retry
	// true 401
	// Bearer realm="https://api.example.com", error="invalid_token", error_description="The access token has expired."
	// middleware: invalid_token: The access token has expired.
}

// exampleKey makes an ES256 key published as pixie publishes keys: kid the
// RFC 7638 thumbprint, with alg and use.
func exampleKey() (*ecdsa.PrivateKey, jwk.Set) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		log.Fatal(err)
	}
	tp, _ := pub.Thumbprint(crypto.SHA256)
	_ = pub.Set(jwk.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp))
	_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	return priv, set
}

// exampleToken signs an RFC 9068 access token.
func exampleToken(priv *ecdsa.PrivateKey, scope string) string {
	pub, _ := jwk.FromRaw(priv.Public())
	tp, _ := pub.Thumbprint(crypto.SHA256)
	hdrs := jws.NewHeaders()
	_ = hdrs.Set(jws.TypeKey, "at+jwt")
	_ = hdrs.Set(jws.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp))
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://auth.example.com", "sub": "user-42", "aud": "https://api.example.com",
		"client_id": "my-app", "scope": scope, "jti": "example",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	tok, err := jws.Sign(claims, jws.WithKey(jwa.ES256, priv, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		log.Fatal(err)
	}
	return string(tok)
}
