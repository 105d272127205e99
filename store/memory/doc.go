// Package memory is an in-memory backend for pixie: one [Store] implements
// [store.Clients], [store.Users], [store.Grants], [store.Keys],
// [store.Consents], [store.Throttle] and [store.Sessions], and the optional
// [store.ExpiredDeleter] and [store.Batcher].
//
// It suits tests, demos and a single-process server that can afford to lose
// its grants and keys on restart. Several replicas cannot share it: use the
// SQL backend for that.
//
// Clients and users are registered up front with [Store.AddClient] and
// [Store.AddUser]; the storage interfaces themselves only read them. Grant
// records, throttle keys and consents need no call to be cleaned up: the
// Store forgets them once expired, on a timer that is armed only while it
// holds some (so an empty Store costs nothing, a dropped one is collected
// once what it holds has expired, and none needs a Close), judging expiry
// by its callers' clock (see [Store.AddHit]);
// [Store.DeleteExpired] removes expired records sooner. Each consent write
// removes the expired ones too. The Store holds at most
// [DefaultMaxThrottleKeys] throttle keys and [MaxConsents] consents,
// evicting those that expire soonest to make room. Grant records are
// bounded by [MaxGrants] without eviction: past it the Store refuses new
// authorization codes, and a quarter beyond it any record, with an error
// wrapping [ErrFull]. Login sessions are bounded too: a new one removes the
// oldest that have expired, and the oldest of all beyond [MaxSessions].
//
// A grant record takes its Data and about 250 bytes more; the access and
// refresh tokens of one exchange, whose Data the provider serializes from
// the same request, share one copy of it, and a record whose Data is mostly
// that of an earlier record of its request (the tokens of a rotation, and
// the rotated refresh tokens kept until they expire to detect their reuse)
// keeps only a delta against it, some 40 bytes with the provider's Data.
// BenchmarkGrantFootprint measures it: some 1.7 KB a grant before its first
// refresh, and 320 bytes more for each rotated refresh token.
//
// A Store is safe for concurrent use. Every value it returns is a fresh copy
// the caller may modify, and it keeps its own copies of the values passed in.
// Its methods do not block, so they ignore their context.
//
// The contracts it implements are those of package store, checked by the
// conformance suite in [github.com/pixieauth/pixie/store/storetest].
package memory
