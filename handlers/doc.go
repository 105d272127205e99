// Package handlers serves a [provider.Provider] over net/http: the
// authorization, token, pushed authorization request (RFC 9126), userinfo,
// revocation and introspection endpoints, discovery, the JWKS, and the login
// and logout pages.
//
// [Mount] registers them on the app's existing mux, anything with
// Handle(pattern, http.Handler) (*http.ServeMux, chi, gorilla/mux):
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /{$}", home) // the app's own routes
//	if err := handlers.Mount(mux, p); err != nil {
//		log.Fatal(err)
//	}
//
// The login session is a record in [Config.Sessions] behind a
// gorilla/sessions cookie sealed with keys derived from the provider's key
// store, so every replica reads it; it is HttpOnly, SameSite=Lax, and
// Secure with the __Host- prefix when the issuer is https. The cookie holds
// only a random session ID and the forms' CSRF token. A session ends at
// its absolute lifetime ([Config.SessionLifetime]), after its idle timeout
// ([Config.SessionIdleTimeout]), at logout, and by [Server.EndSessions];
// viewing a page never extends it.
// The pages are html/template files embedded in the package, parsed once by
// [New]; [Config.Templates] overrides any of them, and each page's data is a
// documented struct ([LoginPage], [ErrorPage], [LogoutPage]). Forms carry a
// CSRF token bound to the session and sit behind http.CrossOriginProtection;
// pages send a nonce-based Content-Security-Policy with frame-ancestors 'none'.
//
// Each route's request gets a span, a child of the span in its context
// (the host's HTTP span), made by the provider's provider.Config.TracerProvider;
// the login, consent and logout pages emit the provider's audit events
// (provider.Event). [Server.Ready] is a readiness check for the host's
// /readyz.
//
// A [Server] is safe for concurrent use.
package handlers
