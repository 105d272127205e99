package memory

import "time"

// expiring is an entry of an expiryHeap: it tells when it expires and is
// told where it sits in the heap (for heap.Fix and heap.Remove).
type expiring interface {
	expiresAt() time.Time
	setIndex(i int)
}

// expiryHeap is a min-heap of entries by expiry, soonest first, for
// container/heap: how the Store forgets expired grant records, consents and
// throttle keys, and which consents and throttle keys it evicts first when
// full.
type expiryHeap[E expiring] []E

func (h expiryHeap[E]) Len() int           { return len(h) }
func (h expiryHeap[E]) Less(i, j int) bool { return h[i].expiresAt().Before(h[j].expiresAt()) }
func (h expiryHeap[E]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].setIndex(i)
	h[j].setIndex(j)
}

func (h *expiryHeap[E]) Push(x any) {
	e := x.(E)
	e.setIndex(len(*h))
	*h = append(*h, e)
}

func (h *expiryHeap[E]) Pop() any {
	old := *h
	e := old[len(old)-1]
	var zero E
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	return e
}
