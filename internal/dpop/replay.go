package dpop

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// defaultMemoryReplayMax is the bound [NewMemoryReplay] uses when given a
// max below 1.
const defaultMemoryReplayMax = 100_000

// errReplayFull is returned by a memory Replay that holds max live keys.
var errReplayFull = errors.New("dpop: replay cache is full of live proofs")

// NewMemoryReplay returns a [Checker.Replay] that keeps the keys in this
// process, for resource servers without shared storage. It holds at most
// max keys (100 000 when max < 1). Each call first forgets the keys whose
// expiresAt has passed by the wall clock (time.Now); when max live keys
// remain it refuses the new proof with an error (not an [*Error]) rather
// than forget a live key, which would let that proof be replayed. Servers
// behind a load balancer need a shared Replay instead. It is safe for
// concurrent use.
func NewMemoryReplay(max int) func(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	if max < 1 {
		max = defaultMemoryReplayMax
	}
	r := &memoryReplay{max: max, keys: make(map[string]struct{})}
	return r.record
}

type memoryReplay struct {
	mu   sync.Mutex
	max  int
	keys map[string]struct{}
	exp  expiryHeap
}

func (r *memoryReplay) record(_ context.Context, key string, expiresAt time.Time) (bool, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.exp) > 0 && r.exp[0].at.Before(now) {
		e := heap.Pop(&r.exp).(entry)
		delete(r.keys, e.key)
	}
	if _, seen := r.keys[key]; seen {
		return false, nil
	}
	if len(r.keys) >= r.max {
		return false, errReplayFull
	}
	r.keys[key] = struct{}{}
	heap.Push(&r.exp, entry{key: key, at: expiresAt})
	return true, nil
}

type entry struct {
	key string
	at  time.Time
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
