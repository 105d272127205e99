// Package storetest is the conformance suite of the storage contracts of
// package [github.com/pixieauth/pixie/store]. Every backend pixie ships runs it,
// and a team that writes its own backend runs it too: see [Run].
//
// The suite checks behaviour through the interfaces only: not-found and
// duplicate errors, that returned values are copies, that records survive a
// round trip, and that [store.Grants.Consume] and [store.Grants.Delete] are
// atomic under 50 concurrent callers (run it with -race). Optional
// capabilities, such as deleting expired grants, are tested when the backend
// has them.
//
// It uses the standard testing package only, and never calls t.Parallel: each
// subtest gets its own Stores from the constructor passed to [Run].
package storetest
