// Command quickstart is the README's quickstart, kept compiling: an existing
// app's mux with pixie mounted on it.
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

func main() {
	ctx := context.Background()
	st := memory.New() // clients, grants and keys; users too, in this demo
	st.AddClient(ctx, &store.Client{ID: "my-app", Native: true, FirstParty: true,
		RedirectURIs: []string{"com.example.app:/oauth2redirect", "http://127.0.0.1/callback"},
		Scopes:       []string{"openid", "profile", "email", "offline_access"}})
	st.AddUser(ctx, &store.User{Subject: "u-1", Name: "Alice"}, "alice", "correct horse battery staple")

	p, err := provider.New(ctx, provider.Config{
		Issuer:  "http://127.0.0.1:8080", // https://… in production
		Clients: st, Grants: st, Keys: st,
		Users: st, // or your own user database: see "Your own users"
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux() // your app's mux, with its own routes
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("my app\n")) })
	if err := handlers.Mount(mux, p); err != nil { // /authorize, /oauth/token, /userinfo, /.well-known/…
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}
