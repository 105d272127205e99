// Package servemuxpixie shows pixie on net/http's *http.ServeMux, which
// takes handlers.Mount's Go 1.22 patterns as they are:
//
//	mux := http.NewServeMux()
//	if err := handlers.Mount(mux, p); err != nil { // issuer at the root
//		log.Fatal(err)
//	}
//	mux.Handle("GET /api/messages", middleware.RequireToken(v, "read:messages")(messages))
//
// With the issuer under a prefix (https://example.com/auth), hand that
// prefix to the handlers.Server, which serves the paths relative to the
// issuer:
//
//	srv, err := handlers.New(p, handlers.Config{})
//	…
//	mux.Handle("/auth/", http.StripPrefix("/auth", srv))
//
// The handler finds the token with middleware.TokenFrom(r.Context()). The
// package holds only its example.
package servemuxpixie
