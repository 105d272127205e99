// Package echopixie mounts pixie on an echo v4 server and protects echo
// routes with pixie's access tokens.
//
// echo has its own router, with its own handler type, so [Router] adapts it
// to a [handlers.Router], giving each of pixie's "METHOD /path" patterns to
// echo's method routing:
//
//	e := echo.New()
//	if err := handlers.Mount(echopixie.Router(e), p); err != nil { // issuer at the root
//		log.Fatal(err)
//	}
//
// With the issuer under a prefix (https://example.com/auth), hand that
// prefix to the handlers.Server, which serves the paths relative to the
// issuer:
//
//	srv, err := handlers.New(p, handlers.Config{})
//	…
//	e.Any("/auth/*", echo.WrapHandler(http.StripPrefix("/auth", srv)))
//
// middleware.RequireToken becomes echo middleware through
// echo.WrapMiddleware, which hands the verified request on:
//
//	e.GET("/api/messages", func(c echo.Context) error {
//		tok, _ := middleware.TokenFrom(c.Request().Context())
//		return c.String(http.StatusOK, "hello "+tok.Subject)
//	}, echo.WrapMiddleware(middleware.RequireToken(v, "read:messages")))
package echopixie

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pixieauth/pixie/handlers"
)

// Routes is what [Router] registers on: *echo.Echo and *echo.Group.
type Routes interface {
	Add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	Any(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
}

// Router returns r as a [handlers.Router]. A pattern "GET /authorize"
// becomes r.Add("GET", "/authorize", echo.WrapHandler(h)); a pattern
// without a method, such as "/oauth/token", becomes r.Any. Only literal
// paths are supported (all of pixie's are): Handle panics on a pattern with
// a host, a wildcard or a trailing slash.
func Router(r Routes) handlers.Router { return router{r} }

type router struct{ r Routes }

func (a router) Handle(pattern string, h http.Handler) {
	method, path := split(pattern)
	if method == "" {
		a.r.Any(path, echo.WrapHandler(h))
	} else {
		a.r.Add(method, path, echo.WrapHandler(h))
	}
}

// split parses a Go 1.22 pattern, "METHOD /path" or "/path", into its
// method ("" for any) and its path.
func split(pattern string) (method, path string) {
	f := strings.Fields(pattern)
	if len(f) == 2 {
		method, f = f[0], f[1:]
	}
	if len(f) != 1 || !strings.HasPrefix(f[0], "/") || strings.ContainsAny(f[0], "{}:*") ||
		(len(f[0]) > 1 && strings.HasSuffix(f[0], "/")) {
		panic(fmt.Sprintf("echopixie: pattern %q: want \"METHOD /literal/path\" or \"/literal/path\"", pattern))
	}
	return method, f[0]
}
