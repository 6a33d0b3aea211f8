package fsm

import (
	"slices"
	"strings"
)

// MaxProducers is how many producer cursors a session keeps
// (docs/api.md#producer-sequencing).
const MaxProducers = 10000

// producerOverhead approximates what one producer cursor costs beyond its
// id: the cursor, its list links and its map entry. The memory budget
// (docs/decisions.md#d18) counts both.
const producerOverhead = 160

type producerCursor struct {
	producerSeq uint64
	sessionSeq  uint64
	hash        [32]byte
	requestID   uint64
}

// producerSet holds a session's producer cursors in the order they would
// be forgotten: by the session seq of their last append, oldest first,
// ties (only a snapshot made by hand can hold any) with the larger id
// first. An append always moves its producer to the newest end (its seq is
// the session's new last seq, above every other), so the order is kept
// without sorting and the oldest cursor is forgotten in constant time.
// Replicas that applied the same entries forget the same producer.
type producerSet struct {
	byID   map[string]*producerNode
	oldest *producerNode
	newest *producerNode
	bytes  int64 // what the cursors cost (producerOverhead + id each)
}

type producerNode struct {
	id         string
	cursor     producerCursor
	prev, next *producerNode // prev is older
}

func newProducerSet() producerSet { return producerSet{byID: map[string]*producerNode{}} }

func (ps *producerSet) len() int { return len(ps.byID) }

func (ps *producerSet) get(id string) (producerCursor, bool) {
	if n, ok := ps.byID[id]; ok {
		return n.cursor, true
	}
	return producerCursor{}, false
}

// record sets a producer's cursor after an append and makes it the
// newest. Past MaxProducers the oldest cursor is forgotten.
func (ps *producerSet) record(id string, c producerCursor) {
	n, ok := ps.byID[id]
	if ok {
		ps.unlink(n)
	} else {
		n = &producerNode{id: id}
		ps.byID[id] = n
		ps.bytes += producerCost(id)
	}
	n.cursor = c
	ps.pushNewest(n)
	if len(ps.byID) > MaxProducers {
		ps.forget(ps.oldest)
	}
}

func (ps *producerSet) forget(n *producerNode) {
	ps.unlink(n)
	delete(ps.byID, n.id)
	ps.bytes -= producerCost(n.id)
}

func (ps *producerSet) unlink(n *producerNode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		ps.oldest = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		ps.newest = n.prev
	}
	n.prev, n.next = nil, nil
}

func (ps *producerSet) pushNewest(n *producerNode) {
	n.prev = ps.newest
	if ps.newest != nil {
		ps.newest.next = n
	} else {
		ps.oldest = n
	}
	ps.newest = n
}

// restore rebuilds the set from a snapshot's cursors, in any order.
func (ps *producerSet) restore(entries []producerEntry) {
	slices.SortFunc(entries, func(a, b producerEntry) int {
		if a.sessionSeq != b.sessionSeq {
			if a.sessionSeq < b.sessionSeq {
				return -1
			}
			return 1
		}
		return strings.Compare(b.id, a.id) // the larger id is the older
	})
	for _, e := range entries {
		n := &producerNode{id: e.id, cursor: e.producerCursor}
		ps.byID[e.id] = n
		ps.bytes += producerCost(e.id)
		ps.pushNewest(n)
	}
}

// entries returns the cursors sorted by producer id, as snapshots write
// them.
func (ps *producerSet) entries() []producerEntry {
	out := make([]producerEntry, 0, len(ps.byID))
	for id, n := range ps.byID {
		out = append(out, producerEntry{id: id, producerCursor: n.cursor})
	}
	slices.SortFunc(out, func(a, b producerEntry) int { return strings.Compare(a.id, b.id) })
	return out
}

func producerCost(id string) int64 { return int64(len(id) + producerOverhead) }
