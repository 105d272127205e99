// Package provider is pixie's protocol engine: an OAuth 2.0 authorization
// server for the Authorization Code grant with PKCE (RFC 7636) and OpenID
// Connect, built on github.com/ory/fosite v0.49.0. It does no HTTP routing;
// package handlers serves its steps on a mux. The steps themselves (parse an
// authorization request, issue its code, serve a token request, …) are not
// exported: only package handlers calls them, through an internal package,
// so what is exported here is what a host app configures and calls.
//
// [New] takes a [Config]: the issuer and four stores (see package store).
// Everything else has a secure default:
//
//	p, err := provider.New(ctx, provider.Config{
//		Issuer:  "https://login.example.com",
//		Clients: st, Users: st, Grants: st, Keys: st,
//	})
//
// What it composes, and what it adds to fosite:
//
//   - only the authorization code grant (with PKCE required for every client,
//     S256 only unless InsecureAllowPlainPKCE), refresh tokens with rotation, OpenID
//     Connect, revocation (RFC 7009), introspection (RFC 7662) and pushed
//     authorization requests (RFC 9126, PKCE checked at the push); never
//     the implicit, hybrid, password or client-credentials grants;
//   - the RFC 9207 iss parameter on every authorization response;
//   - single use of codes and refresh tokens under concurrency: fosite's
//     storage calls are adapted onto store.Grants, whose Consume and Delete
//     are compare-and-set, and a lost race is answered invalid_grant
//     (fosite issue #778 would give a second set of tokens, or a 500);
//   - PKCE parameters and redirect URIs checked when the request arrives,
//     before the user is asked for a password;
//   - storage failures answered server_error, never invalid_client or
//     invalid_grant, so that an outage does not tell an app its tokens are bad;
//   - introspection only for confidential clients allowed to introspect;
//   - signing keys (RS256 and ES256, kid = RFC 7638 thumbprint) generated on
//     first start, kept in store.Keys for every replica, rotated with
//     [Provider.RotateKeys] and reread every KeyRefreshInterval;
//   - the OpenID Connect claims fosite leaves to the server: acr in every ID
//     token ([Login.ACR], an essential acr refused with
//     unmet_authentication_requirements), the claims request parameter
//     (OIDC Core §5.5), and the profile, email, address and phone scopes.
//   - userinfo answers remembered for Config.UserInfoCacheTTL (5 seconds)
//     per verified access token, at most Config.UserInfoCacheSize of them:
//     a revocation shows at once on the replica that made it and within the
//     TTL on the others, as does a changed profile; an expired token is
//     refused on every request;
//   - OpenTelemetry spans and metrics through the API only (Config.TracerProvider,
//     Config.MeterProvider: the global ones, no-ops until the host sets
//     up an SDK) and audit events ([Event], Config.Events), never with a
//     token, code, secret, password or e-mail address in them; and a
//     readiness check, served by package handlers (Server.Ready).
//
// A Provider is safe for concurrent use.
package provider
