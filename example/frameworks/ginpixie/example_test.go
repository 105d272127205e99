package ginpixie_test

import (
	"context"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/pixieauth/pixie/example/frameworks/ginpixie"
	"github.com/pixieauth/pixie/example/frameworks/internal/demo"
	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
)

// pixie at the root of a gin engine, next to an API route that needs an
// access token with read:messages.
func Example() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil) // your server: the issuer is its URL
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := handlers.Mount(ginpixie.Router(r), p); err != nil {
		log.Fatal(err)
	}
	r.GET("/api/messages", ginpixie.RequireToken(v, "read:messages"), func(c *gin.Context) {
		tok, _ := middleware.TokenFrom(c.Request.Context())
		c.String(http.StatusOK, "hello %s", tok.Subject)
	})

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

// pixie under /auth on a gin engine: the issuer ends in /auth, and every
// method under /auth/ goes to the handlers.Server without the prefix.
func Example_prefix() {
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	p, v, err := demo.New(ctx, "http://"+ts.Listener.Addr().String()+"/auth")
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	srv, err := handlers.New(p, handlers.Config{})
	if err != nil {
		log.Fatal(err)
	}
	r.Any("/auth/*path", gin.WrapH(http.StripPrefix("/auth", srv)))
	r.GET("/api/messages", ginpixie.RequireToken(v, "read:messages"), func(c *gin.Context) {
		tok, _ := middleware.TokenFrom(c.Request.Context())
		c.String(http.StatusOK, "hello %s", tok.Subject)
	})

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
