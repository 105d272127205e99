package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

func ExampleNew() {
	ctx := context.Background()
	s := memory.New()

	// A native app: a public client that proves itself with PKCE, and
	// receives the code on a loopback redirect (RFC 8252 §7.3).
	app := &store.Client{
		ID:           "example-native",
		Name:         "Example App",
		Native:       true,
		RedirectURIs: []string{"http://127.0.0.1/callback"},
		Scopes:       []string{"openid", "profile", "offline_access"},
	}
	if err := provider.ValidateClient(app); err != nil {
		log.Fatal(err)
	}
	if err := s.AddClient(context.Background(), app); err != nil {
		log.Fatal(err)
	}

	// The memory store serves as every store. On first start New generates
	// the signing keys and stores them.
	p, err := provider.New(ctx, provider.Config{
		Issuer:  "https://id.example.com",
		Clients: s,
		Users:   s,
		Grants:  s,
		Keys:    s,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("issuer:", p.Issuer())

	var jwks struct {
		Keys []struct {
			Kty string `json:"kty"`
			Alg string `json:"alg"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(p.JWKS(ctx), &jwks); err != nil {
		log.Fatal(err)
	}
	fmt.Println("published keys:", len(jwks.Keys))

	// Output:
	// issuer: https://id.example.com
	// published keys: 2
}

func ExampleValidateClient() {
	// A web app may not receive codes over plain http, even on loopback:
	// only native apps may (RFC 8252 §7.3).
	err := provider.ValidateClient(&store.Client{
		ID:           "web",
		RedirectURIs: []string{"http://127.0.0.1:8080/callback"},
	})
	fmt.Println(err)

	// A native app may use a private-use scheme in reverse-domain form
	// (RFC 8252 §7.1).
	err = provider.ValidateClient(&store.Client{
		ID:           "ios",
		Native:       true,
		RedirectURIs: []string{"com.example.app:/oauth2redirect"},
	})
	fmt.Println(err)

	// Output:
	// provider: client "web": redirect URI "http://127.0.0.1:8080/callback": http is allowed only for native clients on a loopback IP address
	// <nil>
}
