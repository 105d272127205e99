package servemuxpixie_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/pixieauth/pixie/example/frameworks/internal/demo"
	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
)

// hello answers with the subject of the request's verified token.
func hello(w http.ResponseWriter, r *http.Request) {
	tok, _ := middleware.TokenFrom(r.Context())
	fmt.Fprintf(w, "hello %s", tok.Subject)
}

// pixie at the root of an http.ServeMux, next to an API route that
// needs an access token with read:messages.
func Example() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil) // your server: the issuer is its URL
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	r := http.NewServeMux()
	if err := handlers.Mount(r, p); err != nil {
		log.Fatal(err)
	}
	r.Handle("GET /api/messages", middleware.RequireToken(v, "read:messages")(http.HandlerFunc(hello)))

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

// pixie under /auth on an http.ServeMux: the issuer ends in /auth, and
// everything under /auth/ goes to the handlers.Server without the prefix.
func Example_prefix() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String()+"/auth")
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	r := http.NewServeMux()
	srv, err := handlers.New(p, handlers.Config{})
	if err != nil {
		log.Fatal(err)
	}
	r.Handle("/auth/", http.StripPrefix("/auth", srv))
	r.Handle("GET /api/messages", middleware.RequireToken(v, "read:messages")(http.HandlerFunc(hello)))

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
