package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"

	"github.com/pixieauth/pixie/store"
)

// fositeStorage adapts fosite's storage calls onto pixie's small store
// interfaces. It is where fosite's contract is honoured: records keyed by
// signature, the OIDC record by a hash of the code, consumed codes and
// rotated refresh tokens returned with their error so that fosite revokes
// the family, compare-and-set invalidation (fosite #778), and a fresh
// deserialized copy on every read.
type fositeStorage struct {
	p *Provider
}

var (
	_ fosite.ClientManager               = (*fositeStorage)(nil)
	_ oauth2.CoreStorage                 = (*fositeStorage)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStorage)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStorage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStorage)(nil)
	_ storage.Transactional              = (*fositeStorage)(nil)
	_ fosite.PARStorage                  = (*fositeStorage)(nil)
)

// storedForm lists the request parameters kept with a grant: what fosite
// reads back later. Everything else (code, code_verifier, refresh_token,
// client_secret, id_token_hint) is dropped, so no record holds a token.
var storedForm = []string{
	"redirect_uri", "nonce", "max_age", "prompt", "acr_values",
	"code_challenge", "code_challenge_method", "response_type", "grant_type", "scope", "client_id",
}

// storedRequest is a fosite request as serialized into store.Grant.Data,
// without its session. Data is "1\n" (the format version), this struct as
// JSON, "\n", and the session as JSON (empty for PKCE records, which need
// only the form). Splitting them spares encoding/json a second pass over
// the session, the largest part, on every read and write.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	// Bundle marks an authorization code record that also carries its PKCE
	// challenge and its OpenID Connect request (OIDC says whether there was
	// one): one record per authorization instead of three. Codes stored
	// without it have KindPKCE and KindOIDC records of their own.
	Bundle bool `json:"bundle,omitempty"`
	OIDC   bool `json:"oidc,omitempty"`
}

const dataVersion = "1\n"

// recordSizeHint is the capacity a record's Data starts with: enough for
// the head and session of a typical code or token record, so that it is
// allocated once.
const recordSizeHint = 1536

// clone returns a copy of sr sharing nothing with it. Its lists share one
// backing array, each capped at its own length, so that fosite's appends to
// one reallocate it rather than overwrite the next.
func (sr *storedRequest) clone() storedRequest {
	c := *sr
	n := len(sr.RequestedScope) + len(sr.GrantedScope) + len(sr.RequestedAudience) + len(sr.GrantedAudience)
	for _, v := range sr.Form {
		n += len(v)
	}
	all := make([]string, 0, n)
	part := func(l []string) []string {
		if l == nil {
			return nil
		}
		start := len(all)
		all = append(all, l...)
		return all[start:len(all):len(all)]
	}
	c.RequestedScope, c.GrantedScope = part(sr.RequestedScope), part(sr.GrantedScope)
	c.RequestedAudience, c.GrantedAudience = part(sr.RequestedAudience), part(sr.GrantedAudience)
	if sr.Form != nil {
		c.Form = make(url.Values, len(sr.Form))
		for k, v := range sr.Form {
			c.Form[k] = part(v)
		}
	}
	return c
}

// internalError marks a failure of the server, not of the client: a store
// that is down, a client registration that breaks the rules. fosite folds
// some of these into client errors (any GetClient failure is invalid_client);
// oauthError turns them back into server_error, so that an outage never
// tells an app its credentials are bad.
type internalError struct{ err error }

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// errRecordConsumed marks the loss of a compare-and-set on a code or refresh
// token: a concurrent or repeated redemption. The token endpoint answers it
// with invalid_grant.
var errRecordConsumed = fmt.Errorf("provider: grant already used: %w", store.ErrConsumed)

// newGrant serializes r into a record. Its form keeps the storedForm
// parameters of r and of extra (the PKCE and OIDC requests of a bundled
// code).
func (s *fositeStorage) newGrant(kind store.Kind, signature string, r fosite.Requester, expiry fosite.TokenType, cache *sessionCache, bundle, oidc bool, extra ...fosite.Requester) (*store.Grant, error) {
	form := url.Values{}
	for _, req := range append([]fosite.Requester{r}, extra...) {
		for _, k := range storedForm {
			if v, ok := req.GetRequestForm()[k]; ok {
				form[k] = v
			}
		}
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              form,
		Bundle:            bundle,
		OIDC:              oidc,
	}
	data, err := sr.appendJSON(append(make([]byte, 0, recordSizeHint), dataVersion...))
	if err != nil {
		return nil, fmt.Errorf("provider: encode request: %w", err)
	}
	data = append(data, '\n')
	if kind != store.KindPKCE {
		if data, err = cache.appendTo(data, r.GetSession()); err != nil {
			return nil, fmt.Errorf("provider: encode session: %w", err)
		}
	}
	exp := r.GetSession().GetExpiresAt(expiry)
	if exp.IsZero() {
		exp = s.p.now().Add(s.p.cfg.RefreshTokenLifespan)
	}
	return &store.Grant{
		Kind:      kind,
		Signature: signature,
		RequestID: r.GetID(),
		ClientID:  r.GetClient().GetID(),
		Subject:   r.GetSession().GetSubject(),
		ExpiresAt: exp.UTC(),
		Active:    true,
		Data:      data,
	}, nil
}

func (s *fositeStorage) create(ctx context.Context, kind store.Kind, signature string, r fosite.Requester, expiry fosite.TokenType) error {
	bs := batchStateFrom(ctx)
	var cache *sessionCache
	if bs != nil {
		cache = &bs.sessions
	}
	g, err := s.newGrant(kind, signature, r, expiry, cache, false, false)
	if err != nil {
		return err
	}
	if bs != nil {
		bs.b.Create = append(bs.b.Create, g)
		return nil
	}
	return s.p.grants.CreateGrant(ctx, g)
}

// get loads a record and rebuilds the request, decoding the session into
// sess (fosite's prototype) or, when fosite passes none, a fresh session.
// Not-found and a vanished client are fosite.ErrNotFound.
func (s *fositeStorage) get(ctx context.Context, kind store.Kind, signature string, sess fosite.Session) (*fosite.Request, *store.Grant, error) {
	r, g, _, err := s.getMeta(ctx, kind, signature, sess)
	return r, g, err
}

// skipSession, passed to getMeta as the session, leaves the session out:
// the request it returns has none.
type skipSession struct{ fosite.Session }

// getMeta is get, also returning the record's bundle flags.
func (s *fositeStorage) getMeta(ctx context.Context, kind store.Kind, signature string, sess fosite.Session) (*fosite.Request, *store.Grant, storedRequest, error) {
	m := memoFrom(ctx)
	g := m.code(kind, signature)
	fresh := g == nil
	var err error
	if fresh {
		g, err = s.p.grants.Grant(ctx, kind, signature)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, storedRequest{}, fosite.ErrNotFound
	} else if err != nil {
		return nil, nil, storedRequest{}, &internalError{err}
	}
	head, sessJSON, ok := bytes.Cut(bytes.TrimPrefix(g.Data, []byte(dataVersion)), []byte("\n"))
	if !ok || !bytes.HasPrefix(g.Data, []byte(dataVersion)) {
		return nil, nil, storedRequest{}, &internalError{fmt.Errorf("provider: %s record in an unknown format", kind)}
	}
	var sr storedRequest
	if cached := m.head(kind, signature); !fresh && cached != nil {
		sr = cached.clone() // fosite may append to the request's lists
	} else if err := decodeHead(head, &sr); err != nil {
		return nil, nil, storedRequest{}, &internalError{fmt.Errorf("provider: decode %s record: %w", kind, err)}
	}
	if fresh {
		m.setCode(kind, g, &sr)
	}
	if sess == nil {
		sess = newSession()
	}
	if _, skip := sess.(skipSession); skip {
		sess = nil
	} else if kind == store.KindAuthorizeCode && m.decodedInto(signature, sess) {
		// fosite's second read of the code, or its OIDC read, into the
		// session the first read filled: decoding again would only undo
		// what fosite has set on it since (the tokens' expiry).
	} else if len(sessJSON) > 0 {
		if err := decodeSession(sessJSON, sess); err != nil {
			return nil, nil, storedRequest{}, &internalError{fmt.Errorf("provider: decode %s session: %w", kind, err)}
		}
	}
	c, err := s.GetClient(ctx, g.ClientID)
	if err != nil {
		return nil, nil, storedRequest{}, err
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            c,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           sess,
	}, g, sr, nil
}

func (s *fositeStorage) remove(ctx context.Context, kind store.Kind, signature string) error {
	err := s.p.grants.Delete(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

// GetClient returns the client, refusing a registration that breaks pixie's
// rules (see ValidateClient). A missing client is fosite.ErrNotFound
// (invalid_client); any other failure stays a server error.
func (s *fositeStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	m := memoFrom(ctx)
	if c := m.client(id); c != nil {
		return s.p.fositeClient(c), nil
	}
	c, err := s.p.clients.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	} else if err != nil {
		return nil, &internalError{fmt.Errorf("provider: load client: %w", err)}
	}
	if err := ValidateClient(c); err != nil {
		return nil, &internalError{err}
	}
	m.setClient(c)
	return s.p.fositeClient(c), nil
}

// ClientAssertionJWTValid is part of fosite's ClientManager; pixie does not
// accept private_key_jwt client authentication, so there is nothing to track.
func (s *fositeStorage) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT: see ClientAssertionJWTValid.
func (s *fositeStorage) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

// CreateAuthorizeCodeSession holds the code back, when the provider issues
// it (see pendingCode), until fosite's PKCE and OIDC handlers have added
// their parts: the three are written as one record.
func (s *fositeStorage) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	if pc := pendingFrom(ctx); pc != nil && pc.code == nil {
		pc.signature, pc.code = signature, r
		return nil
	}
	return s.create(ctx, store.KindAuthorizeCode, signature, r, fosite.AuthorizeCode)
}

// GetAuthorizeCodeSession returns a consumed code together with
// fosite.ErrInvalidatedAuthorizeCode, which makes fosite revoke every token
// issued from it.
func (s *fositeStorage) GetAuthorizeCodeSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	r, g, err := s.get(ctx, store.KindAuthorizeCode, signature, sess)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		s.p.log().WarnContext(ctx, "authorization code replayed; revoking the tokens issued from it",
			"client_id", g.ClientID, "request_id", g.RequestID)
		s.p.replayed(ctx, g, grantAuthorizationCode, "")
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession consumes the code: compare-and-set, so
// that of concurrent redemptions exactly one proceeds. It deletes the code's
// PKCE record with it, inside the exchange's transaction (see
// DeletePKCERequestSession).
func (s *fositeStorage) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	bundled := memoFrom(ctx).bundled(signature)
	if b := batchFrom(ctx); b != nil {
		// A code stored before bundling leaves its PKCE record to expire:
		// without its code it opens nothing.
		b.Consume = append(b.Consume, store.GrantKey{Kind: store.KindAuthorizeCode, Signature: signature})
		return nil
	}
	err := s.p.grants.Consume(ctx, store.KindAuthorizeCode, signature)
	if errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrNotFound) {
		return errRecordConsumed
	} else if err != nil {
		return err
	}
	if bundled {
		return nil
	}
	if err := s.p.grants.Delete(ctx, store.KindPKCE, signature); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// CreatePKCERequestSession adds the challenge to the pending code's record.
func (s *fositeStorage) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	if pc := pendingFrom(ctx); pc != nil && pc.signature == signature {
		pc.pkce = r
		return nil
	}
	return s.create(ctx, store.KindPKCE, signature, r, fosite.AuthorizeCode)
}

// GetPKCERequestSession returns the code's record, which holds its
// challenge, or for a code stored before bundling its PKCE record.
func (s *fositeStorage) GetPKCERequestSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	// fosite reads only the challenge from it: the session stays undecoded.
	r, _, meta, err := s.getMeta(ctx, store.KindAuthorizeCode, signature, skipSession{})
	if err == nil && meta.Bundle {
		r.Session = sess
		if r.Form.Get("code_challenge") == "" {
			return nil, fosite.ErrNotFound
		}
		return r, nil
	}
	if err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return nil, err
	}
	r, _, err = s.get(ctx, store.KindPKCE, signature, sess)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePKCERequestSession does nothing. fosite calls it before it checks
// the verifier and outside the exchange's transaction, so deleting here
// would let a wrong verifier, or a database failing later in the exchange,
// make the code unusable for the real client. InvalidateAuthorizeCodeSession
// deletes the record instead, with the code, in the transaction.
func (s *fositeStorage) DeletePKCERequestSession(context.Context, string) error { return nil }

// digest is a storage key made from a secret or an overlong value: its
// SHA-256, base64url-encoded.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// oidcKey is the storage key of the OIDC record: fosite passes the raw
// authorization code, which must not be stored.
func oidcKey(code string) string { return digest(code) }

// accessKey is the storage key of an access token: the signature of an
// opaque token as it is, and a SHA-256 digest of a JWT's, which is several
// hundred characters long.
func accessKey(signature string) string {
	if len(signature) <= 64 {
		return signature
	}
	return digest(signature)
}

// CreateOpenIDConnectSession adds the OIDC request to the pending code's
// record.
func (s *fositeStorage) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	if pc := pendingFrom(ctx); pc != nil && pc.code != nil && pc.signature == s.p.codeSignature(ctx, code) {
		pc.oidc = r
		return nil
	}
	return s.create(ctx, store.KindOIDC, oidcKey(code), r, fosite.AuthorizeCode)
}

// GetOpenIDConnectSession returns the code's record when it holds an OIDC
// request, or for a code stored before bundling its OIDC record.
func (s *fositeStorage) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, meta, err := s.getMeta(ctx, store.KindAuthorizeCode, s.p.codeSignature(ctx, code), r.GetSession())
	if err == nil && meta.Bundle {
		if !meta.OIDC {
			return nil, openid.ErrNoSessionFound
		}
		return req, nil
	}
	if err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return nil, err
	}
	req, _, err = s.get(ctx, store.KindOIDC, oidcKey(code), r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	} else if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession deletes the OIDC record of a code stored
// before bundling; a bundled one goes with its code (consumed, and kept
// until it expires to detect replays). Inside a batch even the old record
// is left to expire: deleting it outside the batch would lose it if the
// batch failed, and without its code it opens nothing.
func (s *fositeStorage) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if memoFrom(ctx).bundled(s.p.codeSignature(ctx, code)) || batchFrom(ctx) != nil {
		return nil
	}
	return s.remove(ctx, store.KindOIDC, oidcKey(code))
}

func (s *fositeStorage) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, store.KindAccessToken, accessKey(signature), r, fosite.AccessToken)
}

// GetAccessTokenSession treats a revoked access token as unknown.
func (s *fositeStorage) GetAccessTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	r, g, err := s.get(ctx, store.KindAccessToken, accessKey(signature), sess)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

func (s *fositeStorage) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.remove(ctx, store.KindAccessToken, accessKey(signature))
}

func (s *fositeStorage) CreateRefreshTokenSession(ctx context.Context, signature, _ string, r fosite.Requester) error {
	return s.create(ctx, store.KindRefreshToken, signature, r, fosite.RefreshToken)
}

// GetRefreshTokenSession returns a rotated or revoked refresh token together
// with fosite.ErrInactiveToken, which makes fosite revoke the whole family.
func (s *fositeStorage) GetRefreshTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	r, g, err := s.get(ctx, store.KindRefreshToken, signature, sess)
	if err != nil {
		return nil, err
	}
	if !g.Active {
		if s.inGrace(ctx, signature) {
			s.p.log().InfoContext(ctx, "rotated refresh token used again within the grace period",
				"client_id", g.ClientID, "request_id", g.RequestID)
			s.p.replayed(ctx, g, grantRefreshToken, reuseGrace)
			return r, nil
		}
		s.p.log().WarnContext(ctx, "inactive refresh token used; revoking its family",
			"client_id", g.ClientID, "request_id", g.RequestID)
		s.p.replayed(ctx, g, grantRefreshToken, reuseReplay)
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// inGrace reports whether the rotated refresh token may still be redeemed
// again: it was rotated less than Config.RefreshTokenGracePeriod ago, no
// token issued after it has been used since, the family was not revoked,
// and a reuse is left (Config.RefreshTokenGraceReuses).
func (s *fositeStorage) inGrace(ctx context.Context, signature string) bool {
	if s.p.cfg.RefreshTokenGracePeriod <= 0 {
		return false
	}
	for i := range s.p.cfg.RefreshTokenGraceReuses {
		g, err := s.p.grants.Grant(ctx, store.KindRefreshGrace, graceKey(signature, i))
		if err == nil && g.Active && s.p.now().Before(g.ExpiresAt) {
			return true
		}
	}
	return false
}

// graceKey is the storage key of the i-th reuse a rotated refresh token has
// left: one record per reuse, each consumed (compare-and-set) by the reuse
// it allows.
func graceKey(signature string, i int) string {
	if i == 0 {
		return signature
	}
	return signature + "." + strconv.Itoa(i)
}

// useGrace consumes one of the rotated refresh token's reuses, and reports
// whether there was one left.
func (s *fositeStorage) useGrace(ctx context.Context, signature string) (bool, error) {
	for i := range s.p.cfg.RefreshTokenGraceReuses {
		g, err := s.p.grants.Grant(ctx, store.KindRefreshGrace, graceKey(signature, i))
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if !g.Active || !s.p.now().Before(g.ExpiresAt) {
			continue
		}
		switch err := s.p.grants.Consume(ctx, store.KindRefreshGrace, g.Signature); {
		case err == nil:
			return true, nil
		case errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrNotFound):
			// A concurrent reuse took this one; try the next.
		default:
			return false, err
		}
	}
	return false, nil
}

// DeleteRefreshTokenSession is called only when fosite detects the reuse of
// a rotated refresh token. Concurrent replays race to delete the record; for
// the losers it being gone already is the outcome they want, not an error
// (fosite would answer it with invalid_request, "Please retry").
func (s *fositeStorage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	if err := s.remove(ctx, store.KindRefreshToken, signature); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return err
	}
	return nil
}

// RotateRefreshToken consumes the presented refresh token (compare-and-set:
// of concurrent refreshes exactly one proceeds) and revokes the access tokens
// issued before it.
//
// With a grace period, a rotation also ends the grace of every older token
// of the family (a token issued after them has now been used, so no
// response was lost) and gives the presented token its reuses
// (KindRefreshGrace records, one per reuse, expiring when the period ends).
// Redeeming a rotated token again within the period consumes one reuse and
// revokes the refresh tokens issued before, those of the response that got
// lost: the family stays one chain.
func (s *fositeStorage) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if b := batchFrom(ctx); b != nil {
		// Only without a grace period (see Provider.newAccessResponse).
		b.Consume = append(b.Consume, store.GrantKey{Kind: store.KindRefreshToken, Signature: signature})
		b.Revoke = append(b.Revoke, store.GrantFamily{Kind: store.KindAccessToken, RequestID: requestID})
		return nil
	}
	err := s.p.grants.Consume(ctx, store.KindRefreshToken, signature)
	switch {
	case errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrNotFound):
		ok, err := s.useGrace(ctx, signature)
		if err != nil {
			return err
		}
		if !ok {
			return errRecordConsumed
		}
		if err := s.p.grants.Revoke(ctx, store.KindRefreshToken, requestID); err != nil {
			return err
		}
	case err != nil:
		return err
	case s.p.cfg.RefreshTokenGracePeriod > 0:
		if err := s.p.grants.Revoke(ctx, store.KindRefreshGrace, requestID); err != nil {
			return err
		}
		for i := range s.p.cfg.RefreshTokenGraceReuses {
			err := s.p.grants.CreateGrant(ctx, &store.Grant{
				Kind:      store.KindRefreshGrace,
				Signature: graceKey(signature, i),
				RequestID: requestID,
				ExpiresAt: s.p.now().Add(s.p.cfg.RefreshTokenGracePeriod).UTC(),
				Active:    true,
				Data:      []byte{},
			})
			if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
		}
	}
	return s.revokeAccessTokens(ctx, requestID)
}

// RevokeRefreshToken revokes every refresh token of the grant, and ends any
// grace period of its rotated ones.
func (s *fositeStorage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if err := s.p.grants.Revoke(ctx, store.KindRefreshToken, requestID); err != nil {
		return err
	}
	return s.p.grants.Revoke(ctx, store.KindRefreshGrace, requestID)
}

func (s *fositeStorage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revokeAccessTokens(ctx, requestID)
}

// revokeAccessTokens revokes the grant's access tokens, and drops them from
// the userinfo cache once the store has.
func (s *fositeStorage) revokeAccessTokens(ctx context.Context, requestID string) error {
	err := s.p.grants.Revoke(ctx, store.KindAccessToken, requestID)
	s.p.userInfo.forget(requestID)
	return err
}

// BeginTX starts a transaction when the grant store is a store.Transactor,
// so that fosite's write phase (consume the code, store the tokens) is all
// or nothing. Without one it is a no-op, and so it is (with Commit and
// Rollback) inside the transaction the token endpoint (Provider.token)
// begins around every handler (see newAccessResponse).
func (s *fositeStorage) BeginTX(ctx context.Context) (context.Context, error) {
	if inOuterTx(ctx) {
		return ctx, nil
	}
	if tx, ok := s.p.grants.(store.Transactor); ok {
		return tx.BeginTx(ctx)
	}
	return ctx, nil
}

// Commit commits the transaction BeginTX started.
func (s *fositeStorage) Commit(ctx context.Context) error {
	if inOuterTx(ctx) {
		return nil
	}
	if tx, ok := s.p.grants.(store.Transactor); ok {
		return tx.Commit(ctx)
	}
	return nil
}

// Rollback abandons the transaction BeginTX started.
func (s *fositeStorage) Rollback(ctx context.Context) error {
	if inOuterTx(ctx) {
		return nil
	}
	if tx, ok := s.p.grants.(store.Transactor); ok {
		return tx.Rollback(ctx)
	}
	return nil
}

// pushedKey is the storage key of a pushed request: a digest of its
// request_uri, which is a bearer credential until it is used.
func pushedKey(requestURI string) string { return digest(requestURI) }

// CreatePARSession stores a pushed request: every parameter but the
// client's credentials, so that the authorization endpoint sees exactly
// what a direct request would have carried, and the time it was pushed (to
// the second, as auth_time), which prompt=login and max_age are measured
// from.
func (s *fositeStorage) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		if !slices.Contains(pushedSecretParams, k) {
			form[k] = slices.Clone(v)
		}
	}
	now := s.p.now()
	sr := storedRequest{
		ID:          r.GetID(),
		RequestedAt: now.UTC().Truncate(time.Second),
		Form:        form,
	}
	data, err := sr.appendJSON([]byte(dataVersion))
	if err != nil {
		return fmt.Errorf("provider: encode pushed request: %w", err)
	}
	data = append(data, '\n')
	return s.p.grants.CreateGrant(ctx, &store.Grant{
		Kind:      store.KindPushedRequest,
		Signature: pushedKey(requestURI),
		RequestID: r.GetID(),
		ClientID:  r.GetClient().GetID(),
		ExpiresAt: now.Add(s.p.cfg.PushedRequestLifespan).UTC(),
		Active:    true,
		Data:      data,
	})
}

// GetPARSession returns the pushed request, with its parameters in its
// form, or fosite.ErrNotFound when it is unknown, used or expired.
func (s *fositeStorage) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	r, g, _, err := s.getMeta(ctx, store.KindPushedRequest, pushedKey(requestURI), skipSession{})
	if err != nil {
		return nil, err
	}
	if !g.Active || !s.p.now().Before(g.ExpiresAt) {
		return nil, fosite.ErrNotFound
	}
	ar := fosite.NewAuthorizeRequest()
	ar.Request = *r
	return ar, nil
}

// DeletePARSession consumes the pushed request: of concurrent calls
// exactly one succeeds, the others get fosite.ErrNotFound.
func (s *fositeStorage) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.remove(ctx, store.KindPushedRequest, pushedKey(requestURI))
}

// pendingCode is the authorization code being issued, held back by
// CreateAuthorizeCodeSession until fosite's authorize handlers are done and
// then written by flush as one record with its PKCE and OIDC requests: one
// write per authorization, atomic without a transaction.
type pendingCode struct {
	signature        string
	code, pkce, oidc fosite.Requester
}

type pendingKey struct{}

func withPendingCode(ctx context.Context) (context.Context, *pendingCode) {
	pc := &pendingCode{}
	return context.WithValue(ctx, pendingKey{}, pc), pc
}

func pendingFrom(ctx context.Context) *pendingCode {
	pc, _ := ctx.Value(pendingKey{}).(*pendingCode)
	return pc
}

// flush writes the pending code's record, if fosite issued one.
func (s *fositeStorage) flush(ctx context.Context, pc *pendingCode) error {
	if pc.code == nil {
		return nil
	}
	var extra []fosite.Requester
	for _, r := range []fosite.Requester{pc.pkce, pc.oidc} {
		if r != nil {
			extra = append(extra, r)
		}
	}
	g, err := s.newGrant(store.KindAuthorizeCode, pc.signature, pc.code, fosite.AuthorizeCode, nil, true, pc.oidc != nil, extra...)
	if err != nil {
		return err
	}
	return s.p.grants.CreateGrant(ctx, g)
}

type batchKey struct{}

// withBatch returns ctx carrying a batch: inside it, the token exchange's
// writes (consuming the code or refresh token, revoking the old access
// tokens, storing the new tokens) are collected, and applied at once by
// store.Batcher when fosite's handlers have succeeded.
func withBatch(ctx context.Context) (context.Context, *store.GrantBatch) {
	bs := &batchState{b: &store.GrantBatch{}}
	return context.WithValue(ctx, batchKey{}, bs), bs.b
}

// batchState is the batch a context carries, with what its records share.
type batchState struct {
	b        *store.GrantBatch
	sessions sessionCache
}

func batchStateFrom(ctx context.Context) *batchState {
	bs, _ := ctx.Value(batchKey{}).(*batchState)
	return bs
}

func batchFrom(ctx context.Context) *store.GrantBatch {
	if bs := batchStateFrom(ctx); bs != nil {
		return bs.b
	}
	return nil
}

// sessionCache lets the access and refresh token records of one exchange
// share one encoding of their session: fosite stores the two in
// consecutive calls with the same session and nothing run between them
// (flow_authorize_code_token.go and flow_refresh.go, fosite v0.49), so the
// second call reuses what the first encoded, once; any later record is
// encoded afresh.
type sessionCache struct {
	last fosite.Session
	json []byte
}

// appendTo appends sess encoded to b. When the call just before encoded
// the same session, it appends that encoding instead (and forgets it). A
// nil cache always encodes.
func (c *sessionCache) appendTo(b []byte, sess fosite.Session) ([]byte, error) {
	if c == nil {
		return appendSession(b, sess)
	}
	if c.last == sess && c.json != nil {
		b = append(b, c.json...)
		c.last, c.json = nil, nil
		return b, nil
	}
	start := len(b)
	b, err := appendSession(b, sess)
	if err != nil {
		return nil, err
	}
	c.last, c.json = sess, b[start:len(b):len(b)]
	return b, nil
}
