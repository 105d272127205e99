package ginpixie_test

import (
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/pixieauth/pixie/example/frameworks/ginpixie"
)

// TestRouterRefusesPatterns checks that Handle panics, at start-up, on the
// Go 1.22 patterns it cannot translate, rather than registering a route
// that matches other paths than the pattern does.
func TestRouterRefusesPatterns(t *testing.T) {
	for _, pattern := range []string{
		"GET /users/{id}",    // a wildcard
		"/static/",           // a subtree
		"example.com/x",      // a host
		"GET",                // no path
		"GET /a /b",          // two paths
		"POST  example.com/", // a host after the method
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", pattern)
				}
			}()
			ginpixie.Router(gin.New()).Handle(pattern, http.NotFoundHandler())
		}()
	}
	ginpixie.Router(gin.New()).Handle("GET /.well-known/jwks.json", http.NotFoundHandler()) // must not panic
}
