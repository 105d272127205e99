// Package ginpixie mounts pixie on a gin engine and protects gin routes with
// pixie's access tokens.
//
// gin has its own router, with its own handler type, so [Router] adapts it
// to a [handlers.Router], giving each of pixie's "METHOD /path" patterns to
// gin's method routing:
//
//	r := gin.New()
//	if err := handlers.Mount(ginpixie.Router(r), p); err != nil { // issuer at the root
//		log.Fatal(err)
//	}
//
// With the issuer under a prefix (https://example.com/auth), hand that
// prefix to the handlers.Server, which serves the paths relative to the
// issuer:
//
//	srv, err := handlers.New(p, handlers.Config{})
//	…
//	r.Any("/auth/*path", gin.WrapH(http.StripPrefix("/auth", srv)))
//
// [RequireToken] is middleware.RequireToken as a gin.HandlerFunc:
//
//	r.GET("/api/messages", ginpixie.RequireToken(v, "read:messages"), func(c *gin.Context) {
//		tok, _ := middleware.TokenFrom(c.Request.Context())
//		c.String(http.StatusOK, "hello %s", tok.Subject)
//	})
package ginpixie

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
)

// Router returns r (a *gin.Engine or a *gin.RouterGroup) as a
// [handlers.Router]. A pattern "GET /authorize" becomes
// r.Handle("GET", "/authorize", gin.WrapH(h)); a pattern without a method,
// such as "/oauth/token", becomes r.Any. Only literal paths are supported
// (all of pixie's are): Handle panics on a pattern with a host, a wildcard
// or a trailing slash.
func Router(r gin.IRoutes) handlers.Router { return router{r} }

type router struct{ r gin.IRoutes }

func (a router) Handle(pattern string, h http.Handler) {
	method, path := split(pattern)
	if method == "" {
		a.r.Any(path, gin.WrapH(h))
	} else {
		a.r.Handle(method, path, gin.WrapH(h))
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
		panic(fmt.Sprintf("ginpixie: pattern %q: want \"METHOD /literal/path\" or \"/literal/path\"", pattern))
	}
	return method, f[0]
}

// RequireToken is [middleware.RequireToken] for gin: it lets a request
// through to the next handlers only with a valid bearer access token
// holding every one of scopes, and otherwise answers with the RFC 6750
// error and aborts the chain. The handlers read the token with
// middleware.TokenFrom(c.Request.Context()). Like middleware.RequireToken,
// it panics if v is nil or a scope is malformed.
func RequireToken(v *middleware.Verifier, scopes ...string) gin.HandlerFunc {
	require := middleware.RequireToken(v, scopes...)
	return func(c *gin.Context) {
		passed := false
		require(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			passed = true
			c.Request = r // carries the token
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
		if !passed {
			c.Abort()
		}
	}
}
