// Package frameworks holds, one package each, the fewest lines that mount
// pixie's login server on the routers Go services are built on, and that
// protect an API with middleware.RequireToken in each one's idiom:
//
//   - servemuxpixie: net/http's *http.ServeMux, with handlers.Mount;
//   - chipixie: chi v5, with handlers.Mount;
//   - gorillapixie: gorilla/mux, through a handlers.Router adapter;
//   - ginpixie: gin, through an adapter, and a gin.HandlerFunc for
//     RequireToken;
//   - echopixie: echo v4, through an adapter, and echo.WrapMiddleware.
//
// Each package is small enough to copy into an application. The issuer may
// be the server's root, where Mount registers the endpoints on the router,
// or a path under it (https://example.com/auth), where the router hands
// everything under that prefix to a handlers.Server through
// http.StripPrefix. The tests in this package run the same flow through
// every framework, both ways.
//
// This directory is a Go module of its own, so that the frameworks are
// dependencies of these examples only: a program that imports pixie links
// none of them, and `go test ./...` at pixie's root does not run these.
package frameworks
