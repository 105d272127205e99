package gorillapixie_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gorilla/mux"

	"github.com/pixieauth/pixie/example/frameworks/gorillapixie"
	"github.com/pixieauth/pixie/example/frameworks/internal/demo"
	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
)

// hello answers with the subject of the request's verified token.
func hello(w http.ResponseWriter, r *http.Request) {
	tok, _ := middleware.TokenFrom(r.Context())
	fmt.Fprintf(w, "hello %s", tok.Subject)
}

// pixie at the root of a gorilla/mux router, next to an API whose routes
// need an access token with read:messages.
func Example() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil) // your server: the issuer is its URL
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	r := mux.NewRouter()
	if err := handlers.Mount(gorillapixie.Router(r), p); err != nil {
		log.Fatal(err)
	}
	api := r.PathPrefix("/api").Subrouter()
	api.Use(middleware.RequireToken(v, "read:messages"))
	api.HandleFunc("/messages", hello).Methods("GET")

	ts.Config.Handler = r
	ts.Start()
	defer ts.Close()
	tok, err := demo.Token(ctx, ts.URL, "openid read:messages")
	if err != nil {
		log.Fatal(err)
	}
	demo.Show(ctx, ts.URL, "", "/.well-known/openid-configuration", "/api/messages")
	demo.Show(ctx, ts.URL, tok, "/api/messages")
	// Output:
	// GET /.well-known/openid-configuration: 200 OK
	// GET /api/messages: 401 Unauthorized
	// GET /api/messages: 200 OK: hello u-alice
}

// pixie under /auth on a gorilla/mux router: the issuer ends in /auth, and
// everything under /auth/ goes to the handlers.Server without the prefix.
func Example_prefix() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String()+"/auth")
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	r := mux.NewRouter()
	srv, err := handlers.New(p, handlers.Config{})
	if err != nil {
		log.Fatal(err)
	}
	r.PathPrefix("/auth/").Handler(http.StripPrefix("/auth", srv))
	api := r.PathPrefix("/api").Subrouter()
	api.Use(middleware.RequireToken(v, "read:messages"))
	api.HandleFunc("/messages", hello).Methods("GET")

	ts.Config.Handler = r
	ts.Start()
	defer ts.Close()
	tok, err := demo.Token(ctx, ts.URL+"/auth", "openid read:messages")
	if err != nil {
		log.Fatal(err)
	}
	demo.Show(ctx, ts.URL, "", "/auth/.well-known/openid-configuration", "/api/messages")
	demo.Show(ctx, ts.URL, tok, "/api/messages")
	// Output:
	// GET /auth/.well-known/openid-configuration: 200 OK
	// GET /api/messages: 401 Unauthorized
	// GET /api/messages: 200 OK: hello u-alice
}
