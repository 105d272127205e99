package gorillapixie_test

import (
	"net/http"
	"testing"

	"github.com/gorilla/mux"

	"github.com/pixieauth/pixie/example/frameworks/gorillapixie"
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
			gorillapixie.Router(mux.NewRouter()).Handle(pattern, http.NotFoundHandler())
		}()
	}
	gorillapixie.Router(mux.NewRouter()).Handle("GET /.well-known/jwks.json", http.NotFoundHandler()) // must not panic
}
