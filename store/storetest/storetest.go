package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Stores is the backend under test. Any field may be nil: the subtests that
// need it are then skipped, so a backend that implements only [store.Users]
// sets Users and AddUser and nothing else.
type Stores struct {
	Clients  store.Clients
	Users    store.Users
	Grants   store.Grants
	Keys     store.Keys
	Consents store.Consents
	Throttle store.Throttle
	Sessions store.Sessions

	// AddClient registers a client, so that Clients can find it. The
	// interfaces have no such method: seeding is the backend's business.
	// Both of pixie's backends have it (memory.Store.AddClient,
	// sqlstore.Store.AddClient). Required.
	AddClient func(ctx context.Context, c *store.Client) error
	// AddUser registers a user who logs in with username and password, so
	// that Users can authenticate and find them (memory.Store.AddUser,
	// sqlstore.Store.AddUser). Required.
	AddUser func(ctx context.Context, u *store.User, username, password string) error
}

// racers is the number of goroutines that race to consume or delete one
// record, or to count an event of one throttle key.
const racers = 50

// Run runs the conformance suite: one subtest per behaviour, grouped by
// interface, each on a fresh Stores returned by newStores. newStores receives
// the subtest's t, so it may call t.Cleanup, t.TempDir or t.Fatal.
//
// Run it from a test of the backend's package:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Stores {
//			s := mystore.New(openTestDB(t)) // empty for every subtest
//			return storetest.Stores{
//				Clients: s, Users: s, Grants: s, Keys: s,
//				Consents: s, Throttle: s, Sessions: s,
//				AddClient: s.AddClient,
//				AddUser:   s.AddUser,
//			}
//		})
//	}
//
// and run it with go test -race. A backend that implements only [store.Users]
// over an existing user table sets Users and AddUser; the rest is skipped.
//
// Times are compared with [time.Time.Equal] on UTC times truncated to the
// second, so a backend must keep at least second precision and may return
// another location. The throttle tests pass whole-second times and windows. Grant data is compared byte for byte and includes bytes
// that are not valid UTF-8: store it as a blob, not as text.
func Run(t *testing.T, newStores func(t *testing.T) Stores) {
	t.Helper()
	for _, g := range suite() {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, newStores)
				})
			}
		})
	}
}

// group is the behaviours of one interface.
type group struct {
	name  string
	tests []test
}

// test is one behaviour. run calls newStores for each store it needs, usually
// once; table tests call it once per case.
type test struct {
	name string
	run  func(t *testing.T, newStores func(*testing.T) Stores)
}

// fresh adapts a test that needs a single Stores.
func fresh(f func(t *testing.T, s Stores)) func(*testing.T, func(*testing.T) Stores) {
	return func(t *testing.T, newStores func(*testing.T) Stores) { f(t, newStores(t)) }
}

func suite() []group {
	return []group{
		{"Clients", []test{
			{"NotFound", fresh(testClientNotFound)},
			{"RoundTrip", fresh(testClientRoundTrip)},
			{"ReturnsCopy", fresh(testClientReturnsCopy)},
		}},
		{"Users", []test{
			{"Authenticate", testAuthenticate},
			{"NotFound", fresh(testUserNotFound)},
			{"RoundTripAndCopy", fresh(testUserRoundTripAndCopy)},
		}},
		{"Grants", grantTests()},
		{"Batcher", batchTests()},
		{"Keys", []test{
			{"Empty", fresh(testKeysEmpty)},
			{"RoundTrip", fresh(testKeysRoundTrip)},
			{"Duplicate", fresh(testKeysDuplicate)},
			{"ReturnsCopy", fresh(testKeysReturnsCopy)},
		}},
		{"Consents", []test{
			{"NotFound", fresh(testConsentNotFound)},
			{"RoundTrip", fresh(testConsentRoundTrip)},
			{"EmptyScopes", fresh(testConsentEmptyScopes)},
			{"PerAudience", fresh(testConsentPerAudience)},
			{"SaveReplaces", fresh(testConsentSaveReplaces)},
			{"Expired", fresh(testConsentExpired)},
			{"Isolation", fresh(testConsentIsolation)},
			{"KeepsCopy", fresh(testConsentKeepsCopy)},
			{"ReturnsCopy", fresh(testConsentReturnsCopy)},
		}},
		{"Throttle", []test{
			{"UnknownKey", fresh(testThrottleUnknownKey)},
			{"CountsWithinWindow", fresh(testThrottleCountsWithinWindow)},
			{"LastIsLatest", fresh(testThrottleLastIsLatest)},
			{"NewWindowAfterEnd", fresh(testThrottleNewWindow)},
			{"WindowNotExtended", fresh(testThrottleWindowNotExtended)},
			{"Reset", fresh(testThrottleReset)},
			{"KeysAreDistinct", fresh(testThrottleKeysAreDistinct)},
			{"BadWindow", fresh(testThrottleBadWindow)},
			{"ConcurrentAddHit", fresh(testThrottleConcurrent)},
		}},
		{"Sessions", []test{
			{"NotFound", fresh(testSessionNotFound)},
			{"RoundTrip", fresh(testSessionRoundTrip)},
			{"CreateDuplicate", fresh(testSessionCreateDuplicate)},
			{"KeepsAndReturnsCopy", fresh(testSessionCopies)},
			{"Touch", fresh(testSessionTouch)},
			{"Expiry", fresh(testSessionExpiry)},
			{"RevokeOne", fresh(testSessionRevokeOne)},
			{"RevokeSubject", fresh(testSessionRevokeSubject)},
			{"ConcurrentUse", fresh(testSessionConcurrentUse)},
			{"ConcurrentCreate", fresh(testSessionConcurrentCreate)},
		}},
	}
}

// grantTests are the conformance tests of [store.Grants].
func grantTests() []test {
	return []test{
		{"NotFound", testGrantNotFound},
		{"CreateDuplicate", fresh(testGrantCreateDuplicate)},
		{"RoundTrip", fresh(testGrantRoundTrip)},
		{"KeepsCopy", fresh(testGrantKeepsCopy)},
		{"ReturnsCopy", fresh(testGrantReturnsCopy)},
		{"KindsAreDistinct", fresh(testGrantKindsAreDistinct)},
		{"ExpiredIsReturned", fresh(testGrantExpiredIsReturned)},
		{"ConsumeOnce", fresh(testGrantConsumeOnce)},
		{"ConcurrentConsumeCode", fresh(func(t *testing.T, s Stores) {
			testConcurrentConsume(t, s, store.KindAuthorizeCode)
		})},
		{"ConcurrentConsumeRefreshToken", fresh(func(t *testing.T, s Stores) {
			testConcurrentConsume(t, s, store.KindRefreshToken)
		})},
		{"Delete", fresh(testGrantDelete)},
		{"ConcurrentDeletePKCE", fresh(testConcurrentDeletePKCE)},
		{"Revoke", fresh(testGrantRevoke)},
		{"RevokeNone", fresh(testGrantRevokeNone)},
		{"DeleteExpired", fresh(testGrantDeleteExpired)},
		{"ConcurrentDPoPProof", fresh(testConcurrentDPoPProof)},
	}
}

// ---- helpers ----

// mustOK stops the test if err is not nil.
func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
}

// mustErrIs stops the test unless err wraps target.
func mustErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one wrapping %v", err, target)
	}
}

// The required stores (provider.Config needs Clients, Users, Grants and
// Keys) and the seeding functions fail a test when they are missing: a
// suite that skipped them would pass without having checked anything. The
// optional ones (Consents, Throttle, Sessions; Batcher and ExpiredDeleter
// on Grants) skip theirs, saying so.

func needClients(t *testing.T, s Stores, seed bool) store.Clients {
	t.Helper()
	if s.Clients == nil {
		t.Fatal("Stores.Clients is nil: it is required (provider.Config.Clients)")
	}
	if seed && s.AddClient == nil {
		t.Fatal("Stores.AddClient is nil: it is required, to register the clients the tests look up")
	}
	return s.Clients
}

func needUsers(t *testing.T, s Stores, seed bool) store.Users {
	t.Helper()
	if s.Users == nil {
		t.Fatal("Stores.Users is nil: it is required (provider.Config.Users)")
	}
	if seed && s.AddUser == nil {
		t.Fatal("Stores.AddUser is nil: it is required, to register the users the tests authenticate")
	}
	return s.Users
}

func needGrants(t *testing.T, s Stores) store.Grants {
	t.Helper()
	if s.Grants == nil {
		t.Fatal("Stores.Grants is nil: it is required (provider.Config.Grants)")
	}
	return s.Grants
}

func needKeys(t *testing.T, s Stores) store.Keys {
	t.Helper()
	if s.Keys == nil {
		t.Fatal("Stores.Keys is nil: it is required (provider.Config.Keys)")
	}
	return s.Keys
}

func needConsents(t *testing.T, s Stores) store.Consents {
	t.Helper()
	if s.Consents == nil {
		t.Skip("Stores.Consents is nil: optional (handlers.Config.Consents)")
	}
	return s.Consents
}

func needThrottle(t *testing.T, s Stores) store.Throttle {
	t.Helper()
	if s.Throttle == nil {
		t.Skip("Stores.Throttle is nil: optional (handlers.Config.Throttle)")
	}
	return s.Throttle
}

func needSessions(t *testing.T, s Stores) store.Sessions {
	t.Helper()
	if s.Sessions == nil {
		t.Skip("Stores.Sessions is nil: optional (handlers.Config.Sessions)")
	}
	return s.Sessions
}

// now is the current time as the suite compares it: UTC, whole seconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// Race calls fn(i) for i in [0, n) from n goroutines released together by a
// start barrier, and returns the error of each: for a backend's own
// concurrency tests.
func Race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-start
			errs[i] = fn(i)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// ExactlyOneWins fails t unless exactly one of errs is nil and every other
// wraps loser: the compare-and-set contract of [store.Grants].
func ExactlyOneWins(t *testing.T, errs []error, loser error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, loser):
			t.Errorf("caller %d: got error %v, want nil or one wrapping %v", i, err, loser)
		}
	}
	if wins != 1 {
		t.Errorf("got %d of %d callers succeeding, want exactly 1", wins, len(errs))
	}
}

// ---- Clients ----

func sampleClient() *store.Client {
	return &store.Client{
		ID:                     "client-1",
		Name:                   "Example App",
		SecretHash:             "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		RedirectURIs:           []string{"https://app.example.com/callback", "http://127.0.0.1/callback"},
		APIs:                   []string{"https://api.example.com"},
		PostLogoutRedirectURIs: []string{"https://app.example.com/logged-out"},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Native:                 true,
		FirstParty:             true,
		Introspect:             true,
		IDTokenAlg:             "ES256",
		RequireDPoP:            true,
		RequirePAR:             true,
	}
}

func testClientNotFound(t *testing.T, s Stores) {
	clients := needClients(t, s, false)
	if s.AddClient != nil {
		mustOK(t, s.AddClient(t.Context(), sampleClient()))
	}
	c, err := clients.Client(t.Context(), "no-such-client")
	mustErrIs(t, err, store.ErrNotFound)
	if c != nil {
		t.Errorf("got client %+v, want nil", c)
	}
}

func testClientRoundTrip(t *testing.T, s Stores) {
	clients := needClients(t, s, true)
	want := sampleClient()
	mustOK(t, s.AddClient(t.Context(), sampleClient()))
	got, err := clients.Client(t.Context(), want.ID)
	mustOK(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got client %+v, want %+v", got, want)
	}
}

func testClientReturnsCopy(t *testing.T, s Stores) {
	clients := needClients(t, s, true)
	want := sampleClient()
	mustOK(t, s.AddClient(t.Context(), sampleClient()))
	got, err := clients.Client(t.Context(), want.ID)
	mustOK(t, err)
	got.Name = "Changed"
	got.RedirectURIs[0] = "https://evil.example/callback"
	got.Scopes[0] = "admin"
	got.GrantTypes[0] = "password"
	got.FirstParty = false

	again, err := clients.Client(t.Context(), want.ID)
	mustOK(t, err)
	if !reflect.DeepEqual(again, want) {
		t.Errorf("after modifying a returned client, got %+v, want %+v", again, want)
	}
}

// ---- Users ----

func sampleUser() *store.User {
	return &store.User{
		Subject:           "248289761001",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		GivenName:         "Alice",
		FamilyName:        "Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
		Picture:           "https://example.com/alice.png",
		Locale:            "en-GB",
		Address: store.Address{
			Formatted:     "1 Main Street\nApt 2\nSpringfield, IL 62701\nUSA",
			StreetAddress: "1 Main Street\nApt 2",
			Locality:      "Springfield",
			Region:        "IL",
			PostalCode:    "62701",
			Country:       "USA",
		},
		PhoneNumber:         "+15555550100",
		PhoneNumberVerified: true,
	}
}

const (
	sampleUsername = "alice"
	samplePassword = "correct horse battery staple"
)

func testAuthenticate(t *testing.T, newStores func(*testing.T) Stores) {
	// Every case registers sampleUser as sampleUsername with samplePassword,
	// then authenticates. Each costs two password hashes: keep the table short.
	tests := []struct {
		name     string
		username string
		password string
		wantErr  error // nil: success, and the subject is sampleUser's
	}{
		{"Correct", sampleUsername, samplePassword, nil},
		{"WrongPassword", sampleUsername, "incorrect horse", store.ErrInvalidCredentials},
		{"UnknownUser", "mallory", samplePassword, store.ErrInvalidCredentials},
		// A backend must look users up by username, not by subject.
		{"SubjectAsUsername", sampleUser().Subject, samplePassword, store.ErrInvalidCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStores(t)
			users := needUsers(t, s, true)
			mustOK(t, s.AddUser(t.Context(), sampleUser(), sampleUsername, samplePassword))
			sub, err := users.Authenticate(t.Context(), tc.username, tc.password)
			if tc.wantErr != nil {
				mustErrIs(t, err, tc.wantErr)
				return
			}
			mustOK(t, err)
			if want := sampleUser().Subject; sub != want {
				t.Errorf("got subject %q, want %q", sub, want)
			}
		})
	}
}

func testUserNotFound(t *testing.T, s Stores) {
	users := needUsers(t, s, false)
	u, err := users.User(t.Context(), "no-such-subject")
	mustErrIs(t, err, store.ErrNotFound)
	if u != nil {
		t.Errorf("got user %+v, want nil", u)
	}
}

func testUserRoundTripAndCopy(t *testing.T, s Stores) {
	users := needUsers(t, s, true)
	want := sampleUser()
	mustOK(t, s.AddUser(t.Context(), sampleUser(), sampleUsername, samplePassword))
	got, err := users.User(t.Context(), want.Subject)
	mustOK(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got user %+v, want %+v", got, want)
	}
	got.Name = "Mallory"
	got.Email = "mallory@example.com"
	got.EmailVerified = false
	got.Address.Locality = "Shelbyville"
	got.PhoneNumber = "+15555550199"
	again, err := users.User(t.Context(), want.Subject)
	mustOK(t, err)
	if !reflect.DeepEqual(again, want) {
		t.Errorf("after modifying a returned user, got %+v, want %+v", again, want)
	}
}

// ---- Grants ----

// allKinds returns every kind of grant record.
func allKinds() []store.Kind {
	return []store.Kind{
		store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC,
		store.KindAccessToken, store.KindRefreshToken, store.KindRefreshGrace,
		store.KindDPoPProof,
		store.KindPushedRequest,
	}
}

// newGrant returns an active record expiring in an hour.
func newGrant(kind store.Kind, signature, requestID string) *store.Grant {
	return &store.Grant{
		Kind:      kind,
		Signature: signature,
		RequestID: requestID,
		ClientID:  "client-1",
		Subject:   "248289761001",
		ExpiresAt: now().Add(time.Hour),
		Active:    true,
		Data:      []byte(`{"request_id":"` + requestID + `","sig":"` + signature + `"}`),
	}
}

// checkGrant compares every field of got with want, ExpiresAt with
// [time.Time.Equal].
func checkGrant(t *testing.T, got, want *store.Grant) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil grant, want %+v", want)
	}
	if got.Kind != want.Kind || got.Signature != want.Signature || got.RequestID != want.RequestID ||
		got.ClientID != want.ClientID || got.Subject != want.Subject || got.Active != want.Active ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("got grant %+v\nwant %+v", got, want)
	}
}

// wantActive checks the Active flag of the record of that kind and signature.
func wantActive(t *testing.T, grants store.Grants, kind store.Kind, signature string, want bool) {
	t.Helper()
	g, err := grants.Grant(t.Context(), kind, signature)
	mustOK(t, err)
	if g.Active != want {
		t.Errorf("%s %q: got Active %v, want %v", kind, signature, g.Active, want)
	}
}

func testGrantNotFound(t *testing.T, newStores func(*testing.T) Stores) {
	tests := []struct {
		name string
		op   func(g store.Grants, ctx context.Context, kind store.Kind, sig string) error
	}{
		{"Grant", func(g store.Grants, ctx context.Context, kind store.Kind, sig string) error {
			got, err := g.Grant(ctx, kind, sig)
			if err == nil && got == nil {
				return errors.New("nil grant and nil error")
			}
			return err
		}},
		{"Consume", store.Grants.Consume},
		{"Delete", store.Grants.Delete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grants := needGrants(t, newStores(t))
			// Another record exists, so the store is not simply empty.
			mustOK(t, grants.CreateGrant(t.Context(), newGrant(store.KindAccessToken, "other", "req-1")))
			for _, kind := range allKinds() {
				mustErrIs(t, tc.op(grants, t.Context(), kind, "no-such-signature"), store.ErrNotFound)
			}
		})
	}
}

func testGrantCreateDuplicate(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	want := newGrant(store.KindAuthorizeCode, "code-1", "req-1")
	mustOK(t, grants.CreateGrant(ctx, want))

	dup := newGrant(store.KindAuthorizeCode, "code-1", "req-2")
	mustErrIs(t, grants.CreateGrant(ctx, dup), store.ErrAlreadyExists)

	// A consumed record still occupies its key.
	mustOK(t, grants.Consume(ctx, store.KindAuthorizeCode, "code-1"))
	mustErrIs(t, grants.CreateGrant(ctx, dup), store.ErrAlreadyExists)

	got, err := grants.Grant(ctx, store.KindAuthorizeCode, "code-1")
	mustOK(t, err)
	want.Active = false
	checkGrant(t, got, want) // the original, not the duplicate
}

func testGrantRoundTrip(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	for _, kind := range allKinds() {
		g := newGrant(kind, "sig-"+string(kind), "req-"+string(kind))
		g.ExpiresAt = time.Date(2031, 4, 5, 6, 7, 8, 0, time.UTC)
		// Data is opaque bytes, not necessarily text.
		g.Data = append(g.Data, 0x00, 0xff, 0xfe, '\n')
		if kind == store.KindPKCE {
			g.Subject = "" // records without a user
		}
		// CreateGrant stores the record active whatever g.Active says.
		g.Active = false
		mustOK(t, grants.CreateGrant(t.Context(), g))

		got, err := grants.Grant(t.Context(), kind, g.Signature)
		mustOK(t, err)
		g.Active = true
		checkGrant(t, got, g)
	}
}

func testGrantKeepsCopy(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	g := newGrant(store.KindAccessToken, "at-1", "req-1")
	want := g.Clone()
	mustOK(t, grants.CreateGrant(t.Context(), g))
	g.Data[0] = 'X'
	g.RequestID = "req-changed"
	g.Active = false

	got, err := grants.Grant(t.Context(), store.KindAccessToken, "at-1")
	mustOK(t, err)
	checkGrant(t, got, want)
}

func testGrantReturnsCopy(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	want := newGrant(store.KindRefreshToken, "rt-1", "req-1")
	mustOK(t, grants.CreateGrant(t.Context(), want))
	got, err := grants.Grant(t.Context(), store.KindRefreshToken, "rt-1")
	mustOK(t, err)
	got.Data[0] = 'X'
	got.RequestID = "req-changed"
	got.Active = false

	again, err := grants.Grant(t.Context(), store.KindRefreshToken, "rt-1")
	mustOK(t, err)
	checkGrant(t, again, want)
}

func testGrantKindsAreDistinct(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	const sig = "same-signature"
	want := make(map[store.Kind]*store.Grant)
	for _, kind := range allKinds() {
		g := newGrant(kind, sig, "req-"+string(kind))
		want[kind] = g
		mustOK(t, grants.CreateGrant(ctx, g))
	}
	for _, kind := range allKinds() {
		got, err := grants.Grant(ctx, kind, sig)
		mustOK(t, err)
		checkGrant(t, got, want[kind])
	}

	// Consuming or deleting one kind leaves the others alone.
	mustOK(t, grants.Consume(ctx, store.KindAuthorizeCode, sig))
	mustOK(t, grants.Delete(ctx, store.KindPKCE, sig))
	want[store.KindAuthorizeCode].Active = false
	for _, kind := range allKinds() {
		got, err := grants.Grant(ctx, kind, sig)
		if kind == store.KindPKCE {
			mustErrIs(t, err, store.ErrNotFound)
			continue
		}
		mustOK(t, err)
		checkGrant(t, got, want[kind])
	}
}

func testGrantExpiredIsReturned(t *testing.T, s Stores) {
	// The store does not filter expired records: the caller checks ExpiresAt.
	grants := needGrants(t, s)
	want := newGrant(store.KindAuthorizeCode, "code-old", "req-1")
	want.ExpiresAt = now().Add(-time.Hour)
	mustOK(t, grants.CreateGrant(t.Context(), want))

	got, err := grants.Grant(t.Context(), store.KindAuthorizeCode, "code-old")
	mustOK(t, err)
	checkGrant(t, got, want)
	if !got.ExpiresAt.Before(time.Now()) {
		t.Errorf("got ExpiresAt %v, want a time in the past", got.ExpiresAt)
	}
}

func testGrantConsumeOnce(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	want := newGrant(store.KindAuthorizeCode, "code-1", "req-1")
	mustOK(t, grants.CreateGrant(ctx, want))

	mustOK(t, grants.Consume(ctx, store.KindAuthorizeCode, "code-1"))
	mustErrIs(t, grants.Consume(ctx, store.KindAuthorizeCode, "code-1"), store.ErrConsumed)

	// The consumed record is kept, so that a replay can be detected.
	got, err := grants.Grant(ctx, store.KindAuthorizeCode, "code-1")
	mustOK(t, err)
	want.Active = false
	checkGrant(t, got, want)
}

func testConcurrentConsume(t *testing.T, s Stores, kind store.Kind) {
	grants := needGrants(t, s)
	ctx := t.Context()
	mustOK(t, grants.CreateGrant(ctx, newGrant(kind, "contested", "req-1")))
	errs := Race(racers, func(int) error { return grants.Consume(ctx, kind, "contested") })
	ExactlyOneWins(t, errs, store.ErrConsumed)
	wantActive(t, grants, kind, "contested", false)
}

func testGrantDelete(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-1", "req-1")))
	other := newGrant(store.KindAccessToken, "at-2", "req-1")
	mustOK(t, grants.CreateGrant(ctx, other))

	mustOK(t, grants.Delete(ctx, store.KindAccessToken, "at-1"))
	_, err := grants.Grant(ctx, store.KindAccessToken, "at-1")
	mustErrIs(t, err, store.ErrNotFound)
	mustErrIs(t, grants.Delete(ctx, store.KindAccessToken, "at-1"), store.ErrNotFound)

	got, err := grants.Grant(ctx, store.KindAccessToken, "at-2")
	mustOK(t, err)
	checkGrant(t, got, other)

	// The key is free again, and the deleted record no longer belongs to its
	// request: revoking req-1 leaves the new at-1, of req-3, active.
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-1", "req-3")))
	mustOK(t, grants.Revoke(ctx, store.KindAccessToken, "req-1"))
	wantActive(t, grants, store.KindAccessToken, "at-2", false)
	wantActive(t, grants, store.KindAccessToken, "at-1", true)
}

// testConcurrentDPoPProof: the replay check of DPoP proofs is a
// CreateGrant of kind dpop_proof; of replicas recording one proof at once,
// exactly one succeeds, the others get ErrAlreadyExists.
func testConcurrentDPoPProof(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	errs := Race(racers, func(int) error {
		g := newGrant(store.KindDPoPProof, "proof-digest", "proof-digest")
		g.ExpiresAt = time.Now().Add(5 * time.Minute).UTC().Truncate(time.Second)
		return grants.CreateGrant(ctx, g)
	})
	ExactlyOneWins(t, errs, store.ErrAlreadyExists)
}

func testConcurrentDeletePKCE(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindPKCE, "contested", "req-1")))
	errs := Race(racers, func(int) error { return grants.Delete(ctx, store.KindPKCE, "contested") })
	ExactlyOneWins(t, errs, store.ErrNotFound)
	_, err := grants.Grant(ctx, store.KindPKCE, "contested")
	mustErrIs(t, err, store.ErrNotFound)
}

func testGrantRevoke(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	// Each record: its kind and signature, its request, and whether it is
	// still active after revoking the access and refresh tokens of req-1.
	records := []struct {
		kind       store.Kind
		sig        string
		requestID  string
		wantActive bool
	}{
		{store.KindAccessToken, "at-1", "req-1", false},
		{store.KindAccessToken, "at-2", "req-1", false},
		{store.KindRefreshToken, "rt-1", "req-1", false},
		{store.KindRefreshToken, "rt-2", "req-1", false},
		{store.KindAuthorizeCode, "code-1", "req-1", true}, // another kind
		{store.KindOIDC, "oidc-1", "req-1", true},          // another kind
		{store.KindAccessToken, "at-3", "req-2", true},     // another request
		{store.KindRefreshToken, "rt-3", "req-2", true},    // another request
	}
	for _, r := range records {
		mustOK(t, grants.CreateGrant(ctx, newGrant(r.kind, r.sig, r.requestID)))
	}
	// One refresh token of req-1 was already rotated.
	mustOK(t, grants.Consume(ctx, store.KindRefreshToken, "rt-1"))

	mustOK(t, grants.Revoke(ctx, store.KindAccessToken, "req-1"))
	mustOK(t, grants.Revoke(ctx, store.KindRefreshToken, "req-1"))
	mustOK(t, grants.Revoke(ctx, store.KindRefreshToken, "req-1")) // again: no error

	for _, r := range records {
		wantActive(t, grants, r.kind, r.sig, r.wantActive)
	}
	// A revoked refresh token cannot be rotated.
	mustErrIs(t, grants.Consume(ctx, store.KindRefreshToken, "rt-2"), store.ErrConsumed)
}

func testGrantRevokeNone(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	ctx := t.Context()
	mustOK(t, grants.Revoke(ctx, store.KindAccessToken, "no-such-request")) // empty store

	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-1", "req-1")))
	mustOK(t, grants.Revoke(ctx, store.KindAccessToken, "no-such-request"))
	mustOK(t, grants.Revoke(ctx, store.KindRefreshToken, "req-1")) // no refresh tokens
	wantActive(t, grants, store.KindAccessToken, "at-1", true)
}

func testGrantDeleteExpired(t *testing.T, s Stores) {
	grants := needGrants(t, s)
	d, ok := grants.(store.ExpiredDeleter)
	if !ok {
		t.Skip("Stores.Grants has no DeleteExpired method")
	}
	ctx := t.Context()
	cutoff := now()
	// Each record: its kind, signature and request, when it expires, and
	// whether DeleteExpired(cutoff) removes it.
	records := []struct {
		kind      store.Kind
		sig       string
		requestID string
		expiresAt time.Time
		wantGone  bool
	}{
		{store.KindAuthorizeCode, "code-old", "req-1", cutoff.Add(-2 * time.Hour), true},
		{store.KindAccessToken, "at-old", "req-1", cutoff.Add(-time.Second), true},
		{store.KindRefreshToken, "rt-old", "req-1", cutoff.Add(-time.Hour), true},
		{store.KindAccessToken, "at-new", "req-1", cutoff.Add(time.Hour), false},
		{store.KindRefreshToken, "rt-new", "req-1", cutoff.Add(time.Hour), false},
		{store.KindPKCE, "pkce-edge", "req-2", cutoff, false}, // not before cutoff
	}
	wantGone := 0
	for _, r := range records {
		g := newGrant(r.kind, r.sig, r.requestID)
		g.ExpiresAt = r.expiresAt
		mustOK(t, grants.CreateGrant(ctx, g))
		if r.wantGone {
			wantGone++
		}
	}
	mustOK(t, grants.Consume(ctx, store.KindRefreshToken, "rt-old")) // inactive records go too

	n, err := d.DeleteExpired(ctx, cutoff)
	mustOK(t, err)
	if n != wantGone {
		t.Errorf("got %d records deleted, want %d", n, wantGone)
	}
	for _, r := range records {
		_, err := grants.Grant(ctx, r.kind, r.sig)
		if r.wantGone {
			mustErrIs(t, err, store.ErrNotFound)
		} else {
			mustOK(t, err)
		}
	}

	n, err = d.DeleteExpired(ctx, cutoff)
	mustOK(t, err)
	if n != 0 {
		t.Errorf("second call: got %d records deleted, want 0", n)
	}

	// The remaining records of the request are still revocable, and the keys
	// of deleted ones are free.
	mustOK(t, grants.Revoke(ctx, store.KindAccessToken, "req-1"))
	wantActive(t, grants, store.KindAccessToken, "at-new", false)
	wantActive(t, grants, store.KindRefreshToken, "rt-new", true)
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-old", "req-3")))
}

// ---- Keys ----

func sampleKey(id, alg string, created time.Time) store.Key {
	return store.Key{
		ID:        id,
		Algorithm: alg,
		Private:   []byte("private key of " + id + "\x00\xff"),
		CreatedAt: created,
	}
}

func testKeysEmpty(t *testing.T, s Stores) {
	keys := needKeys(t, s)
	got, err := keys.Keys(t.Context())
	mustOK(t, err)
	if len(got) != 0 {
		t.Errorf("got %d keys, want 0", len(got))
	}
}

func testKeysRoundTrip(t *testing.T, s Stores) {
	keys := needKeys(t, s)
	created := now().Add(-24 * time.Hour)
	want := map[string]store.Key{
		"kid-rsa": sampleKey("kid-rsa", "RS256", created),
		"kid-ec":  sampleKey("kid-ec", "ES256", created.Add(time.Hour)),
	}
	for _, k := range want {
		mustOK(t, keys.AddKey(t.Context(), k.Clone()))
	}
	got, err := keys.Keys(t.Context())
	mustOK(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for _, k := range got {
		w, ok := want[k.ID]
		if !ok {
			t.Errorf("got key %q, want one of the keys added", k.ID)
			continue
		}
		if k.Algorithm != w.Algorithm || !bytes.Equal(k.Private, w.Private) || !k.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("got key %+v, want %+v", k, w)
		}
		delete(want, k.ID) // a key listed twice is reported as unknown
	}
}

func testKeysDuplicate(t *testing.T, s Stores) {
	keys := needKeys(t, s)
	want := sampleKey("kid-1", "RS256", now())
	mustOK(t, keys.AddKey(t.Context(), want.Clone()))
	mustErrIs(t, keys.AddKey(t.Context(), sampleKey("kid-1", "ES256", now())), store.ErrAlreadyExists)

	got, err := keys.Keys(t.Context())
	mustOK(t, err)
	if len(got) != 1 || got[0].Algorithm != want.Algorithm {
		t.Errorf("got keys %+v, want only %+v", got, want)
	}
}

func testKeysReturnsCopy(t *testing.T, s Stores) {
	keys := needKeys(t, s)
	want := sampleKey("kid-1", "ES256", now())
	mustOK(t, keys.AddKey(t.Context(), want.Clone()))
	got, err := keys.Keys(t.Context())
	mustOK(t, err)
	if len(got) != 1 {
		t.Fatalf("got %d keys, want 1", len(got))
	}
	got[0].Private[0] = 'X'
	got[0].Algorithm = "none"

	again, err := keys.Keys(t.Context())
	mustOK(t, err)
	if len(again) != 1 || !bytes.Equal(again[0].Private, want.Private) || again[0].Algorithm != want.Algorithm {
		t.Errorf("after modifying a returned key, got %+v, want %+v", again, want)
	}
}

// ---- Consents ----

// checkScopes compares got with want as sets: the contract does not promise
// the order of the scopes.
func checkScopes(t *testing.T, got, want []string) {
	t.Helper()
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		t.Errorf("got scopes %q, want %q", got, want)
	}
}

// consentOf returns the consent of subject to clientID for audience, or
// stops the test.
func consentOf(t *testing.T, c store.Consents, subject, clientID, audience string) *store.Consent {
	t.Helper()
	got, err := c.Consent(t.Context(), subject, clientID, audience)
	mustOK(t, err)
	if got == nil {
		t.Fatalf("Consent(%q, %q, %q): nil consent and no error", subject, clientID, audience)
	}
	return got
}

// wantNoConsent checks that there is no consent of subject to clientID for
// audience.
func wantNoConsent(t *testing.T, c store.Consents, subject, clientID, audience string) {
	t.Helper()
	got, err := c.Consent(t.Context(), subject, clientID, audience)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consent(%q, %q, %q): got %+v, %v; want an error wrapping ErrNotFound", subject, clientID, audience, got, err)
	}
}

// checkConsent compares got with want: the key and expiry exactly (to the
// second), the scopes as sets.
func checkConsent(t *testing.T, got, want *store.Consent) {
	t.Helper()
	if got.Subject != want.Subject || got.ClientID != want.ClientID || got.Audience != want.Audience {
		t.Errorf("got consent of %q to %q for %q, want %q, %q, %q", got.Subject, got.ClientID, got.Audience, want.Subject, want.ClientID, want.Audience)
	}
	if !got.ExpiresAt.UTC().Truncate(time.Second).Equal(want.ExpiresAt) {
		t.Errorf("got ExpiresAt %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
	checkScopes(t, got.Scopes, want.Scopes)
}

// newConsent returns a consent of 248289761001 to client-1 for the API
// https://api.example.com, expiring in a day.
func newConsent(scopes ...string) *store.Consent {
	return &store.Consent{
		Subject: "248289761001", ClientID: "client-1", Audience: "https://api.example.com",
		Scopes: scopes, ExpiresAt: now().Add(24 * time.Hour),
	}
}

func testConsentNotFound(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	wantNoConsent(t, consents, "248289761001", "client-1", "https://api.example.com")
	wantNoConsent(t, consents, "248289761001", "client-1", "")
	// Another user's, another client's and another audience's consent are
	// not this one.
	for _, c := range []*store.Consent{
		{Subject: "other-subject", ClientID: "client-1", Audience: "https://api.example.com"},
		{Subject: "248289761001", ClientID: "client-2", Audience: "https://api.example.com"},
		{Subject: "248289761001", ClientID: "client-1", Audience: "https://other.example.com"},
	} {
		c.Scopes, c.ExpiresAt = []string{"openid"}, now().Add(time.Hour)
		mustOK(t, consents.SaveConsent(t.Context(), c))
	}
	wantNoConsent(t, consents, "248289761001", "client-1", "https://api.example.com")
	wantNoConsent(t, consents, "248289761001", "client-1", "")
}

func testConsentRoundTrip(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	for _, want := range []*store.Consent{
		newConsent("openid", "profile", "email", "offline_access", "read:messages"),
		{Subject: "248289761001", ClientID: "client-2", Scopes: []string{"openid"}, ExpiresAt: now().Add(365 * 24 * time.Hour)},
	} {
		mustOK(t, consents.SaveConsent(t.Context(), want.Clone()))
		checkConsent(t, consentOf(t, consents, want.Subject, want.ClientID, want.Audience), want)
	}
}

// testConsentEmptyScopes: a consent with no scopes (to the audience
// itself) is a record, not the absence of one.
func testConsentEmptyScopes(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	for i, scopes := range [][]string{nil, {}} {
		want := newConsent(scopes...)
		want.ClientID = []string{"client-nil", "client-empty"}[i]
		mustOK(t, consents.SaveConsent(t.Context(), want.Clone()))
		got := consentOf(t, consents, want.Subject, want.ClientID, want.Audience)
		if len(got.Scopes) != 0 {
			t.Errorf("got scopes %q, want none", got.Scopes)
		}
		checkConsent(t, got, want)
	}
}

// testConsentPerAudience: one user's consents to one client for different
// audiences are separate records, even with the same scope names.
func testConsentPerAudience(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	ctx := t.Context()
	records := []*store.Consent{
		{Audience: "", Scopes: []string{"openid", "profile"}},
		{Audience: "https://orders.example.com", Scopes: []string{"read"}},
		{Audience: "https://photos.example.com", Scopes: []string{"read", "write"}},
		{Audience: "https://photos.example.com/", Scopes: nil}, // another identifier
	}
	for _, c := range records {
		c.Subject, c.ClientID, c.ExpiresAt = "alice", "web", now().Add(time.Hour)
		mustOK(t, consents.SaveConsent(ctx, c.Clone()))
	}
	// Replacing one leaves the others alone.
	records[1].Scopes = []string{"read", "write", "delete"}
	mustOK(t, consents.SaveConsent(ctx, records[1].Clone()))
	for _, c := range records {
		checkConsent(t, consentOf(t, consents, "alice", "web", c.Audience), c)
	}
	wantNoConsent(t, consents, "alice", "web", "https://billing.example.com")
}

func testConsentSaveReplaces(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	ctx := t.Context()
	// Each step saves a consent and expects exactly it back: a save
	// replaces the whole previous one, scopes and expiry, whether it
	// grants more, fewer or none, and lasts longer or shorter.
	steps := []struct {
		scopes []string
		ttl    time.Duration
	}{
		{[]string{"openid", "profile"}, time.Hour},
		{[]string{"openid", "profile", "email"}, 48 * time.Hour},
		{[]string{"openid"}, 2 * time.Hour},
		{nil, 3 * time.Hour},
		{[]string{"email"}, time.Hour},
	}
	for _, st := range steps {
		want := newConsent(st.scopes...)
		want.ExpiresAt = now().Add(st.ttl)
		mustOK(t, consents.SaveConsent(ctx, want.Clone()))
		checkConsent(t, consentOf(t, consents, want.Subject, want.ClientID, want.Audience), want)
	}
}

// testConsentExpired: a consent past its ExpiresAt is either still
// returned as it was saved, for the caller to see it expired, or gone; it
// never comes back with a later expiry. Saving a fresh one replaces it.
func testConsentExpired(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	ctx := t.Context()
	expired := newConsent("openid", "read")
	expired.ExpiresAt = now().Add(-time.Minute)
	mustOK(t, consents.SaveConsent(ctx, expired.Clone()))
	// Another write, after which a store that sweeps on writes has swept.
	mustOK(t, consents.SaveConsent(ctx, &store.Consent{Subject: "other", ClientID: "client-1", ExpiresAt: now().Add(time.Hour)}))
	got, err := consents.Consent(ctx, expired.Subject, expired.ClientID, expired.Audience)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		t.Fatalf("Consent: %v", err)
	default:
		checkConsent(t, got, expired)
	}
	fresh := newConsent("openid")
	mustOK(t, consents.SaveConsent(ctx, fresh.Clone()))
	checkConsent(t, consentOf(t, consents, fresh.Subject, fresh.ClientID, fresh.Audience), fresh)
}

func testConsentIsolation(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	ctx := t.Context()
	// Each record: a user, a client, an audience and the scopes the user
	// allows. They would collide in a store that joined the three with a
	// colon or a space.
	records := []*store.Consent{
		{Subject: "alice", ClientID: "web", Audience: "", Scopes: []string{"openid", "profile"}},
		{Subject: "alice", ClientID: "cli", Audience: "", Scopes: []string{"openid", "offline_access"}},
		{Subject: "bob", ClientID: "web", Audience: "", Scopes: []string{"email"}},
		{Subject: "a:b", ClientID: "c", Audience: "", Scopes: []string{"profile"}},
		{Subject: "a", ClientID: "b:c", Audience: "", Scopes: []string{"phone"}},
		{Subject: "a", ClientID: "b", Audience: "c", Scopes: []string{"address"}},
		{Subject: "a b", ClientID: "c", Audience: "", Scopes: []string{"email"}},
		{Subject: "a", ClientID: "b c", Audience: "", Scopes: []string{"openid"}},
	}
	for _, c := range records {
		c.ExpiresAt = now().Add(time.Hour)
		mustOK(t, consents.SaveConsent(ctx, c.Clone()))
	}
	for _, c := range records {
		checkConsent(t, consentOf(t, consents, c.Subject, c.ClientID, c.Audience), c)
	}
	wantNoConsent(t, consents, "bob", "cli", "")
	wantNoConsent(t, consents, "a:b", "c", "c")
}

func testConsentKeepsCopy(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	saved := newConsent("openid", "profile")
	mustOK(t, consents.SaveConsent(t.Context(), saved))
	want := saved.Clone()
	saved.Scopes[1] = "admin"
	saved.ExpiresAt = saved.ExpiresAt.Add(time.Hour)
	saved.Audience = "https://other.example.com"
	checkConsent(t, consentOf(t, consents, want.Subject, want.ClientID, want.Audience), want)
}

func testConsentReturnsCopy(t *testing.T, s Stores) {
	consents := needConsents(t, s)
	want := newConsent("openid", "profile")
	mustOK(t, consents.SaveConsent(t.Context(), want.Clone()))
	got := consentOf(t, consents, want.Subject, want.ClientID, want.Audience)
	if len(got.Scopes) != len(want.Scopes) {
		t.Fatalf("got scopes %q, want %q", got.Scopes, want.Scopes)
	}
	got.Scopes[0] = "admin"
	got.Scopes[1] = "everything"
	got.ExpiresAt = got.ExpiresAt.Add(time.Hour)
	checkConsent(t, consentOf(t, consents, want.Subject, want.ClientID, want.Audience), want)
}

// ---- Throttle ----

// throttleStart is the time the throttle tests count from, and throttleWindow
// their window. The store is given explicit times, so no test sleeps.
var throttleStart = time.Date(2031, 4, 5, 6, 7, 8, 0, time.UTC)

const throttleWindow = 15 * time.Minute

// at is the time d after throttleStart.
func at(d time.Duration) time.Time { return throttleStart.Add(d) }

// sameHits reports whether two Hits are equal, their times to the second.
func sameHits(a, b store.Hits) bool {
	return a.Count == b.Count && sameTime(a.Last, b.Last) && sameTime(a.Expires, b.Expires)
}

func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.UTC().Truncate(time.Second).Equal(b.UTC().Truncate(time.Second))
}

// hits is the Hits of a window opened at start: n events, the latest at last.
func hits(n int, start, last time.Duration) store.Hits {
	return store.Hits{Count: n, Last: at(last), Expires: at(start + throttleWindow)}
}

// addHit calls AddHit with throttleWindow and checks the Hits it returns.
func addHit(t *testing.T, th store.Throttle, key string, when time.Time, want store.Hits) {
	t.Helper()
	got, err := th.AddHit(t.Context(), key, when, throttleWindow)
	mustOK(t, err)
	if !sameHits(got, want) {
		t.Errorf("AddHit(%q, %v): got %+v, want %+v", key, when, got, want)
	}
}

// wantHits calls Hits and checks what it returns.
func wantHits(t *testing.T, th store.Throttle, key string, when time.Time, want store.Hits) {
	t.Helper()
	got, err := th.Hits(t.Context(), key, when)
	mustOK(t, err)
	if !sameHits(got, want) {
		t.Errorf("Hits(%q, %v): got %+v, want %+v", key, when, got, want)
	}
}

func testThrottleUnknownKey(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	wantHits(t, th, "no-such-key", at(0), store.Hits{})
	mustOK(t, th.ResetHits(t.Context(), "no-such-key"))
	// Another key's events are not this one's.
	addHit(t, th, "other-key", at(0), hits(1, 0, 0))
	wantHits(t, th, "no-such-key", at(0), store.Hits{})
	mustOK(t, th.ResetHits(t.Context(), "no-such-key"))
	wantHits(t, th, "other-key", at(0), hits(1, 0, 0))
}

func testThrottleCountsWithinWindow(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	const key = "key-1"
	// Each event: when it happens. The window opened by the first lasts
	// until throttleStart+throttleWindow, however many follow.
	events := []time.Duration{0, time.Second, time.Minute, throttleWindow / 2, throttleWindow - time.Second}
	for i, d := range events {
		addHit(t, th, key, at(d), hits(i+1, 0, d))
	}
	// Hits only reads.
	last := events[len(events)-1]
	for _, d := range []time.Duration{0, time.Minute, throttleWindow - time.Second} {
		wantHits(t, th, key, at(d), hits(len(events), 0, last))
	}
}

func testThrottleLastIsLatest(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	const key = "key-1"
	// Replicas' clocks differ a little: an event stamped earlier than the
	// latest counts, but Last stays the latest.
	addHit(t, th, key, at(0), hits(1, 0, 0))
	addHit(t, th, key, at(time.Minute), hits(2, 0, time.Minute))
	addHit(t, th, key, at(30*time.Second), hits(3, 0, time.Minute))
	wantHits(t, th, key, at(2*time.Minute), hits(3, 0, time.Minute))
}

func testThrottleNewWindow(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	const key = "key-1"
	addHit(t, th, key, at(0), hits(1, 0, 0))
	addHit(t, th, key, at(time.Minute), hits(2, 0, time.Minute))
	// The window is [start, start+window): at its end it is closed.
	wantHits(t, th, key, at(throttleWindow-time.Second), hits(2, 0, time.Minute))
	wantHits(t, th, key, at(throttleWindow), store.Hits{})
	wantHits(t, th, key, at(24*time.Hour), store.Hits{})

	// An event at the very end opens a new window.
	w := throttleWindow
	addHit(t, th, key, at(w), hits(1, w, w))
	addHit(t, th, key, at(2*w-time.Second), hits(2, w, 2*w-time.Second))
	wantHits(t, th, key, at(2*w), store.Hits{})

	// An event after the end opens a new window too, which starts then,
	// not where the old one ended: it still runs a minute later.
	second := 3*w + time.Minute
	addHit(t, th, key, at(second), hits(1, second, second))
	addHit(t, th, key, at(second+w-time.Second), hits(2, second, second+w-time.Second))
	wantHits(t, th, key, at(second+w), store.Hits{})

	// An event long after opens a new window too.
	third := 30 * 24 * time.Hour
	addHit(t, th, key, at(third), hits(1, third, third))
	wantHits(t, th, key, at(third), hits(1, third, third))
}

func testThrottleWindowNotExtended(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	ctx := t.Context()
	const key = "key-1"
	// The window is the one given when it opened; a later AddHit with a
	// longer one neither extends nor shortens it.
	_, err := th.AddHit(ctx, key, at(0), time.Minute)
	mustOK(t, err)
	got, err := th.AddHit(ctx, key, at(30*time.Second), time.Hour)
	mustOK(t, err)
	want := store.Hits{Count: 2, Last: at(30 * time.Second), Expires: at(time.Minute)}
	if !sameHits(got, want) {
		t.Errorf("AddHit with a longer window: got %+v, want %+v", got, want)
	}
	wantHits(t, th, key, at(time.Minute), store.Hits{})
}

func testThrottleReset(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	ctx := t.Context()
	const key = "key-1"
	for i := range 3 {
		d := time.Duration(i) * time.Second
		addHit(t, th, key, at(d), hits(i+1, 0, d))
	}
	mustOK(t, th.ResetHits(ctx, key))
	wantHits(t, th, key, at(3*time.Second), store.Hits{})
	mustOK(t, th.ResetHits(ctx, key)) // again: no error

	// Counting starts over, in a window opening at the next event.
	m := time.Minute
	addHit(t, th, key, at(m), hits(1, m, m))
	addHit(t, th, key, at(m+throttleWindow-time.Second), hits(2, m, m+throttleWindow-time.Second))
	wantHits(t, th, key, at(m+throttleWindow), store.Hits{})
}

func testThrottleKeysAreDistinct(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	ctx := t.Context()
	// Key b's window opens later than key a's: each key has its own.
	addHit(t, th, "a", at(0), hits(1, 0, 0))
	addHit(t, th, "a", at(time.Second), hits(2, 0, time.Second))
	addHit(t, th, "b", at(10*time.Minute), hits(1, 10*time.Minute, 10*time.Minute))
	addHit(t, th, "a", at(11*time.Minute), hits(3, 0, 11*time.Minute))
	wantHits(t, th, "a", at(11*time.Minute), hits(3, 0, 11*time.Minute))
	wantHits(t, th, "b", at(11*time.Minute), hits(1, 10*time.Minute, 10*time.Minute))

	// Key a's window ends, key b's runs on.
	wantHits(t, th, "a", at(throttleWindow), store.Hits{})
	wantHits(t, th, "b", at(throttleWindow), hits(1, 10*time.Minute, 10*time.Minute))
	addHit(t, th, "b", at(throttleWindow+time.Minute), hits(2, 10*time.Minute, throttleWindow+time.Minute))

	// Resetting one key leaves the other alone.
	mustOK(t, th.ResetHits(ctx, "b"))
	wantHits(t, th, "b", at(throttleWindow+time.Minute), store.Hits{})
	wantHits(t, th, "a", at(time.Minute), hits(3, 0, 11*time.Minute))
}

func testThrottleBadWindow(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	for _, w := range []time.Duration{0, -time.Minute, 999 * time.Nanosecond} {
		if _, err := th.AddHit(t.Context(), "key-1", at(0), w); err == nil {
			t.Errorf("AddHit(window %v): got no error, want one", w)
		}
	}
	wantHits(t, th, "key-1", at(0), store.Hits{})
}

func testThrottleConcurrent(t *testing.T, s Stores) {
	th := needThrottle(t, s)
	ctx := t.Context()
	const key = "contested"
	counts := make([]int, racers)
	errs := Race(racers, func(i int) error {
		h, err := th.AddHit(ctx, key, at(time.Duration(i)*time.Millisecond), throttleWindow)
		counts[i] = h.Count
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: got error %v, want nil", i, err)
		}
	}
	// Every caller saw a different count: none was lost or counted twice.
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("got counts %v, want each of 1 to %d once", counts, racers)
		}
	}
	got, err := th.Hits(ctx, key, at(time.Second))
	mustOK(t, err)
	if got.Count != racers || !sameTime(got.Expires, at(throttleWindow)) {
		t.Errorf("got %+v, want %d events in the window opened at %v", got, racers, at(0))
	}
}

// ---- Sessions ----

// newSession returns a login-session record of subject that started at
// created and lasts 12 hours, last used when it started.
func newSession(id, subject string, created time.Time) *store.Session {
	return &store.Session{
		ID:        id,
		Subject:   subject,
		AuthTime:  created.Add(-time.Minute),
		AMR:       []string{"pwd", "otp"},
		ACR:       "urn:example:acr:mfa",
		CreatedAt: created,
		ExpiresAt: created.Add(12 * time.Hour),
		LastUsed:  created,
	}
}

// sessionOf reads a record, failing the test if there is none.
func sessionOf(t *testing.T, ss store.Sessions, id string) *store.Session {
	t.Helper()
	got, err := ss.Session(t.Context(), id)
	mustOK(t, err)
	return got
}

// checkSession compares two records field by field.
func checkSession(t *testing.T, got, want *store.Session) {
	t.Helper()
	times := []struct {
		name      string
		got, want time.Time
	}{
		{"AuthTime", got.AuthTime, want.AuthTime},
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"LastUsed", got.LastUsed, want.LastUsed},
	}
	for _, tm := range times {
		if !tm.got.UTC().Truncate(time.Second).Equal(tm.want.UTC().Truncate(time.Second)) {
			t.Errorf("session %q: got %s %v, want %v", want.ID, tm.name, tm.got, tm.want)
		}
	}
	if got.ID != want.ID || got.Subject != want.Subject || got.Revoked != want.Revoked ||
		!slices.Equal(got.AMR, want.AMR) || got.ACR != want.ACR {
		t.Errorf("got session %+v, want %+v", got, want)
	}
}

func testSessionNotFound(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	mustOK(t, ss.CreateSession(ctx, newSession("sid-other", "alice", now())))
	_, err := ss.Session(ctx, "sid-missing")
	mustErrIs(t, err, store.ErrNotFound)
	mustErrIs(t, ss.TouchSession(ctx, "sid-missing", now()), store.ErrNotFound)
	// Ending what is not there is not an error: logging out twice is fine.
	mustOK(t, ss.RevokeSession(ctx, "sid-missing"))
	mustOK(t, ss.RevokeSessions(ctx, "nobody"))
	checkSession(t, sessionOf(t, ss, "sid-other"), newSession("sid-other", "alice", now()))
}

func testSessionRoundTrip(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	start := now()
	want := newSession("sid-1", "alice", start)
	mustOK(t, ss.CreateSession(ctx, want))
	checkSession(t, sessionOf(t, ss, "sid-1"), want)
	// No AMR, and a record created revoked, round-trip too.
	bare := newSession("sid-2", "bob", start)
	bare.AMR, bare.ACR, bare.Revoked = nil, "", true
	mustOK(t, ss.CreateSession(ctx, bare))
	checkSession(t, sessionOf(t, ss, "sid-2"), bare)
}

func testSessionCreateDuplicate(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	first := newSession("sid-1", "alice", now())
	mustOK(t, ss.CreateSession(ctx, first))
	second := newSession("sid-1", "mallory", now().Add(time.Hour))
	mustErrIs(t, ss.CreateSession(ctx, second), store.ErrAlreadyExists)
	checkSession(t, sessionOf(t, ss, "sid-1"), first)
}

func testSessionCopies(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	sess := newSession("sid-1", "alice", now())
	mustOK(t, ss.CreateSession(ctx, sess))
	// The store keeps its own copy...
	sess.AMR[0] = "none"
	sess.Subject = "mallory"
	want := newSession("sid-1", "alice", now())
	checkSession(t, sessionOf(t, ss, "sid-1"), want)
	// ... and returns a fresh one each time.
	got := sessionOf(t, ss, "sid-1")
	got.AMR[0] = "none"
	got.Revoked = true
	checkSession(t, sessionOf(t, ss, "sid-1"), want)
}

func testSessionTouch(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	start := now()
	mustOK(t, ss.CreateSession(ctx, newSession("sid-1", "alice", start)))
	mustOK(t, ss.CreateSession(ctx, newSession("sid-2", "alice", start)))
	// Each touch: when, and LastUsed after it. An earlier time than the
	// latest changes nothing and is not an error.
	touches := []struct {
		at   time.Duration
		want time.Duration
	}{
		{time.Minute, time.Minute},
		{5 * time.Minute, 5 * time.Minute},
		{2 * time.Minute, 5 * time.Minute},
		{5 * time.Minute, 5 * time.Minute},
		{time.Hour, time.Hour},
	}
	for _, tc := range touches {
		mustOK(t, ss.TouchSession(ctx, "sid-1", start.Add(tc.at)))
		if got := sessionOf(t, ss, "sid-1").LastUsed; !got.Truncate(time.Second).Equal(start.Add(tc.want)) {
			t.Errorf("after touching at +%v: got LastUsed %v, want +%v", tc.at, got, tc.want)
		}
	}
	// Touching changes nothing else, and no other record.
	want := newSession("sid-1", "alice", start)
	want.LastUsed = start.Add(time.Hour)
	checkSession(t, sessionOf(t, ss, "sid-1"), want)
	checkSession(t, sessionOf(t, ss, "sid-2"), newSession("sid-2", "alice", start))
}

func testSessionExpiry(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	cutoff := now()
	// A session that started 13 hours ago has expired an hour ago; one that
	// started now runs for 12 hours.
	old := newSession("sid-old", "alice", cutoff.Add(-13*time.Hour))
	live := newSession("sid-live", "alice", cutoff)
	edge := newSession("sid-edge", "bob", cutoff.Add(-12*time.Hour)) // expires at cutoff
	for _, sess := range []*store.Session{old, edge, live} {
		mustOK(t, ss.CreateSession(ctx, sess))
	}
	// The store does not decide expiry: an expired record is either
	// returned as it was, for the caller to check ExpiresAt, or gone.
	if got, err := ss.Session(ctx, "sid-old"); err == nil {
		checkSession(t, got, old)
	} else {
		mustErrIs(t, err, store.ErrNotFound)
	}
	checkSession(t, sessionOf(t, ss, "sid-live"), live)

	d, ok := ss.(store.ExpiredDeleter)
	if !ok {
		t.Skip("Stores.Sessions has no DeleteExpired method")
	}
	_, err := d.DeleteExpired(ctx, cutoff)
	mustOK(t, err)
	_, err = ss.Session(ctx, "sid-old")
	mustErrIs(t, err, store.ErrNotFound)
	checkSession(t, sessionOf(t, ss, "sid-edge"), edge) // not before cutoff
	checkSession(t, sessionOf(t, ss, "sid-live"), live)
	// The ID of a removed record is free again.
	mustOK(t, ss.CreateSession(ctx, newSession("sid-old", "carol", cutoff)))
}

func testSessionRevokeOne(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	start := now()
	mustOK(t, ss.CreateSession(ctx, newSession("sid-1", "alice", start)))
	mustOK(t, ss.CreateSession(ctx, newSession("sid-2", "alice", start)))
	mustOK(t, ss.RevokeSession(ctx, "sid-1"))
	revoked := newSession("sid-1", "alice", start)
	revoked.Revoked = true
	checkSession(t, sessionOf(t, ss, "sid-1"), revoked)
	// The user's other session is not this one.
	checkSession(t, sessionOf(t, ss, "sid-2"), newSession("sid-2", "alice", start))
	// Again: no error, still revoked, and touching does not bring it back.
	mustOK(t, ss.RevokeSession(ctx, "sid-1"))
	mustOK(t, ss.TouchSession(ctx, "sid-1", start.Add(time.Minute)))
	if !sessionOf(t, ss, "sid-1").Revoked {
		t.Error("a touched revoked session is no longer revoked")
	}
}

func testSessionRevokeSubject(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	start := now()
	for _, sess := range []*store.Session{
		newSession("alice-1", "alice", start),
		newSession("alice-2", "alice", start.Add(time.Minute)),
		newSession("bob-1", "bob", start),
		newSession("alicia-1", "alice2", start), // a subject alice is a prefix of
	} {
		mustOK(t, ss.CreateSession(ctx, sess))
	}
	mustOK(t, ss.RevokeSession(ctx, "alice-2")) // already revoked: stays so
	mustOK(t, ss.RevokeSessions(ctx, "alice"))
	for id, want := range map[string]bool{"alice-1": true, "alice-2": true, "bob-1": false, "alicia-1": false} {
		if got := sessionOf(t, ss, id).Revoked; got != want {
			t.Errorf("session %s: got Revoked %v, want %v", id, got, want)
		}
	}
	// It ends the sessions that exist: a login afterwards starts a live one.
	mustOK(t, ss.CreateSession(ctx, newSession("alice-3", "alice", start.Add(2*time.Minute))))
	if sessionOf(t, ss, "alice-3").Revoked {
		t.Error("a session created after RevokeSessions is revoked")
	}
	mustOK(t, ss.RevokeSessions(ctx, "alice"))
	if !sessionOf(t, ss, "alice-3").Revoked {
		t.Error("the second RevokeSessions left alice-3 live")
	}
}

func testSessionConcurrentUse(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	start := now()
	mustOK(t, ss.CreateSession(ctx, newSession("sid-1", "alice", start)))
	mustOK(t, ss.CreateSession(ctx, newSession("sid-2", "alice", start)))
	// Every racer touches sid-1 at its own time and reads it back; one
	// in ten also ends all of alice's sessions.
	errs := Race(racers, func(i int) error {
		if err := ss.TouchSession(ctx, "sid-1", start.Add(time.Duration(i+1)*time.Second)); err != nil {
			return err
		}
		if i%10 == 0 {
			if err := ss.RevokeSessions(ctx, "alice"); err != nil {
				return err
			}
		}
		_, err := ss.Session(ctx, "sid-1")
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: got error %v, want nil", i, err)
		}
	}
	// The latest time wins, whatever the order the calls ran in.
	want := newSession("sid-1", "alice", start)
	want.LastUsed = start.Add(racers * time.Second)
	want.Revoked = true
	checkSession(t, sessionOf(t, ss, "sid-1"), want)
	if !sessionOf(t, ss, "sid-2").Revoked {
		t.Error("sid-2: got a live session, want it revoked")
	}
}

func testSessionConcurrentCreate(t *testing.T, s Stores) {
	ss := needSessions(t, s)
	ctx := t.Context()
	errs := Race(racers, func(i int) error {
		return ss.CreateSession(ctx, newSession("sid-contested", "alice", now()))
	})
	ExactlyOneWins(t, errs, store.ErrAlreadyExists)
	// Distinct IDs all succeed.
	errs = Race(racers, func(i int) error {
		return ss.CreateSession(ctx, newSession(fmt.Sprintf("sid-%d", i), "alice", now()))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: got error %v, want nil", i, err)
		}
	}
	for i := range racers {
		sessionOf(t, ss, fmt.Sprintf("sid-%d", i))
	}
}
