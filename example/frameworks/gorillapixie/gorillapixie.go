// Package gorillapixie mounts pixie on a gorilla/mux router.
//
// gorilla/mux's Router.Handle returns a *mux.Route and takes its path
// literally, so it is not a [handlers.Router]: [Router] adapts it, giving each
// of pixie's "METHOD /path" patterns to mux's own method matching.
//
//	r := mux.NewRouter()
//	if err := handlers.Mount(gorillapixie.Router(r), p); err != nil { // issuer at the root
//		log.Fatal(err)
//	}
//
// With the issuer under a prefix (https://example.com/auth), hand that
// prefix to the handlers.Server, which serves the paths relative to the
// issuer:
//
//	srv, err := handlers.New(p, handlers.Config{})
//	…
//	r.PathPrefix("/auth/").Handler(http.StripPrefix("/auth", srv))
//
// middleware.RequireToken is already mux's middleware type:
//
//	api := r.PathPrefix("/api").Subrouter()
//	api.Use(middleware.RequireToken(v, "read:messages"))
//
// and the handler finds the token with middleware.TokenFrom(r.Context()).
package gorillapixie

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/pixieauth/pixie/handlers"
)

// Router returns r as a [handlers.Router]. A pattern "GET /authorize"
// becomes r.Handle("/authorize", h).Methods("GET"); a pattern without a
// method, such as "/oauth/token", matches every method. Only literal paths
// are supported (all of pixie's are): Handle panics on a pattern with a
// host, a wildcard or a trailing slash.
func Router(r *mux.Router) handlers.Router { return router{r} }

type router struct{ r *mux.Router }

func (a router) Handle(pattern string, h http.Handler) {
	method, path := split(pattern)
	route := a.r.Handle(path, h)
	if method != "" {
		route.Methods(method)
	}
}

// split parses a Go 1.22 pattern, "METHOD /path" or "/path", into its
// method ("" for any) and its path.
func split(pattern string) (method, path string) {
	f := strings.Fields(pattern)
	if len(f) == 2 {
		method, f = f[0], f[1:]
	}
	if len(f) != 1 || !strings.HasPrefix(f[0], "/") || strings.ContainsAny(f[0], "{}") ||
		(len(f[0]) > 1 && strings.HasSuffix(f[0], "/")) {
		panic(fmt.Sprintf("gorillapixie: pattern %q: want \"METHOD /literal/path\" or \"/literal/path\"", pattern))
	}
	return method, f[0]
}
