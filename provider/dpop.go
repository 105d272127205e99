package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/httpauth"
	"github.com/pixieauth/pixie/internal/paths"
	"github.com/pixieauth/pixie/store"
)

// DPoP (RFC 9449): a client that sends a proof of possession of a key with
// its token request gets access tokens bound to the key's thumbprint
// (cnf.jkt), usable only with a fresh proof of the same key; a public
// client's refresh token is bound to it too (§5). The proofs themselves are
// checked by package internal/dpop, the one checker the token endpoint,
// /userinfo and package middleware share.

// newDPoPCheckers returns the checkers of the token endpoint (with a server
// nonce if Config.DPoPNonce) and of /userinfo (without: a resource server
// may ask for one, and this one does not). Both record the proofs they
// accept in the grant store, which every replica shares.
func (p *Provider) newDPoPCheckers() (token, resource *dpop.Checker, err error) {
	token = &dpop.Checker{Now: p.now, Replay: p.dpopReplay}
	if p.cfg.DPoPNonce {
		if token.NonceKey, err = p.deriveKey("dpop nonce"); err != nil {
			return nil, nil, err
		}
	}
	resource = &dpop.Checker{Now: p.now, Replay: p.dpopReplay}
	return token, resource, nil
}

// dpopReplay records a proof as used (a grant record of kind dpop_proof,
// under a digest of its key and jti) and reports whether it was the first
// time: the store refuses a second record of the same key.
func (p *Provider) dpopReplay(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	err := p.grants.CreateGrant(ctx, &store.Grant{
		Kind: store.KindDPoPProof, Signature: key, RequestID: key, ExpiresAt: expiresAt.UTC(), Active: true,
	})
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// bindDPoP checks the DPoP proof of a token request whose grant fosite has
// validated (nothing consumed yet, so a refused proof costs the client
// nothing but a retry) and records in the session the key the new tokens
// are bound to. A proof is needed when the code was bound with dpop_jkt,
// when a public client's refresh token is bound, and when the client must
// use DPoP; with one, the new tokens are bound to its key, without one they
// are bearer tokens.
func (p *Provider) bindDPoP(ctx context.Context, r *http.Request, ar fosite.AccessRequester) error {
	sess, c, err := p.tokenGrant(ctx, ar)
	if err != nil {
		return err
	}
	bound := sess.JKT
	if ar.GetGrantTypes().ExactOne(grantRefreshToken) && !c.c.Public() {
		// A confidential client's refresh token is bound to its
		// credentials; each refresh may bind its access tokens to a key.
		bound = ""
	}
	headers := r.Header.Values("DPoP")
	if len(headers) == 0 {
		if bound != "" || c.c.RequireDPoP || (p.cfg.RequireDPoP && c.c.Public()) {
			return p.dpopError(ctx, "token", &dpop.Error{Code: dpop.CodeInvalidProof, Description: "This grant needs a DPoP proof (RFC 9449) of the client's key."})
		}
		sess.JKT = ""
		return nil
	}
	proof, err := p.dpopToken.Check(ctx, headers, dpop.Request{
		Method: http.MethodPost, URL: p.cfg.Issuer + paths.Token, Thumbprint: bound,
	})
	if err != nil {
		return p.dpopError(ctx, "token", err)
	}
	sess.JKT = proof.Thumbprint
	return nil
}

// dpopError turns a refusal of internal/dpop into the token endpoint's
// answer (RFC 9449 §5, §8): 400 invalid_dpop_proof, or use_dpop_nonce with
// a fresh nonce for the DPoP-Nonce header. Anything else is the store's
// failure.
func (p *Provider) dpopError(ctx context.Context, op string, err error) *engine.Error {
	var de *dpop.Error
	if !errors.As(err, &de) {
		return p.oauthError(ctx, op, &internalError{err})
	}
	e := &engine.Error{Code: de.Code, Description: de.Description, Status: http.StatusBadRequest, Cause: err}
	if de.Code == dpop.CodeUseNonce {
		e.DPoPNonce = p.dpopToken.Nonce()
	}
	p.tel.DPoPRejection(ctx, op, e.Code)
	p.log().DebugContext(ctx, "request refused", "op", op, "error_code", e.Code, "description", e.Description)
	return e
}

// bindPushedDPoP reads a DPoP proof sent with a pushed authorization
// request (RFC 9449 §10.1): like dpop_jkt, which it must agree with if both
// are sent, it binds the code to the proof's key, by setting the pushed
// request's dpop_jkt.
func (p *Provider) bindPushedDPoP(ctx context.Context, r *http.Request, form url.Values) error {
	headers := r.Header.Values("DPoP")
	if len(headers) == 0 {
		return nil
	}
	proof, err := p.dpopToken.Check(ctx, headers, dpop.Request{
		Method: http.MethodPost, URL: p.cfg.Issuer + paths.PAR, Thumbprint: form.Get("dpop_jkt"),
	})
	if err != nil {
		return p.dpopError(ctx, "par", err)
	}
	form.Set("dpop_jkt", proof.Thumbprint)
	return nil
}

// jktPattern is an RFC 7638 SHA-256 thumbprint: 32 bytes, base64url without
// padding.
var jktPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// checkProofParams checks the parameters of an authorization request, direct
// or pushed, that bind the code to what only the client holds: the PKCE
// challenge (RFC 7636 §4.3) and the DPoP key's thumbprint (RFC 9449 §10).
func (p *Provider) checkProofParams(form url.Values) error {
	if err := checkChallenge(form.Get("code_challenge"), form.Get("code_challenge_method"), p.cfg.InsecureAllowPlainPKCE); err != nil {
		return err
	}
	return checkJKT(form.Get("dpop_jkt"))
}

// checkJKT refuses a dpop_jkt parameter of an authorization request (RFC
// 9449 §10) that is not a thumbprint.
func checkJKT(v string) error {
	if v == "" || jktPattern.MatchString(v) {
		return nil
	}
	return fosite.ErrInvalidRequest.WithHint("dpop_jkt must be the base64url SHA-256 JWK thumbprint (RFC 7638) of the client's DPoP key.")
}

// dpopChallenge returns the WWW-Authenticate value of a refusal at a
// protected resource (RFC 9449 §7.1).
func dpopChallenge(e *engine.Error) string {
	return httpauth.Challenge("DPoP", "algs", strings.Join(dpop.Algs(), " "), "error", e.Code, "error_description", e.Description)
}
