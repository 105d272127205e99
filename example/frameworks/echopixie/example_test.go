package echopixie_test

import (
	"context"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/labstack/echo/v4"

	"github.com/pixieauth/pixie/example/frameworks/echopixie"
	"github.com/pixieauth/pixie/example/frameworks/internal/demo"
	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
)

// hello answers with the subject of the request's verified token.
func hello(c echo.Context) error {
	tok, _ := middleware.TokenFrom(c.Request().Context())
	return c.String(http.StatusOK, "hello "+tok.Subject)
}

// pixie at the root of an echo server, next to an API route that needs an
// access token with read:messages.
func Example() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil) // your server: the issuer is its URL
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	e := echo.New()
	if err := handlers.Mount(echopixie.Router(e), p); err != nil {
		log.Fatal(err)
	}
	e.GET("/api/messages", hello, echo.WrapMiddleware(middleware.RequireToken(v, "read:messages")))

	ts.Config.Handler = e
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

// pixie under /auth on an echo server: the issuer ends in /auth, and every
// method under /auth/ goes to the handlers.Server without the prefix.
func Example_prefix() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String()+"/auth")
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	e := echo.New()
	srv, err := handlers.New(p, handlers.Config{})
	if err != nil {
		log.Fatal(err)
	}
	e.Any("/auth/*", echo.WrapHandler(http.StripPrefix("/auth", srv)))
	e.GET("/api/messages", hello, echo.WrapMiddleware(middleware.RequireToken(v, "read:messages")))

	ts.Config.Handler = e
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
