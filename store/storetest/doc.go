// Package storetest is the conformance suite of the storage contracts of
// package [github.com/pixieauth/pixie/store]. Every backend pixie ships runs it,
// and a team that writes its own backend runs it too: see [Run].
//
// The suite checks behaviour through the interfaces only: not-found and
// duplicate errors, that returned values are copies, that records survive a
// round trip, that [store.Grants.Consume] and [store.Grants.Delete] are
// atomic under 50 concurrent callers, and that [store.Throttle.AddHit]
// counts 50 concurrent events of one key as 1 to 50, each once (run it
// with -race). The throttle tests pass explicit times and never sleep.
// Optional capabilities, such as deleting expired grants, are tested when
// the backend has them: for [store.Batcher], that a batch is written all or
// none whichever of its parts fails (a consumed or missing record to
// consume, a record to create that exists), that its revocations spare its
// own new records, and that of 20 concurrent batches consuming one record
// exactly one is applied.
//
// It uses the standard testing package only, and never calls t.Parallel: each
// subtest gets its own Stores from the constructor passed to [Run].
package storetest
