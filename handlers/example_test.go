package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/memory"
)

// ExampleMount mounts pixie on an application's own http.ServeMux, next to
// its other routes, and fetches the discovery document a client starts from.
func ExampleMount() {
	// Here the issuer is a test server's URL; in production it is the
	// https URL the mux is served under.
	srv := httptest.NewUnstartedServer(nil)
	defer srv.Close()
	issuer := "http://" + srv.Listener.Addr().String()

	st := memory.New() // register clients and users with st.AddClient, st.AddUser
	p, err := provider.New(context.Background(), provider.Config{
		Issuer:  issuer,
		Clients: st, Users: st, Grants: st, Keys: st,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "the app") })
	if err := handlers.Mount(mux, p); err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = mux
	srv.Start()

	resp, err := http.Get(issuer + handlers.PathOIDCConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer                string   `json:"issuer"`
		TokenEndpoint         string   `json:"token_endpoint"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
		IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		log.Fatal(err)
	}
	fmt.Println("issuer is the server URL:", doc.Issuer == issuer)
	fmt.Println("token endpoint:", doc.TokenEndpoint[len(issuer):])
	fmt.Println("PKCE methods:", doc.CodeChallengeMethods)
	fmt.Println("iss on redirects:", doc.IssParameterSupported)
	// Output:
	// issuer is the server URL: true
	// token endpoint: /oauth/token
	// PKCE methods: [S256]
	// iss on redirects: true
}

// ExampleServer_EndSessions ends a user's login sessions when they change
// their password, so that a session someone else opened with the old one
// (or a copy of its cookie) gets no more codes, on every replica sharing
// Config.Sessions.
func ExampleServer_EndSessions() {
	st := memory.New()
	p, err := provider.New(context.Background(), provider.Config{
		Issuer:  "https://login.example.com",
		Clients: st, Users: st, Grants: st, Keys: st,
	})
	if err != nil {
		log.Fatal(err)
	}
	pixie, err := handlers.New(p, handlers.Config{Sessions: st})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	pixie.Register(mux)
	mux.HandleFunc("POST /account/password", func(w http.ResponseWriter, r *http.Request) {
		subject := "u-1" // the app's signed-in user; it checks and stores the new password
		if err := pixie.EndSessions(r.Context(), subject); err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "password changed; signed out everywhere")
	})
}
