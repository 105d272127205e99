package memory

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pixieauth/pixie/store"
)

// MaxGrants is how many grant records a Store holds before it refuses new
// authorization codes and pushed authorization requests: [Store.CreateGrant]
// of a [store.KindAuthorizeCode] or [store.KindPushedRequest] record beyond
// it first removes the records that have expired and, if the
// Store is still full, fails with an error wrapping [ErrFull], which the
// provider answers with server_error. The records of grants already issued
// (tokens, rotated refresh tokens) may take the Store a quarter beyond it,
// so that a flood of new logins cannot stop the users already signed in
// from refreshing; past that every new record is refused. No record is
// ever evicted before it expires. A record takes about 250 bytes and its
// Data, or a delta against an earlier Data of its request, which for the
// provider's refreshed tokens is some 40 bytes (BenchmarkGrantFootprint:
// some 660 bytes a record over a flow and a refresh, some 320 a refresh
// token kept after its rotation), so the bound is some 0.3 to 0.7 GB.
const MaxGrants = 1_000_000

// ErrFull is wrapped by the error [Store.CreateGrant] returns when the
// Store holds as many grant records as it may (see [MaxGrants]).
var ErrFull = errors.New("memory: grant store full")

// A grant record takes one record, one entry in Store.grants and one in
// the expiry heap. The records of one request (a code and every token
// issued from it) share a family, which holds the request ID, client ID
// and subject once and chains the records of each kind for Revoke. A
// record's signature and kind (its key) are one string with its Data,
// unless it shares the Data of another record of its family: the access
// and refresh tokens of one exchange, which the provider serializes from
// the same request into equal bytes, keep one copy. And a record whose
// Data is mostly that of an earlier record of its family (the family's
// base) keeps only a delta against it (delta.go): the tokens of a
// rotation differ from those before them in a few times, and a rotated
// refresh token is kept until it expires, to detect its reuse.

// numKinds is how many kinds of grant record there are.
const numKinds = 8

// kindIndex returns the index of k in a record's key, and false if k is
// not a valid kind.
func kindIndex(k store.Kind) (byte, bool) {
	switch k {
	case store.KindAuthorizeCode:
		return 0, true
	case store.KindPKCE:
		return 1, true
	case store.KindOIDC:
		return 2, true
	case store.KindAccessToken:
		return 3, true
	case store.KindRefreshToken:
		return 4, true
	case store.KindRefreshGrace:
		return 5, true
	case store.KindDPoPProof:
		return 6, true
	case store.KindPushedRequest:
		return 7, true
	}
	return 0, false
}

// kindOf is the inverse of kindIndex.
func kindOf(i byte) store.Kind {
	return [numKinds]store.Kind{
		store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC,
		store.KindAccessToken, store.KindRefreshToken, store.KindRefreshGrace,
		store.KindDPoPProof,
		store.KindPushedRequest,
	}[i]
}

// record is one stored grant record. Store.mu guards it.
type record struct {
	// text is the signature, the kind's index (one byte) and, unless they
	// are the family's, the client ID and the subject; text[:keyLen] is
	// the key in Store.grants.
	text string
	// data is the record's Data, or with a ref its delta against ref: it
	// shares text's allocation, or is the data of another record of the
	// family with the same ref and bytes.
	data string
	// ref is the Data data is a delta against (a family's base, which
	// stays as long as a record refers to it), or "" if data is the Data.
	ref       string
	fam       *family
	newer     *record // the next newer record of this kind and family
	older     *record // the next older one
	expSec    int64   // ExpiresAt, Unix seconds
	expNsec   int32   // and nanoseconds
	heapIndex int32   // in Store.grantExpiry
	keyLen    uint16  // the length of the signature and kind
	// subjectOff is where the subject starts in text, or 0 if the client ID
	// and subject are the family's.
	subjectOff uint16
	active     bool
}

// maxText is the longest a record's signature and client ID together, or
// a family's request ID and client ID, may be (offsets are 16 bits).
const maxText = math.MaxUint16 - 1

func (r *record) kind() byte           { return r.text[r.keyLen-1] }
func (r *record) expiresAt() time.Time { return time.Unix(r.expSec, int64(r.expNsec)) }
func (r *record) setIndex(i int)       { r.heapIndex = int32(i) }

// clientSubject returns the record's client ID and subject.
func (r *record) clientSubject() (string, string) {
	if r.subjectOff == 0 {
		f := r.fam
		return f.text[f.clientOff:f.subjectOff], f.text[f.subjectOff:]
	}
	return r.text[r.keyLen:r.subjectOff], r.text[r.subjectOff:]
}

// family is the records of one request ID.
type family struct {
	// text is the request ID, then the client ID and subject of the
	// family's first record, which the later ones usually share.
	text       string
	clientOff  uint16
	subjectOff uint16
	newest     [numKinds]*record // of each kind; each links to the older ones
	// base is the Data the family's next records are encoded against:
	// the first that could not be (see deltaLimit).
	base string
}

// deltaLimit is the most, as a fraction of the Data, that a delta may take:
// Data whose delta against its family's base would be longer is kept as it
// is, and becomes the base. With the provider's Data (testdata), a
// rotation's token Data is a delta of some 4% of the token Data before it,
// the first tokens' a fifth of the code's: so the first tokens' Data is
// kept whole, and the code's is freed with the code, while the rotated
// refresh tokens, kept 30 days, hold their deltas.
func deltaLimit(n int) int { return n / deltaLimitDiv }

const deltaLimitDiv = 8

func (f *family) requestID() string { return f.text[:f.clientOff] }

// empty reports whether the family has no record left.
func (f *family) empty() bool {
	for _, r := range f.newest {
		if r != nil {
			return false
		}
	}
	return true
}

// grantKey returns the key in Store.grants of the record of kind k and
// signature sig, in buf if it fits.
func grantKey(buf []byte, k byte, sig string) []byte {
	return append(append(buf[:0], sig...), k)
}

// find returns the record of kind k and signature sig, or nil. s.mu must be
// held.
func (s *Store) find(k byte, sig string) *record {
	var buf [80]byte
	return s.grants[string(grantKey(buf[:], k, sig))]
}

// CreateGrant stores a copy of g, marked active. A record with the same Kind
// and Signature already present, active or not, yields an error wrapping
// [store.ErrAlreadyExists]. An invalid g.Kind is an error, and so is a
// Signature or RequestID longer together with the ClientID than 64 KB.
// When the Store is full (see [MaxGrants]) the error wraps [ErrFull].
func (s *Store) CreateGrant(_ context.Context, g *store.Grant) error {
	k, err := checkGrant(g)
	if err != nil {
		return fmt.Errorf("memory: create grant: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(k, g.Signature) != nil {
		return fmt.Errorf("memory: create %s: %w", g.Kind, store.ErrAlreadyExists)
	}
	if err := s.makeRoom(g.Kind, 1); err != nil {
		return fmt.Errorf("memory: create %s: %w", g.Kind, err)
	}
	s.insert(k, g)
	return nil
}

// checkGrant reports what makes g impossible to store whatever the Store
// holds, and returns the index of its kind.
func checkGrant(g *store.Grant) (byte, error) {
	if g == nil {
		return 0, errors.New("nil grant")
	}
	k, ok := kindIndex(g.Kind)
	if !ok {
		return 0, fmt.Errorf("invalid kind %q", g.Kind)
	}
	if len(g.Signature)+len(g.ClientID) > maxText || len(g.RequestID)+len(g.ClientID) > maxText {
		return 0, fmt.Errorf("%s: signature or request ID and client ID longer than %d bytes", g.Kind, maxText)
	}
	return k, nil
}

// makeRoom returns nil if n more records of kind may be stored, after
// removing the expired ones if the Store is full, and else an error
// wrapping [ErrFull]. A write of several records at once (a batch) checks
// them all first, passing KindAuthorizeCode if one is a code. s.mu must be
// held for writing.
func (s *Store) makeRoom(kind store.Kind, n int) error {
	limit := s.maxGrants + s.maxGrants/4
	if kind == store.KindAuthorizeCode || kind == store.KindPushedRequest {
		limit = s.maxGrants // new authorizations; see MaxGrants
	}
	if len(s.grants)+n <= limit {
		return nil
	}
	s.sweepGrants(s.now(), math.MaxInt)
	if len(s.grants)+n <= limit {
		return nil
	}
	if kind == store.KindAuthorizeCode {
		return fmt.Errorf("%w: %d records, no room for a new grant", ErrFull, len(s.grants))
	}
	return fmt.Errorf("%w: %d records", ErrFull, len(s.grants))
}

// insert stores a copy of g, of kind index k, active. The caller has
// checked that no record has its key and that there is room. s.mu must be
// held for writing.
func (s *Store) insert(k byte, g *store.Grant) {
	f := s.familyFor(g)
	// Share the payload of the newest record of a kind that holds the
	// same: the access and refresh tokens of an exchange.
	payload, ref := g.Data, ""
	same := f.samePayload(payload, ref)
	if same == nil {
		payload, ref = s.encode(f, g.Data)
		same = f.samePayload(payload, ref)
	}
	// A short delta moves to the new record instead, which the provider
	// keeps longer (the refresh token, after the access token), so that
	// the older record's text goes with it.
	move := same != nil && ref != "" && len(payload) <= maxMovedDelta
	shared := same != nil && !move
	// Keep the client ID and subject only if they are not the family's.
	own := f.text[f.clientOff:f.subjectOff] != g.ClientID || f.text[f.subjectOff:] != g.Subject
	text, n := recordText(k, g, own, payload, shared)
	data := text[n:]
	switch {
	case shared:
		data = same.data
	case move:
		same.data = data
	}
	if ref == "" && len(data) > 0 {
		f.base = data
	}
	r := &record{
		text:    text[:n],
		data:    data,
		ref:     ref,
		fam:     f,
		older:   f.newest[k],
		expSec:  g.ExpiresAt.Unix(),
		expNsec: int32(g.ExpiresAt.Nanosecond()),
		keyLen:  uint16(len(g.Signature) + 1),
		active:  true,
	}
	if own {
		r.subjectOff = uint16(len(g.Signature) + 1 + len(g.ClientID))
	}
	if r.older != nil {
		r.older.newer = r
	}
	f.newest[k] = r
	s.grants[r.text[:r.keyLen]] = r
	s.grantsPeak = max(s.grantsPeak, len(s.grants))
	heap.Push(&s.grantExpiry, r)
	s.armJanitor()
}

// familyFor returns the family of g's request ID, starting it if g is its
// first record, so that the records of one request hold its IDs once.
// s.mu must be held for writing.
func (s *Store) familyFor(g *store.Grant) *family {
	f := s.families[g.RequestID]
	if f == nil {
		// Clone: a concatenation with empty strings would be the
		// caller's string itself, perhaps part of a larger one.
		f = &family{
			text:       strings.Clone(g.RequestID + g.ClientID + g.Subject),
			clientOff:  uint16(len(g.RequestID)),
			subjectOff: uint16(len(g.RequestID) + len(g.ClientID)),
		}
		s.families[f.requestID()] = f
	}
	return f
}

// encode returns how to hold data in a record of f: a delta against f's
// base, and the base, if there is one and the delta is short enough (see
// deltaLimit); else data itself and "". The delta is valid until the next
// call. s.mu must be held for writing.
func (s *Store) encode(f *family, data []byte) (payload []byte, ref string) {
	if f.base == "" || len(data) == 0 {
		return data, ""
	}
	last := &s.deltaLast
	// The refresh token of an exchange has the access token's Data: the
	// delta made for the one is the other's.
	if last.fam != f || last.base != f.base || !bytes.Equal(last.data, data) {
		last.fam, last.base, last.data = f, f.base, append(last.data[:0], data...)
		last.delta, last.ok = encodeDelta(last.delta[:0], f.base, data, deltaLimit(len(data)))
	}
	if !last.ok {
		return data, ""
	}
	return last.delta, f.base
}

// lastDelta is the last delta Store.encode made, and what from, so that it
// need not make it again for the next record.
type lastDelta struct {
	fam   *family
	base  string
	data  []byte
	delta []byte
	ok    bool
}

// samePayload returns the family's newest record of a kind that holds
// payload against ref, so that a new record need not hold a copy of its
// own; or nil if there is none, or no payload.
func (f *family) samePayload(payload []byte, ref string) *record {
	if len(payload) > 0 {
		for _, o := range f.newest {
			if o != nil && o.ref == ref && o.data == string(payload) {
				return o
			}
		}
	}
	return nil
}

// maxMovedDelta is the longest delta insert moves rather than shares.
const maxMovedDelta = 256

// recordText lays out in one allocation the text of g's record of kind
// index k: its key, its client ID and subject if own, and its payload
// unless shared; n is where the payload starts.
func recordText(k byte, g *store.Grant, own bool, payload []byte, shared bool) (text string, n int) {
	n = len(g.Signature) + 1
	if own {
		n += len(g.ClientID) + len(g.Subject)
	}
	var b strings.Builder
	if shared {
		b.Grow(n)
	} else {
		b.Grow(n + len(payload))
	}
	b.WriteString(g.Signature)
	b.WriteByte(k)
	if own {
		b.WriteString(g.ClientID)
		b.WriteString(g.Subject)
	}
	if !shared {
		b.Write(payload)
	}
	return b.String(), n
}

// grant returns a copy of r as a store.Grant, whose signature is sig.
// None of its strings is part of r.text, which may hold the Data: a caller
// that keeps one (in a cache, say) keeps no more than its bytes, or the
// family's few. The error is that of a delta that does not decode: a bug.
func (r *record) grant(sig string) (*store.Grant, error) {
	client, subject := r.clientSubject()
	if r.subjectOff != 0 {
		client, subject = strings.Clone(client), strings.Clone(subject)
	}
	g := &store.Grant{
		Kind:      kindOf(r.kind()),
		Signature: sig,
		RequestID: r.fam.requestID(),
		ClientID:  client,
		Subject:   subject,
		ExpiresAt: time.Unix(r.expSec, int64(r.expNsec)).UTC(),
		Active:    r.active,
	}
	switch {
	case r.ref != "":
		data, err := decodeDelta(r.ref, r.data)
		if err != nil {
			return nil, fmt.Errorf("memory: grant %s: %w", g.Kind, err)
		}
		g.Data = data
	case r.data != "":
		g.Data = []byte(r.data)
	}
	return g, nil
}

// Grant returns a copy of the record of that kind and signature, active or
// not and expired or not (until the Store forgets it), or an error wrapping
// [store.ErrNotFound].
func (s *Store) Grant(_ context.Context, kind store.Kind, signature string) (*store.Grant, error) {
	k, ok := kindIndex(kind)
	if !ok {
		return nil, fmt.Errorf("memory: grant: invalid kind %q", kind)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.find(k, signature)
	if r == nil {
		return nil, fmt.Errorf("memory: grant %s: %w", kind, store.ErrNotFound)
	}
	return r.grant(signature)
}

// Consume marks the active record of that kind and signature inactive. Of
// concurrent calls, exactly one returns nil; an inactive record yields an
// error wrapping [store.ErrConsumed], a missing one [store.ErrNotFound].
func (s *Store) Consume(_ context.Context, kind store.Kind, signature string) error {
	k, ok := kindIndex(kind)
	if !ok {
		return fmt.Errorf("memory: consume: invalid kind %q", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.find(k, signature)
	switch {
	case r == nil:
		return fmt.Errorf("memory: consume %s: %w", kind, store.ErrNotFound)
	case !r.active:
		return fmt.Errorf("memory: consume %s: %w", kind, store.ErrConsumed)
	}
	r.active = false
	return nil
}

// Delete removes the record of that kind and signature. Of concurrent calls,
// exactly one returns nil; a missing record yields an error wrapping
// [store.ErrNotFound].
func (s *Store) Delete(_ context.Context, kind store.Kind, signature string) error {
	k, ok := kindIndex(kind)
	if !ok {
		return fmt.Errorf("memory: delete: invalid kind %q", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.find(k, signature)
	if r == nil {
		return fmt.Errorf("memory: delete %s: %w", kind, store.ErrNotFound)
	}
	s.remove(r)
	return nil
}

// Revoke marks every record of that kind with the given request ID inactive.
// The records are kept, so that a replay is recognized as one. It is not an
// error if there is none.
func (s *Store) Revoke(_ context.Context, kind store.Kind, requestID string) error {
	k, ok := kindIndex(kind)
	if !ok {
		return fmt.Errorf("memory: revoke: invalid kind %q", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoke(k, requestID)
	return nil
}

// revoke marks the records of kind index k and the request inactive. s.mu
// must be held for writing.
func (s *Store) revoke(k byte, requestID string) {
	if f := s.families[requestID]; f != nil {
		for r := f.newest[k]; r != nil; r = r.older {
			r.active = false
		}
	}
}

// DeleteExpired removes every grant record whose ExpiresAt is before the given
// time, active or not, and returns how many it removed. A record with a zero
// ExpiresAt counts as expired. It implements [store.ExpiredDeleter]. The
// Store also removes expired records on its own (see [Store]), so a call is
// needed only to remove them sooner.
//
// It also forgets the throttle keys (see [Store.AddHit]) whose window ended
// at or before that time, and the login-session records (see
// [Store.CreateSession]) whose ExpiresAt is before it; they are not counted
// in the result.
func (s *Store) DeleteExpired(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.sweepGrants(before, math.MaxInt)
	s.compactGrants()
	s.sweepThrottle(before)
	s.sessions.deleteExpired(before)
	return n, nil
}

// sweepGrants removes up to max grant records whose ExpiresAt is before
// before, soonest first, and returns how many it removed. s.mu must be held
// for writing.
func (s *Store) sweepGrants(before time.Time, max int) int {
	sec, nsec := before.Unix(), int32(before.Nanosecond())
	n := 0
	for ; n < max && len(s.grantExpiry) > 0; n++ {
		r := s.grantExpiry[0]
		if r.expSec > sec || r.expSec == sec && r.expNsec >= nsec {
			break
		}
		s.remove(r)
	}
	return n
}

// remove deletes r from the grants, its family and the expiry heap. s.mu
// must be held for writing.
func (s *Store) remove(r *record) {
	delete(s.grants, r.text[:r.keyLen])
	heap.Remove(&s.grantExpiry, int(r.heapIndex))
	f := r.fam
	if r.newer != nil {
		r.newer.older = r.older
	} else {
		f.newest[r.kind()] = r.older
	}
	if r.older != nil {
		r.older.newer = r.newer
	}
	r.newer, r.older, r.fam = nil, nil, nil
	if f.empty() {
		delete(s.families, f.requestID())
	}
}

// compactMin is the fewest grant records for which compactGrants rebuilds
// the indexes.
const compactMin = 4096

// compactGrants rebuilds the grant indexes once they hold a quarter or less
// of the most records they held: Go maps and slices keep the room they
// grew to, so without it a flood that has expired would keep its index
// memory. The cost, linear in the records left, is paid for by the three
// quarters removed since. s.mu must be held for writing.
func (s *Store) compactGrants() {
	if s.grantsPeak < compactMin || len(s.grants) > s.grantsPeak/4 {
		return
	}
	grants := make(map[string]*record, len(s.grants))
	for k, r := range s.grants {
		grants[k] = r
	}
	families := make(map[string]*family, len(s.families))
	for k, f := range s.families {
		families[k] = f
	}
	s.grants, s.families = grants, families
	s.grantExpiry = slices.Clip(append(expiryHeap[*record](nil), s.grantExpiry...))
	s.grantsPeak = len(s.grants)
}
