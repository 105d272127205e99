package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// defaultAPIAudience is the default -api-audience: the identifier of the
// demo API (example/api), which is also that program's default -audience.
const defaultAPIAudience = "https://api.example.com"

// demoAPIScopes are the scopes the demo API defines: example/api serves GET
// /api/messages with read:messages and POST /api/messages with
// write:messages.
var demoAPIScopes = []string{"read:messages", "write:messages"}

// demoAPIs are the resource servers pixie issues access tokens for: the demo
// API, whose tokens' aud is -api-audience.
func demoAPIs(o options) []provider.API {
	return []provider.API{{Identifier: o.apiAudience, Scopes: slices.Clone(demoAPIScopes)}}
}

// registerDemo registers the demo user and clients, declared here in code
// and kept in memory: on every start they are what the flags say (password,
// API secret), and two servers sharing a database do not overwrite each
// other's. It prints their credentials once: they are this demo's to show,
// and never logged.
func registerDemo(st *memory.Store, o options, out io.Writer) error {
	err := st.AddUser(context.Background(), &store.User{
		Subject:           "alice",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		GivenName:         "Alice",
		FamilyName:        "Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
		// For the address and phone scopes; 555-01xx numbers are fictional.
		Address:     store.Address{StreetAddress: "1 Example Street", Locality: "Springfield", PostalCode: "12345", Country: "US"},
		PhoneNumber: "+15555550100",
	}, "alice", o.demoPassword)
	if err != nil {
		return err
	}
	native := []string{"http://127.0.0.1/callback", "com.example.app:/oauth2redirect"}
	// The app clients may ask for the demo API (-api-audience) and its scopes.
	scopes := append([]string{"openid", "profile", "email", "address", "phone", "offline_access"}, demoAPIScopes...)
	apis := []string{o.apiAudience}
	apiSecret, err := store.HashSecret(o.demoAPISecret)
	if err != nil {
		return err
	}
	for _, c := range []*store.Client{
		{ID: "example-native", Name: "Example App", RedirectURIs: native, Scopes: scopes, APIs: apis, Native: true, FirstParty: true,
			PostLogoutRedirectURIs: []string{"com.example.app:/logged-out", "http://127.0.0.1/logged-out"}},
		{ID: "example-other", Name: "Other App", RedirectURIs: native, Scopes: scopes, APIs: apis, Native: true},
		{ID: "example-api", Name: "Example API", SecretHash: apiSecret, Introspect: true},
	} {
		if err := st.AddClient(context.Background(), c); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "demo user:   alice / %s\n", o.demoPassword)
	fmt.Fprintf(out, "api client:  example-api / %s (may introspect)\n", o.demoAPISecret)
	fmt.Fprintf(out, "app clients: example-native (first party), example-other\n")
	fmt.Fprintf(out, "demo api:    %s (%s), served by example/api\n", o.apiAudience, strings.Join(demoAPIScopes, " "))
	return nil
}
