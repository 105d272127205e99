package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pixieauth/pixie/store"
)

// registerDemo adds the demo user and clients, or updates them on a restart
// (the password and API secret follow the flags), and prints their
// credentials once: they are this demo's to show, and never logged.
func registerDemo(ctx context.Context, st backend, o options, out io.Writer) error {
	err := st.putUser(ctx, &store.User{
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
		{ID: "example-native", Name: "Example App", RedirectURIs: native, Scopes: scopes, Native: true, FirstParty: true},
		{ID: "example-other", Name: "Other App", RedirectURIs: native, Scopes: scopes, Native: true},
		{ID: "example-api", Name: "Example API", SecretHash: apiSecret, Introspect: true},
	} {
		if err := st.putClient(ctx, c); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "demo user:   alice / %s\n", o.demoPassword)
	fmt.Fprintf(out, "api client:  example-api / %s (may introspect)\n", o.demoAPISecret)
	fmt.Fprintf(out, "app clients: example-native (first party), example-other\n")
	return nil
}
