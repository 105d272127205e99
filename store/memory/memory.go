package memory

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Compile-time checks that *Store implements every storage interface.
var (
	_ store.Clients        = (*Store)(nil)
	_ store.Users          = (*Store)(nil)
	_ store.Grants         = (*Store)(nil)
	_ store.Keys           = (*Store)(nil)
	_ store.Consents       = (*Store)(nil)
	_ store.Throttle       = (*Store)(nil)
	_ store.Sessions       = (*Store)(nil)
	_ store.ExpiredDeleter = (*Store)(nil)
)

// dummyPassword is hashed once per Store; an unknown username is checked
// against that hash so that it costs as much as a known one.
const dummyPassword = "pixie/memory: password of no user"

// Store holds clients, users, grant records, signing keys, consents,
// throttle counts and login sessions in memory. Create one with [New]; the zero value is
// not usable. A Store is safe for concurrent use.
type Store struct {
	mu        sync.RWMutex
	clients   map[string]*store.Client // by client ID
	users     map[string]*user         // by subject
	usernames map[string]string        // username → subject
	// grants holds the grant records by signature and kind (grants.go);
	// families holds them by request ID, and grantExpiry orders them by
	// ExpiresAt, soonest first. The three always hold the same records.
	grants      map[string]*record
	families    map[string]*family
	grantExpiry expiryHeap[*record]
	maxGrants   int         // MaxGrants, lower in tests
	grantsPeak  int         // the most records grants held since compactGrants
	deltaLast   lastDelta   // insert's last delta (delta.go)
	keys        []store.Key // in the order added
	consents    map[consentKey]*consentEntry
	// byExpiry orders the consents by ExpiresAt, soonest first (a min-heap
	// of the same entries as consents), for sweepConsents and eviction.
	byExpiry    expiryHeap[*consentEntry]
	maxConsents int      // the cap on len(consents): MaxConsents, lower in tests
	throttle    throttle // the throttle keys (throttle.go)
	sessions    sessionTable

	janitor     *time.Timer   // armed while entries expire (janitor.go)
	clockOffset time.Duration // the callers' clock minus the wall clock

	dummyOnce sync.Once
	dummyHash string
	dummyErr  error
}

// user is a registered user and the hash of their password.
type user struct {
	profile store.User
	hash    string
}

// consentKey is the key of a consent: the user, the client and the
// audience.
type consentKey struct {
	subject  string
	clientID string
	audience string
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		clients:   make(map[string]*store.Client),
		users:     make(map[string]*user),
		usernames: make(map[string]string),
		grants:    make(map[string]*record),
		families:  make(map[string]*family),
		maxGrants: MaxGrants,
		consents:  make(map[consentKey]*consentEntry),
		throttle:  newThrottle(),

		maxConsents: MaxConsents,
		sessions:    newSessionTable(),
	}
}

// AddClient registers a copy of c. A client with the same ID already present
// yields an error wrapping [store.ErrAlreadyExists], so that a program may
// register its clients on every start and ignore that error. c.SecretHash
// must be empty (a public client) or made with [store.HashSecret]. The
// signature is sqlstore.Store.AddClient's; ctx is not used.
func (s *Store) AddClient(_ context.Context, c *store.Client) error {
	return s.putClient(c, false)
}

// PutClient registers a copy of c, replacing the client with the same ID if
// there is one, as sqlstore.Store.PutClient does.
func (s *Store) PutClient(_ context.Context, c *store.Client) error {
	return s.putClient(c, true)
}

func (s *Store) putClient(c *store.Client, replace bool) error {
	if c == nil || c.ID == "" {
		return errors.New("memory: add client: missing client or client ID")
	}
	c = c.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok && !replace {
		return fmt.Errorf("memory: add client %q: %w", c.ID, store.ErrAlreadyExists)
	}
	s.clients[c.ID] = c
	return nil
}

// AddUser registers a copy of u, who logs in with username and password
// (matched exactly, case included). The password is hashed with
// [store.HashSecret], which takes tens of milliseconds. A user with the same
// subject or username already present yields an error wrapping
// [store.ErrAlreadyExists]. The signature is sqlstore.Store.AddUser's; ctx
// is not used.
func (s *Store) AddUser(_ context.Context, u *store.User, username, password string) error {
	if u == nil || u.Subject == "" || username == "" {
		return errors.New("memory: add user: missing user, subject or username")
	}
	// Prepare the dummy hash now rather than in the first Authenticate of an
	// unknown user, which would otherwise be slower than any other.
	if _, err := s.dummy(); err != nil {
		return fmt.Errorf("memory: add user: %w", err)
	}
	hash, err := store.HashSecret(password)
	if err != nil {
		return fmt.Errorf("memory: add user: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.Subject]; ok {
		return fmt.Errorf("memory: add user: subject %q: %w", u.Subject, store.ErrAlreadyExists)
	}
	if _, ok := s.usernames[username]; ok {
		return fmt.Errorf("memory: add user: username %q: %w", username, store.ErrAlreadyExists)
	}
	s.users[u.Subject] = &user{profile: *u, hash: hash}
	s.usernames[username] = u.Subject
	return nil
}

// Client returns a copy of the client with the given id, or an error wrapping
// [store.ErrNotFound].
func (s *Store) Client(_ context.Context, id string) (*store.Client, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("memory: client %q: %w", id, store.ErrNotFound)
	}
	return c.Clone(), nil
}

// Authenticate returns the subject of the user registered with username and
// password. An unknown username and a wrong password both yield an error
// wrapping [store.ErrInvalidCredentials]; both cost one password hash check,
// so the time taken does not tell them apart.
func (s *Store) Authenticate(_ context.Context, username, password string) (string, error) {
	s.mu.RLock()
	subject, known := s.usernames[username]
	var hash string
	if known {
		hash = s.users[subject].hash
	}
	s.mu.RUnlock()

	if !known {
		var err error
		if hash, err = s.dummy(); err != nil {
			return "", fmt.Errorf("memory: authenticate: %w", err)
		}
	}
	// The hash check runs outside the lock: it is slow and needs no state.
	ok, err := store.CheckSecret(hash, password)
	if err != nil {
		return "", fmt.Errorf("memory: authenticate: %w", err)
	}
	if !known || !ok {
		return "", fmt.Errorf("memory: authenticate: %w", store.ErrInvalidCredentials)
	}
	return subject, nil
}

// dummy returns the hash an unknown username is checked against, computing it
// on first use.
func (s *Store) dummy() (string, error) {
	s.dummyOnce.Do(func() {
		s.dummyHash, s.dummyErr = store.HashSecret(dummyPassword)
	})
	return s.dummyHash, s.dummyErr
}

// User returns a copy of the profile of the user with the given subject, or an
// error wrapping [store.ErrNotFound].
func (s *Store) User(_ context.Context, subject string) (*store.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[subject]
	if !ok {
		return nil, fmt.Errorf("memory: user %q: %w", subject, store.ErrNotFound)
	}
	p := u.profile
	return &p, nil
}

// Keys returns copies of every stored key, in the order they were added.
func (s *Store) Keys(_ context.Context) ([]store.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]store.Key, len(s.keys))
	for i, k := range s.keys {
		keys[i] = k.Clone()
	}
	return keys, nil
}

// AddKey stores a copy of k. A key with the same ID already present yields an
// error wrapping [store.ErrAlreadyExists].
func (s *Store) AddKey(_ context.Context, k store.Key) error {
	k = k.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.keys {
		if old.ID == k.ID {
			return fmt.Errorf("memory: add key %q: %w", k.ID, store.ErrAlreadyExists)
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// MaxConsents is the most consents a [Store] holds. Saving one more first
// removes the expired ones, then, if the Store is still full, the one that
// expires soonest (with one lifetime for all, the oldest): that user is asked
// again. A consent takes about 330 bytes with typical identifiers (the
// subject, client ID and API are ones pixie knows, and the scopes ones the
// client is registered for), so the cap bounds them to some 35 MB.
const MaxConsents = 100_000

// Consent returns a copy of the consent of subject to clientID for
// audience, or an error wrapping [store.ErrNotFound]. It implements
// [store.Consents]: a consent that has expired is returned until a later
// [Store.SaveConsent] removes it; the caller checks ExpiresAt.
func (s *Store) Consent(_ context.Context, subject, clientID, audience string) (*store.Consent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.consents[consentKey{subject, clientID, audience}]
	if !ok {
		return nil, fmt.Errorf("memory: consent: %w", store.ErrNotFound)
	}
	return e.c.Clone(), nil
}

// SaveConsent stores a copy of c, replacing the consent with the same
// subject, client and audience. It implements [store.Consents]. It first
// removes the consents that expired (by the wall clock) and, when the Store
// holds [MaxConsents] others, the one that expires soonest.
func (s *Store) SaveConsent(_ context.Context, c *store.Consent) error {
	if c == nil {
		return errors.New("memory: save consent: nil consent")
	}
	c = c.Clone()
	k := consentKey{c.Subject, c.ClientID, c.Audience}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepConsents(time.Now())
	if e, ok := s.consents[k]; ok {
		e.c = c
		heap.Fix(&s.byExpiry, e.index)
		return nil
	}
	for len(s.consents) >= s.maxConsents && len(s.byExpiry) > 0 {
		s.removeConsent(s.byExpiry[0])
	}
	e := &consentEntry{key: k, c: c}
	s.consents[k] = e
	heap.Push(&s.byExpiry, e)
	s.armJanitor()
	return nil
}

// sweepConsents removes the consents that expired before now. The caller
// holds s.mu for writing.
func (s *Store) sweepConsents(now time.Time) {
	for len(s.byExpiry) > 0 && s.byExpiry[0].c.ExpiresAt.Before(now) {
		s.removeConsent(s.byExpiry[0])
	}
}

// removeConsent removes e from both indexes. The caller holds s.mu for
// writing.
func (s *Store) removeConsent(e *consentEntry) {
	heap.Remove(&s.byExpiry, e.index)
	delete(s.consents, e.key)
}

// consentEntry is one stored consent and its place in the expiry heap.
type consentEntry struct {
	key   consentKey
	c     *store.Consent
	index int // in Store.byExpiry
}

func (e *consentEntry) expiresAt() time.Time { return e.c.ExpiresAt }
func (e *consentEntry) setIndex(i int)       { e.index = i }
