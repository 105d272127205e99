// Package demo sets up what the framework examples share: a pixie provider
// on a memory store with one user, one native app and one API, a verifier
// for that API, and a person who logs in through a browser. It is for the
// examples only.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/middleware"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// The registrations New makes.
const (
	ClientID    = "my-app"                    // a first-party native app
	RedirectURI = "http://127.0.0.1/callback" // its loopback redirect (any port)
	Username    = "alice"
	Password    = "correct horse battery staple"
	Subject     = "u-alice"                 // alice's sub
	API         = "https://api.example.com" // the API's identifier, its tokens' aud
)

// New returns a provider for issuer on a fresh memory store holding alice,
// the app ClientID and the API (scopes read:messages and write:messages),
// and a verifier of that API's access tokens with the provider's keys. The
// caller closes the verifier.
func New(ctx context.Context, issuer string) (*provider.Provider, *middleware.Verifier, error) {
	st := memory.New()
	if err := st.AddUser(ctx, &store.User{Subject: Subject, PreferredUsername: Username, Name: "Alice", Email: "alice@example.com"}, Username, Password); err != nil {
		return nil, nil, err
	}
	if err := st.AddClient(ctx, &store.Client{
		ID: ClientID, Name: "My App", Native: true, FirstParty: true,
		RedirectURIs: []string{RedirectURI},
		Scopes:       []string{"openid", "profile", "email", "read:messages", "write:messages"},
		APIs:         []string{API},
	}); err != nil {
		return nil, nil, err
	}
	p, err := provider.New(ctx, provider.Config{
		Issuer: issuer, Clients: st, Users: st, Grants: st, Keys: st,
		APIs:   []provider.API{{Identifier: API, Scopes: []string{"read:messages", "write:messages"}}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, err
	}
	v, err := middleware.NewVerifier(ctx, middleware.Config{
		Issuer: issuer, Audience: API, KeySet: middleware.ProviderKeys(p),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, err
	}
	return p, v, nil
}

// Token logs alice in to the app at issuer through a browser (authorization
// code with PKCE S256) and returns an access token for the API with scopes.
func Token(ctx context.Context, issuer, scopes string) (string, error) {
	conf := &oauth2.Config{
		ClientID: ClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:   issuer + handlers.PathAuthorize,
			TokenURL:  issuer + handlers.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1:5000/callback",
		Scopes:      strings.Fields(scopes),
	}
	verifier := oauth2.GenerateVerifier()
	to, err := testbrowser.Login(ctx, testbrowser.NewClient(),
		conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("audience", API)),
		Username, Password)
	if err != nil {
		return "", err
	}
	tok, err := conf.Exchange(ctx, to.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Show GETs base+path for each path, with the bearer token if it is not
// "", and prints the status, and the body when it is text.
func Show(ctx context.Context, base, token string, paths ...string) {
	for _, path := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("GET %s: %s", path, resp.Status)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			fmt.Printf(": %s", body)
		}
		fmt.Println()
	}
}
