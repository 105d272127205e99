// Package middleware protects the APIs of resource servers with the access
// tokens pixie issues: JWT access tokens (RFC 9068) verified against the
// issuer's keys, and, optionally, opaque tokens checked by introspection
// (RFC 7662). It depends on no other pixie package, only on the token
// format, so an API may run in the authorization server's process or in
// its own.
//
// Make one [Verifier] at start-up, then wrap handlers with [RequireToken];
// the handler reads the validated token with [TokenFrom]:
//
//	v, err := middleware.NewVerifier(ctx, middleware.Config{
//		Issuer:   "https://auth.example.com",
//		Audience: "https://api.example.com",
//		JWKSURL:  "https://auth.example.com/.well-known/jwks.json",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer v.Close()
//	api.Handle("GET /me", middleware.RequireToken(v, "profile")(me))
//
//	func me(w http.ResponseWriter, r *http.Request) {
//		tok, _ := middleware.TokenFrom(r.Context())
//		fmt.Fprintln(w, tok.Subject)
//	}
//
// In the authorization server's own process, pass the provider's keys
// directly with KeySet: [ProviderKeys](p) instead of JWKSURL.
//
// # What is checked
//
// [Verifier.Verify] follows RFC 9068 §4 and the JWT best current practice
// (RFC 8725): typ "at+jwt"; alg from an allow-list that can hold neither
// "none" nor an HMAC algorithm; the key named by kid, whose own alg, type
// and curve must fit the token's alg (so a public key can never be used as
// an HMAC secret); the signature; iss; aud; exp, nbf and iat with a small
// leeway. [RequireToken] then checks scopes. Each refusal is an [*Error]
// that renders as the RFC 6750 §3 challenge: 401 invalid_token, 403
// insufficient_scope with the required scopes, 400 invalid_request for a
// malformed header, a bare `Bearer realm="…"` (and a DPoP challenge) when
// the request has no token. The errors of Verify and [ParseBearer] wrap
// one sentinel per answer: [ErrNoToken], [ErrMalformedHeader],
// [ErrInvalidToken] (and [ErrExpired] within it, for a caller that
// refreshes) or [ErrUnavailable]; which check failed is in the message.
//
// # DPoP
//
// A token whose claims (or introspection answer) hold cnf.jkt is bound to
// the client's key (RFC 9449 §6): [RequireToken] accepts it only as
// `Authorization: DPoP <token>` with a `DPoP` header holding a proof signed
// by that key (RFC 9449 §4.3, §7.1): typ dpop+jwt, alg ES256, RS256, PS256
// or EdDSA, htm the request's method, htu the request's URL
// (Config.PublicURL followed by the path, behind a proxy), iat within 5
// minutes, ath the hash of the token, and a jti seen once, remembered in
// memory by default or in Config.DPoPReplay. The same token sent as Bearer
// is refused, and so is a token without cnf.jkt sent with the DPoP scheme,
// each with `WWW-Authenticate: DPoP algs="ES256 RS256 PS256 EdDSA",
// error=…`; a refused proof is error invalid_dpop_proof. A request without
// a token is offered both schemes. The handler finds the key's thumbprint
// in [Token].JKT.
//
// # Keys and rotation
//
// A remote JWK Set (Config.JWKSURL) is fetched when
// the Verifier is made (it fails fast if it cannot), refreshed in the
// background every Config.RefreshInterval until [Verifier.Close], and
// refetched when a token names an unknown kid, at most once per
// Config.MinRefetchInterval, so that a key the authorization server
// rotates in is accepted without a restart while forged kids cannot flood
// the server. The signature check uses the keys already parsed: nothing is
// fetched or parsed per request.
//
// # Outages
//
// When the key set or the introspection endpoint cannot be reached, the
// request gets 503 with error temporarily_unavailable and no
// WWW-Authenticate challenge (RFC 6750 has no code for it): the client's
// token may be fine, and it should retry instead of discarding it. The
// cause is logged at Error. Tokens are never logged.
//
// Everything in this package is safe for concurrent use.
package middleware
