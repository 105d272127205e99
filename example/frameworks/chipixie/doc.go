// Package chipixie shows pixie on a chi v5 router. chi's Handle takes Go
// 1.22 method patterns ("GET /authorize"), so a chi.Router is a
// handlers.Router as it is, and middleware.RequireToken is chi middleware:
//
//	r := chi.NewRouter()
//	if err := handlers.Mount(r, p); err != nil { // issuer at the root
//		log.Fatal(err)
//	}
//	r.With(middleware.RequireToken(v, "read:messages")).Get("/api/messages", messages)
//
// With the issuer under a prefix (https://example.com/auth), hand that
// prefix to the handlers.Server, which serves the paths relative to the
// issuer. chi's Mount does not strip the prefix from the request's path, so
// use a wildcard route and http.StripPrefix:
//
//	srv, err := handlers.New(p, handlers.Config{})
//	…
//	r.Handle("/auth/*", http.StripPrefix("/auth", srv))
//
// The handler finds the token with middleware.TokenFrom(r.Context()). The
// package holds only its example.
package chipixie
