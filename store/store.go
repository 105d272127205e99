package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors of the storage contracts. Backends return them (possibly
// wrapped with %w) and callers test them with [errors.Is]. Any other error is
// an operational failure (database down, timeout) and pixie answers it with
// server_error, never with invalid_grant or invalid_client.
var (
	// ErrNotFound: no record with that key exists.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: a record with that key already exists.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConsumed: the grant was already consumed (a code redeemed, a refresh
	// token rotated) or revoked; the caller lost the race or replayed it.
	ErrConsumed = errors.New("store: already consumed")
	// ErrInvalidCredentials: the username is unknown or the password is wrong.
	// [Users.Authenticate] must not tell the two apart.
	ErrInvalidCredentials = errors.New("store: invalid credentials")
)

// Clients looks up registered OAuth clients.
type Clients interface {
	// Client returns the client with the given id, or an error wrapping
	// [ErrNotFound]. The returned value is a fresh copy the caller may modify.
	Client(ctx context.Context, id string) (*Client, error)
}

// Users authenticates people and returns their profile. It is the interface a
// team implements over its own user database.
type Users interface {
	// Authenticate checks a username and password and returns the user's
	// stable subject identifier. An unknown user and a wrong password both
	// return an error wrapping [ErrInvalidCredentials], and should take the
	// same time, so that the result does not reveal which usernames exist.
	Authenticate(ctx context.Context, username, password string) (subject string, err error)
	// User returns the profile of the user with the given subject, or an
	// error wrapping [ErrNotFound]. The returned value is a fresh copy.
	User(ctx context.Context, subject string) (*User, error)
}

// Grants persists the records of an authorization grant: authorization codes
// and their PKCE and OpenID Connect companions, access tokens and refresh
// tokens. Records are keyed by (Kind, Signature): the signature is a digest of
// the token, never the token itself.
//
// Implementations must be safe for concurrent use, and [Grants.Consume] and
// [Grants.Delete] must be atomic (compare-and-set): of N concurrent calls on one
// active record, exactly one succeeds. This is what makes authorization codes
// single-use and refresh-token rotation safe under concurrency.
type Grants interface {
	// CreateGrant stores a new record, active whatever g.Active says. A
	// record with the same Kind and Signature already present yields an error
	// wrapping [ErrAlreadyExists]. The store keeps its own copy of g.
	CreateGrant(ctx context.Context, g *Grant) error
	// Grant returns the record of that kind and signature, whether active or
	// not (the caller needs consumed records to detect replays), or an error
	// wrapping [ErrNotFound]. Expired records may be returned: the caller
	// checks ExpiresAt. The result is a fresh copy the caller may modify.
	Grant(ctx context.Context, kind Kind, signature string) (*Grant, error)
	// Consume atomically marks an active record inactive. It returns nil to
	// exactly one caller; an already inactive record yields [ErrConsumed] and
	// a missing one [ErrNotFound].
	Consume(ctx context.Context, kind Kind, signature string) error
	// Delete removes a record. It returns nil to exactly one of concurrent
	// callers; a missing record yields [ErrNotFound].
	Delete(ctx context.Context, kind Kind, signature string) error
	// Revoke marks every record of that kind belonging to the request inactive
	// (records are kept, so that a later replay is recognized as one). It is
	// not an error if there is none.
	Revoke(ctx context.Context, kind Kind, requestID string) error
}

// Keys persists the provider's signing keys, so that every replica signs with
// and publishes the same key set.
type Keys interface {
	// Keys returns every stored key, in any order, as fresh copies.
	Keys(ctx context.Context) ([]Key, error)
	// AddKey stores a new key; the store keeps its own copy. A key with the
	// same ID yields an error wrapping [ErrAlreadyExists].
	AddKey(ctx context.Context, k Key) error
}

// Kind says what a [Grant] record is.
type Kind string

// The kinds of grant records.
const (
	KindAuthorizeCode Kind = "authorize_code" // an authorization code
	KindPKCE          Kind = "pkce"           // the PKCE challenge bound to a code
	KindOIDC          Kind = "oidc"           // the OpenID Connect request bound to a code
	KindAccessToken   Kind = "access_token"   // an access token
	KindRefreshToken  Kind = "refresh_token"  // a refresh token
	// KindRefreshGrace marks a refresh token rotated within the grace
	// period (provider.Config.RefreshTokenGracePeriod), under the rotated
	// token's signature; it expires when the period ends.
	KindRefreshGrace Kind = "refresh_grace"
	// KindDPoPProof records a DPoP proof (RFC 9449 §11.1) that was used,
	// under a digest of its key and jti, until its iat window closes: a
	// second proof with the same key is refused as a replay on every
	// replica. Its CreateGrant failing with [ErrAlreadyExists] is the
	// replay check.
	KindDPoPProof Kind = "dpop_proof"
	// KindPushedRequest is a pushed authorization request (RFC 9126),
	// under a digest of its request_uri: the request's parameters, kept
	// until it is used once at the authorization endpoint or expires.
	KindPushedRequest Kind = "pushed_request"
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindAuthorizeCode, KindPKCE, KindOIDC, KindAccessToken, KindRefreshToken, KindRefreshGrace, KindDPoPProof, KindPushedRequest:
		return true
	}
	return false
}

// Grant is one stored record of an authorization grant.
type Grant struct {
	Kind      Kind   // what the record is
	Signature string // the key: a digest of the token or code, never the token
	// RequestID identifies the grant: a code and every token issued from it,
	// including rotated refresh tokens, share it. Revocation works by it.
	RequestID string
	ClientID  string    // the client the grant was issued to
	Subject   string    // the user; empty for records that have none
	ExpiresAt time.Time // after this the record is useless and may be deleted
	Active    bool      // false once consumed or revoked
	// Data is the serialized request and session, opaque to the store. It
	// holds no raw token, code, verifier or secret.
	Data []byte
}

// Clone returns a deep copy of g.
func (g *Grant) Clone() *Grant {
	c := *g
	c.Data = append([]byte(nil), g.Data...)
	return &c
}

// Client is a registered OAuth 2.0 client.
type Client struct {
	ID   string // client_id
	Name string // shown to people on the login and consent pages
	// SecretHash is the hash of the client secret, made with [HashSecret].
	// Empty for public clients (native and browser apps), which authenticate
	// with PKCE alone.
	SecretHash string
	// RedirectURIs are the registered redirection URIs, matched exactly,
	// except that for a loopback URI (http://127.0.0.1/… or http://[::1]/…)
	// any port is accepted (RFC 8252 §7.3).
	RedirectURIs []string
	// Scopes the client may ask for.
	Scopes []string
	// GrantTypes the client may use. Empty means authorization_code and
	// refresh_token.
	GrantTypes []string
	// Native marks an app installed on a device (RFC 8252): only native
	// clients may register custom-scheme redirect URIs such as
	// com.example.app:/oauth2redirect and loopback http redirects.
	Native bool
	// FirstParty clients belong to the same organisation as the server and
	// are not shown a consent screen.
	FirstParty bool
	// Introspect allows this confidential client to call the introspection
	// endpoint (RFC 7662), as a resource server does.
	Introspect bool
	// IDTokenAlg is the JWS algorithm of this client's ID tokens: "RS256" or
	// "ES256". Empty means the provider's default.
	IDTokenAlg string
	// APIs are the identifiers of the APIs (provider.Config.APIs) this client
	// may ask access tokens for, with the audience or resource parameter.
	APIs []string
	// PostLogoutRedirectURIs are where the client may send the browser back
	// after logging the user out (OpenID Connect RP-Initiated Logout 1.0),
	// matched exactly.
	PostLogoutRedirectURIs []string
	// RequireDPoP makes the client prove possession of a key (DPoP, RFC
	// 9449) at every token request: one without a DPoP proof is refused,
	// so all its access tokens (and a public client's refresh tokens) are
	// bound to the key. provider.Config.RequireDPoP sets it for every
	// public client.
	RequireDPoP bool
	// RequirePAR makes this client push every authorization request first
	// (RFC 9126): the authorization endpoint refuses its requests that
	// come without a request_uri. provider.Config.RequirePAR requires it
	// of every client.
	RequirePAR bool
}

// Public reports whether the client has no secret.
func (c *Client) Public() bool { return c.SecretHash == "" }

// Clone returns a deep copy of c.
func (c *Client) Clone() *Client {
	d := *c
	d.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	d.Scopes = append([]string(nil), c.Scopes...)
	d.GrantTypes = append([]string(nil), c.GrantTypes...)
	d.APIs = append([]string(nil), c.APIs...)
	d.PostLogoutRedirectURIs = append([]string(nil), c.PostLogoutRedirectURIs...)
	return &d
}

// User is a person's profile: the standard claims of OpenID Connect Core §5.1
// that pixie releases in ID tokens and at the userinfo endpoint.
type User struct {
	Subject           string // sub: stable, never reassigned
	PreferredUsername string // preferred_username
	Name              string // name
	GivenName         string // given_name
	FamilyName        string // family_name
	Email             string // email
	EmailVerified     bool   // email_verified
	Picture           string // picture: a URL
	Locale            string // locale, e.g. en-GB
	// Address is the postal address (address, §5.1.1), released with the
	// address scope; its zero value means none.
	Address Address
	// PhoneNumber is phone_number, preferably E.164 (e.g. +1 555 555 0100
	// written +15555550100), released with the phone scope with
	// PhoneNumberVerified (phone_number_verified); "" means none.
	PhoneNumber         string
	PhoneNumberVerified bool
}

// Address is a postal address, the address claim of OpenID Connect Core
// §5.1.1. Every field is optional; empty ones are left out of the claim.
type Address struct {
	Formatted     string // formatted: the full address, lines separated by "\n"
	StreetAddress string // street_address: house number, street, and more lines separated by "\n"
	Locality      string // locality: city or locality
	Region        string // region: state, province, prefecture or region
	PostalCode    string // postal_code: zip or postal code
	Country       string // country: country name
}

// IsZero reports whether a holds no field.
func (a Address) IsZero() bool { return a == Address{} }

// Clone returns a copy of u.
func (u *User) Clone() *User {
	c := *u
	return &c
}

// Key is one of the provider's keys: a signing key, or the token secret.
//
// A signing key has Algorithm "RS256" or "ES256", Private holds the private
// key as PKCS #8 DER, and ID is the RFC 7638 thumbprint of the public key
// (its kid). The token secret, which keys the HMAC of codes and opaque
// tokens and from which the login-cookie keys are derived, has Algorithm
// "HS256", Private holds 32 random bytes, and ID is "secret-first" for the
// secret stored on the first start of an empty store (replicas starting
// together race to store it; the store's unique IDs make one win). A store keeps
// both alike and must not check more than that IDs are unique.
type Key struct {
	ID        string    // kid (signing keys) or the token secret's ID
	Algorithm string    // "RS256", "ES256" or "HS256"
	Private   []byte    // the private key, PKCS #8 DER; or the secret's bytes
	CreatedAt time.Time // the newest key of an algorithm is the one in use
}

// Clone returns a deep copy of k.
func (k Key) Clone() Key {
	k.Private = append([]byte(nil), k.Private...)
	return k
}

// ExpiredDeleter is an optional capability of a [Grants] store, found by type
// assertion: it removes the records that expired before a time, so that
// tables do not grow without bound. The provider calls it periodically.
type ExpiredDeleter interface {
	// DeleteExpired removes every grant record whose ExpiresAt is before
	// before, and returns how many it removed.
	DeleteExpired(ctx context.Context, before time.Time) (int, error)
}

// Transactor is an optional capability of a [Grants] store, found by type
// assertion: it makes the writes of one token exchange (consuming the code,
// storing the access and refresh tokens) all happen or none. Without it, a
// store that fails after the code or refresh token was consumed (and before
// the response) burns it: the client must start over. The transaction
// travels in the context BeginTx returns; every Grants method called with
// that context runs inside it. Consume and Delete keep their compare-and-set
// guarantee inside a transaction.
type Transactor interface {
	// BeginTx starts a transaction and returns a context carrying it.
	BeginTx(ctx context.Context) (context.Context, error)
	// Commit commits the transaction carried by ctx.
	Commit(ctx context.Context) error
	// Rollback abandons the transaction carried by ctx.
	Rollback(ctx context.Context) error
}

// Batcher is an optional capability of a [Grants] store, found by type
// assertion: it applies the writes of one token exchange in a single call,
// all or none, which for a networked database is one round trip instead of
// a transaction's several. When the grant store has it, the provider uses it
// for every token exchange instead of [Transactor].
type Batcher interface {
	// ApplyGrants applies b atomically: either every write of b happens or
	// none does. Every record b.Consume names must be active: it is marked
	// inactive, with the compare-and-set guarantee of [Grants.Consume] (of
	// concurrent batches consuming one record, exactly one succeeds). If one
	// is already inactive, ApplyGrants writes nothing and returns an error
	// wrapping [ErrConsumed]; if one is missing, [ErrNotFound]. A record of
	// b.Create whose Kind and Signature exist already makes it write nothing
	// and return an error wrapping [ErrAlreadyExists].
	ApplyGrants(ctx context.Context, b *GrantBatch) error
}

// GrantBatch is the writes [Batcher.ApplyGrants] applies at once. No two
// entries of a batch may name the same record, and b.Revoke affects only
// records stored before the call: the records of b.Create are stored
// active.
type GrantBatch struct {
	Consume []GrantKey    // records to consume; each must be active
	Revoke  []GrantFamily // records to mark inactive, by request
	Create  []*Grant      // new records, stored active
}

// GrantKey names one grant record.
type GrantKey struct {
	Kind      Kind
	Signature string
}

// GrantFamily names the records of one kind belonging to one request, as
// [Grants.Revoke] takes them.
type GrantFamily struct {
	Kind      Kind
	RequestID string
}

// Pinger is an optional capability of any store, found by type assertion:
// it reports whether the backing database answers, for readiness checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Consents remembers what a user allowed a client that is not first party
// (OpenID Connect Core §3.1.2.4), so that the consent page is shown again
// only when the client asks for more, or when the consent has expired.
//
// A consent is keyed by (Subject, ClientID, Audience): the audience is the
// API the access token is for (provider.API.Identifier), or "" for none
// (the token is for the issuer's own endpoints only, such as userinfo). A
// consent to one audience says nothing about another, even for scopes of
// the same name. A consent with no scopes is a record like any other,
// distinct from no consent: the user allowed the client the audience
// itself.
//
// Implementations must be safe for concurrent use.
type Consents interface {
	// Consent returns the consent of subject to clientID for audience, or
	// an error wrapping [ErrNotFound] if there is none. It may return a
	// consent that has expired (the caller compares ExpiresAt with its
	// clock), and it may have deleted one (a store may delete expired
	// consents at any time, by the wall clock). The result is a fresh copy
	// the caller may modify.
	Consent(ctx context.Context, subject, clientID, audience string) (*Consent, error)
	// SaveConsent stores c, replacing the whole consent with the same
	// subject, client and audience, if any: scopes and expiry alike. The
	// store keeps its own copy of c. A store with a bound on the number of
	// consents it holds may evict others, expired ones first.
	SaveConsent(ctx context.Context, c *Consent) error
}

// Consent is what a user allowed a client for one audience.
type Consent struct {
	Subject  string // the user
	ClientID string // the client
	// Audience is the API the access tokens are for, or "" for none.
	Audience  string
	Scopes    []string  // the scopes allowed, in any order; may be empty
	ExpiresAt time.Time // after this the consent no longer counts
}

// Clone returns a deep copy of c.
func (c *Consent) Clone() *Consent {
	d := *c
	d.Scopes = append([]string(nil), c.Scopes...)
	return &d
}

// Throttle counts events, such as failed logins, per key in fixed windows,
// so that replicas sharing it throttle together. Keys are opaque strings
// chosen by the caller (pixie passes digests, never a username, a client ID
// or an address in clear).
//
// A key's window opens with its first event and lasts the window given to
// that [Throttle.AddHit]: it is open at a time t when t is before
// [Hits].Expires. Once it has ended the key is as if it had never been
// counted, and the store may delete it at any time (the memory store does so
// on its own; the SQL store in DeleteExpired). Times are kept at least to the
// microsecond. Implementations are safe for concurrent use.
type Throttle interface {
	// AddHit counts one event for key at time now and returns the key's
	// Hits after it. If the key has no window open at now, a new one opens:
	// Hits{Count: 1, Last: now, Expires: now + window}. Otherwise Count
	// grows by one, Last becomes now if now is later, and Expires stays: the
	// window is not extended. It is atomic: of N concurrent calls on one key,
	// on any number of replicas, each returns a different Count and the key
	// ends with N more. A window shorter than a microsecond is an error.
	AddHit(ctx context.Context, key string, now time.Time, window time.Duration) (Hits, error)
	// Hits returns the key's Hits if its window is open at now, and the zero
	// Hits (not an error) if it is not or the key was never counted.
	Hits(ctx context.Context, key string, now time.Time) (Hits, error)
	// ResetHits forgets the key: its next event opens a new window. It is
	// not an error if the key has no window.
	ResetHits(ctx context.Context, key string) error
}

// Hits is the count of one [Throttle] key in its open window.
type Hits struct {
	Count   int       // events in the window, at least 1 (0: no window is open)
	Last    time.Time // the latest event
	Expires time.Time // when the window ends; it opened with the first event
}

// Sessions keeps the server-side records of login sessions, so that a
// session can be ended on every replica sharing the store (at logout, or
// when the app ends all of a user's sessions) and cannot outlive its
// absolute lifetime. Records are keyed by [Session.ID], a digest of the
// random session ID the browser's cookie carries: the store never sees the
// ID itself.
//
// Implementations must be safe for concurrent use. A store may remove a
// record once its ExpiresAt has passed, and one that holds records in
// memory may remove the oldest to stay within a bound (which ends that
// session early, never late).
type Sessions interface {
	// CreateSession stores a new record; the store keeps its own copy. A
	// record with the same ID already present yields an error wrapping
	// [ErrAlreadyExists].
	CreateSession(ctx context.Context, s *Session) error
	// Session returns the record with that ID, whether revoked or expired
	// or not (the caller checks), or an error wrapping [ErrNotFound]. The
	// result is a fresh copy the caller may modify.
	Session(ctx context.Context, id string) (*Session, error)
	// TouchSession records that the session was used at time at: its
	// LastUsed becomes at if that is later, and never moves back, whatever
	// the order of concurrent calls. A missing record yields an error
	// wrapping [ErrNotFound].
	TouchSession(ctx context.Context, id string, at time.Time) error
	// RevokeSession marks the record revoked. It is not an error if there
	// is none, or if it is already revoked.
	RevokeSession(ctx context.Context, id string) error
	// RevokeSessions marks every record of the subject revoked. It is not
	// an error if there is none.
	RevokeSessions(ctx context.Context, subject string) error
}

// Session is the server-side record of one login session.
type Session struct {
	// ID is the key: a digest of the session ID the cookie carries, never
	// the ID itself.
	ID       string
	Subject  string    // the logged-in user
	AuthTime time.Time // when the user authenticated (auth_time)
	AMR      []string  // how (RFC 8176), e.g. ["pwd"]
	// ACR is the authentication context class a host app's login reported
	// (provider.Login.ACR); empty for pixie's own login.
	ACR       string
	CreatedAt time.Time // when the session started
	// ExpiresAt ends the session whatever its use: the absolute lifetime.
	ExpiresAt time.Time
	LastUsed  time.Time // when the session last served a request (idle timeout)
	Revoked   bool      // ended by logout or by ending all the user's sessions
}

// Clone returns a deep copy of s.
func (s *Session) Clone() *Session {
	c := *s
	c.AMR = append([]string(nil), s.AMR...)
	return &c
}
