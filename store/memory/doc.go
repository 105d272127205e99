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
// records accumulate until deleted: call [Store.DeleteExpired] periodically
// on a long-running server. Throttle keys and consents need no call: the
// Store forgets them once expired, on a timer that is armed only while it
// holds some (so an idle or dropped Store costs nothing and needs no
// Close); each consent write removes the expired ones too. The Store holds
// at most [DefaultMaxThrottleKeys] throttle keys and [MaxConsents]
// consents, evicting those that expire soonest to make room. Login sessions
// are bounded too: a new one removes the oldest that have expired, and the
// oldest of all beyond [MaxSessions].
//
// A Store is safe for concurrent use. Every value it returns is a fresh copy
// the caller may modify, and it keeps its own copies of the values passed in.
// Its methods do not block, so they ignore their context.
//
// The contracts it implements are those of package store, checked by the
// conformance suite in [github.com/pixieauth/pixie/store/storetest].
package memory
