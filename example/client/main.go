// Command client is what a native (mobile or desktop) app does to log a user
// in against a pixie server, written as a CLI so every step is visible.
//
// It demonstrates the OAuth 2.0 for Native Apps profile (RFC 8252) with
// OpenID Connect:
//
//   - discovery: every endpoint is read from /.well-known/openid-configuration;
//   - a public client (no secret) using the authorization code flow with
//     PKCE S256 (RFC 7636), a random state and an OIDC nonce;
//   - a loopback redirect on 127.0.0.1 with a random port (RFC 8252 §7.3),
//     which the server accepts for the registered http://127.0.0.1/callback;
//   - the RFC 9207 "iss" authorization response parameter, checked when present;
//   - ID token verification (signature, iss, aud, exp, nonce, at_hash) and a
//     UserInfo call whose "sub" must match the ID token's;
//   - an access token for an API (RFC 9068 JWT): the audience parameter
//     names the API (-audience), and the token is used at example/api, which
//     accepts the read (GET /api/messages, read:messages) and refuses the
//     write (POST /api/messages) with 403 insufficient_scope, because the
//     token lacks write:messages;
//   - with -refresh, refresh token rotation: the refresh token is used once,
//     and then the old one is shown to be refused (invalid_grant).
//
// Token values are secrets and are never printed in full: the transcript shows
// only a short prefix and the length. The access token's aud and scope are
// decoded for the transcript, not verified: that is the API's job.
//
// Run the server, the API and the client, each in its own terminal:
//
//	go run ./example/server
//	go run ./example/api
//	go run ./example/client
//
// The client prints the authorize URL and tries to open it in the system
// browser; log in there and the browser is redirected back to the client.
// Without example/api running, the client says so and carries on.
// Flags (run with -h for all of them):
//
//	-issuer     issuer URL (env PIXIE_ISSUER, default http://127.0.0.1:8080)
//	-client-id  client ID (env PIXIE_CLIENT_ID, default example-native)
//	-scopes     space-separated scopes (env PIXIE_SCOPES,
//	            default "openid profile email offline_access read:messages")
//	-audience   the API to ask the access token for (env PIXIE_AUDIENCE,
//	            default https://api.example.com); -audience "" asks for none,
//	            and then the default scopes leave out read:messages
//	-api        base URL of example/api (env PIXIE_API, default
//	            http://127.0.0.1:8081); -api "" skips the API calls
//	-refresh    after logging in, demonstrate refresh token rotation
//	-open       try to open the system browser (default true)
//	-timeout    how long to wait for the browser redirect (default 5m)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errFlagsReported) {
			fmt.Fprintf(os.Stderr, "client: %v\n", err)
		}
		os.Exit(2)
	}

	// The first Ctrl-C cancels the flow cleanly; stop restores the default
	// behaviour, so a second one kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(1)
	}
}
