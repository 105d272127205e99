package main

import (
	"fmt"
	"io"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// registerDemo registers the demo user and clients, declared here in code
// and kept in memory: on every start they are what the flags say (password,
// API secret), and two servers sharing a database do not overwrite each
// other's. It prints their credentials once: they are this demo's to show,
// and never logged.
func registerDemo(st *memory.Store, o options, out io.Writer) error {
	err := st.AddUser(&store.User{
		Subject:           "alice",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		GivenName:         "Alice",
		FamilyName:        "Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
	}, "alice", o.demoPassword)
	if err != nil {
		return err
	}
	native := []string{"http://127.0.0.1/callback", "com.example.app:/oauth2redirect"}
	scopes := []string{"openid", "profile", "email", "offline_access"}
	apiSecret, err := store.HashSecret(o.demoAPISecret)
	if err != nil {
		return err
	}
	for _, c := range []*store.Client{
		{ID: "example-native", Name: "Example App", RedirectURIs: native, Scopes: scopes, Native: true, FirstParty: true,
			PostLogoutRedirectURIs: []string{"com.example.app:/logged-out", "http://127.0.0.1/logged-out"}},
		{ID: "example-other", Name: "Other App", RedirectURIs: native, Scopes: scopes, Native: true},
		{ID: "example-api", Name: "Example API", SecretHash: apiSecret, Introspect: true},
	} {
		if err := st.AddClient(c); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "demo user:   alice / %s\n", o.demoPassword)
	fmt.Fprintf(out, "api client:  example-api / %s (may introspect)\n", o.demoAPISecret)
	fmt.Fprintf(out, "app clients: example-native (first party), example-other\n")
	return nil
}
