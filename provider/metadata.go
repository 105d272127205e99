package provider

import (
	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/paths"
)

// metadata returns the provider's discovery document (OpenID Connect
// Discovery 1.0 §3, RFC 8414 §2): the issuer, the URLs of the endpoints
// package handlers serves under it, and what they support (PKCE methods,
// signing algorithms, scopes, claims, acr values, DPoP, pushed requests).
// Package handlers serves it at /.well-known/openid-configuration and
// /.well-known/oauth-authorization-server; a host that mounts the endpoints
// itself can serve it as JSON. The map is the caller's.
func (p *Provider) metadata() map[string]any {
	iss := p.cfg.Issuer
	methods := []string{"S256"}
	if p.cfg.InsecureAllowPlainPKCE {
		methods = append(methods, "plain")
	}
	return map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + paths.Authorize,
		"token_endpoint":                                 iss + paths.Token,
		"pushed_authorization_request_endpoint":          iss + paths.PAR,
		"require_pushed_authorization_requests":          p.cfg.RequirePAR,
		"userinfo_endpoint":                              iss + paths.UserInfo,
		"jwks_uri":                                       iss + paths.JWKS,
		"revocation_endpoint":                            iss + paths.Revoke,
		"introspection_endpoint":                         iss + paths.Introspect,
		"end_session_endpoint":                           iss + paths.Logout,
		"scopes_supported":                               scopesSupported(),
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{grantAuthorizationCode, grantRefreshToken},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          signingAlgs(),
		"dpop_signing_alg_values_supported":              dpop.Algs(),
		"token_endpoint_auth_methods_supported":          []string{"none", "client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":     []string{"none", "client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported":  []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               methods,
		"claims_supported":                               claimsSupported(),
		"acr_values_supported":                           p.acrValuesSupported(),
		"prompt_values_supported":                        []string{"none", "login", "consent"},
		"claims_parameter_supported":                     true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"authorization_response_iss_parameter_supported": true,
	}
}
