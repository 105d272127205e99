package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Group commit, on SQLite only. SQLite has one writer at a time, and a
// commit's cost is mostly fixed: BEGIN IMMEDIATE, the WAL frames of every
// page the transaction changed, the wal-index locks. A busy server's token
// requests each wrote in a transaction of their own, one after the other,
// each waiting for the single writing connection. With group commit, the
// writes of the callers that find the writer busy wait in a queue; the
// caller that finds no one writing (the leader) runs its own write and
// every queued one in one transaction, commits it once, answers every
// caller, and hands the lead to the first caller queued meanwhile. Pages
// the writes share (the last leaf of the table, of the expiry index, the
// database header) are written to the WAL once per group instead of once
// per caller, and a caller alone pays no hand-off at all: it leads.
//
// What each caller sees is what it saw with a transaction of its own:
//   - it is answered only after the COMMIT that holds its write has
//     returned, so a write that answered nil is as durable as before
//     (kill -9 loses nothing; see package sqlite's synchronous setting),
//     and a read made after the answer, on any connection, sees it;
//   - the writes of a group run one after the other, in queue order, each
//     seeing the ones before it, so a compare-and-set (Consume, the
//     consumes of ApplyGrants) has exactly one winner as before;
//   - errors are its own: a write that fails with [store.ErrNotFound],
//     [store.ErrConsumed] or [store.ErrAlreadyExists] before changing
//     anything is answered so and the group goes on; any other failure,
//     or one after the write changed rows (an ApplyGrants whose insert
//     found its key taken after it consumed), rolls the group back, is
//     answered to its caller alone, and the group's other writes run again
//     in a new transaction without it. Only a failed BEGIN or COMMIT fails
//     every write of the group, which it does not hold;
//   - a caller whose context ends while its write is still queued is
//     answered with the context's error and its write never runs; once
//     taken into a group the write runs (a group takes well under a
//     millisecond) and its caller waits for its answer.
//
// The group's transaction runs with a context that no caller's cancellation
// ends, so that one caller's deadline cannot undo the others' writes (see
// groupContext), and its statements with one that has no deadline at all,
// so that the driver does not start a goroutine per statement to watch it.
// A write alone in its group that is one statement (all but ApplyGrants)
// runs as it would without group commit: in autocommit, under its caller's
// context, without BEGIN and COMMIT.

// maxGroup is the most writes one transaction holds. A group is a handful of
// writes under load (as many as callers arrived during the last commit);
// the bound only keeps a burst's transaction, and the wait of its last
// caller, short.
const maxGroup = 64

// writeFunc is one caller's write, run in the group's transaction txCtx.
// wrote says whether it changed rows before it failed, so that its failure
// must roll back the group.
type writeFunc func(txCtx context.Context) (wrote bool, err error)

// groupState is where a queued write is.
type groupState uint8

const (
	queued groupState = iota // waiting; its caller may still withdraw it
	taken                    // in a leader's group; it will be answered
	leader                   // first in the queue, its caller told to lead
)

// groupWrite is one caller's write and the channel of its answer.
type groupWrite struct {
	ctx   context.Context // the caller's: a write whose context ended is not run
	run   writeFunc
	one   bool        // run is one statement that changes rows, the rest only reads
	state groupState  // guarded by groupCommit.mu
	wake  chan wakeup // buffered: one lead message, then one answer
}

// wakeup is what a waiting caller receives: its write's outcome, or the
// lead.
type wakeup struct {
	err  error
	lead bool
}

// groupCommit is the queue of writes of a Store on SQLite.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*groupWrite // in arrival order; queue[0] is next to lead
	leading bool          // whether a caller is leading: then the queue waits
}

// write runs w in a group transaction (see above) and returns its outcome.
// one says that w makes one statement that changes rows (and maybe reads
// after it): alone in its group, it runs without BEGIN and COMMIT, in the
// statement's own transaction, which SQLite commits as it would ours.
func (s *Store) write(ctx context.Context, one bool, w writeFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &groupWrite{ctx: ctx, run: w, one: one, wake: make(chan wakeup, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, op)
	lead := !g.leading
	if lead {
		g.leading = true
		op.state = leader
	}
	g.mu.Unlock()
	if !lead {
		up, ok := g.wait(op)
		if !ok {
			return ctx.Err()
		}
		if !up.lead {
			return up.err
		}
	}
	s.lead()
	return (<-op.wake).err // lead answered it: it was first in its group
}

// wait waits for op's answer or the lead. It returns false if the caller's
// context ended while op was still queued: op is withdrawn, never run.
func (g *groupCommit) wait(op *groupWrite) (wakeup, bool) {
	select {
	case up := <-op.wake:
		return up, true
	case <-op.ctx.Done():
	}
	g.mu.Lock()
	if op.state == queued {
		for i, q := range g.queue {
			if q == op {
				g.queue = append(g.queue[:i:i], g.queue[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		return wakeup{}, false
	}
	g.mu.Unlock()
	return <-op.wake, true // taken, or told to lead: it must
}

// lead takes the writes at the head of the queue (the leader's own first),
// applies them in one transaction, runs again those a failure rolled back,
// answers them all, and passes the lead to the next caller queued, if any.
func (s *Store) lead() {
	g := &s.group
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	ops := make([]*groupWrite, n)
	copy(ops, g.queue)
	g.queue = append(g.queue[:0:0], g.queue[n:]...)
	for _, op := range ops {
		op.state = taken
	}
	g.mu.Unlock()
	if len(ops) == 1 && ops[0].one {
		// Its caller's own statement: its context bounds it, as it
		// would without group commit.
		_, err := ops[0].run(ops[0].ctx)
		ops[0].wake <- wakeup{err: err}
		ops = nil
	}
	for len(ops) > 0 {
		ops = s.applyGroup(ops)
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].state = leader
		g.queue[0].wake <- wakeup{lead: true}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}

// applyGroup runs ops in one transaction and commits it, answering each
// op. If one fails in a way that needs the transaction rolled back, it
// rolls back, answers that op and returns the others of ops, not answered,
// to run again.
func (s *Store) applyGroup(ops []*groupWrite) (again []*groupWrite) {
	bctx, cancel := groupContext(ops)
	defer cancel()
	tx, err := s.db.BeginTx(bctx, nil)
	if err != nil {
		answer(ops, fmt.Errorf("sqlstore: begin transaction: %w", err))
		return nil
	}
	// The statements run with a context that carries the transaction and
	// no deadline: the driver watches none, and starts no goroutine each.
	txCtx := context.WithValue(context.Background(), txKey{s}, tx)
	done := make([]*groupWrite, 0, len(ops)) // in the transaction, to answer at its commit
	for i, op := range ops {
		if err := op.ctx.Err(); err != nil {
			op.wake <- wakeup{err: err}
			continue
		}
		wrote, err := op.run(txCtx)
		switch {
		case err == nil:
			done = append(done, op)
		case !wrote && isStoreOutcome(err):
			op.wake <- wakeup{err: err}
		default:
			// The rollback's own error changes nothing: the others run
			// again in a new transaction, which fails if this one is stuck.
			_ = s.Rollback(txCtx)
			op.wake <- wakeup{err: err}
			return append(done, ops[i+1:]...)
		}
	}
	answer(done, s.Commit(txCtx))
	return nil
}

// groupContext is the context of a group's transaction: no caller's
// cancellation ends it, so that none undoes the others' writes, but it
// ends at the latest deadline of the callers' contexts, when each of them
// has given up, so that a group waiting for a lock another process holds
// does not outwait them all. With a caller without a deadline, it has none.
func groupContext(ops []*groupWrite) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, op := range ops {
		d, ok := op.ctx.Deadline()
		if !ok {
			return context.Background(), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// answer gives every op of ops the outcome err.
func answer(ops []*groupWrite, err error) {
	for _, op := range ops {
		op.wake <- wakeup{err: err}
	}
}

// isStoreOutcome reports whether err is an answer about the records, which
// a write gives without changing anything: the transaction stays good.
func isStoreOutcome(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConsumed) ||
		errors.Is(err, store.ErrAlreadyExists)
}
