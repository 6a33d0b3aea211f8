package archive

import (
	"context"
	"math"

	"github.com/maypok86/otter/v2"

	"starcite/fsm"
)

// cachedAdapter fronts an adapter with an in-memory read cache of 256-event
// chunks (docs/operations.md#archive-reads), bounded by the bytes of event
// JSON it holds.
//
// An entry holds the contiguous run of events stored from the chunk's first
// seq: all 256 for a complete chunk, fewer for the chunk at the end of the
// archive. Because stored events never change or disappear (the first
// write of a seq wins), such a run stays true forever; it only grows as the
// archive does. So a request is served from the entry exactly when the
// entry's run covers every seq of the chunk that the request asks for;
// otherwise the whole chunk is read from the adapter and the entry replaced.
// A partial run is never taken to mean "these are all the events".
//
// WriteEvents drops the entries of the chunks it touched that were not
// complete (they can only have grown); complete entries stay.
type cachedAdapter struct {
	Adapter
	cache *otter.Cache[cacheKey, *cacheChunk]
}

type cacheKey struct {
	session string
	start   uint64
}

type cacheChunk struct {
	tenant string      // rendering tenant (upstream lines carry none)
	events []fsm.Event // seqs start, start+1, ..., contiguous, 1..256 of them
	weight uint32
}

// NewCached wraps a with a read cache holding at most maxBytes bytes of
// event JSON; maxBytes <= 0 returns a unchanged.
func NewCached(a Adapter, maxBytes int64) Adapter {
	if maxBytes <= 0 {
		return a
	}
	return &cachedAdapter{
		Adapter: a,
		cache: otter.Must(&otter.Options[cacheKey, *cacheChunk]{
			MaximumWeight: uint64(maxBytes),
			Weigher:       func(_ cacheKey, v *cacheChunk) uint32 { return v.weight },
		}),
	}
}

func (c *cachedAdapter) Close() error {
	c.cache.InvalidateAll()
	return c.Adapter.Close()
}

func (c *cachedAdapter) WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	err := c.Adapter.WriteEvents(ctx, sessionID, events)
	// Also after a failure: part of the batch may have been stored.
	for _, run := range splitChunks(events) {
		k := cacheKey{sessionID, run.start}
		if v, ok := c.cache.GetIfPresent(k); ok && len(v.events) < ChunkSize {
			c.cache.Invalidate(k)
		}
	}
	return err
}

func (c *cachedAdapter) ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	from, to, ok := normRange(from, to)
	if !ok || sessionID == "" {
		return nil, nil
	}
	first, last := chunkStart(from), chunkStart(to)
	if (last-first)/ChunkSize >= maxProbedChunks {
		// A scan of the whole archive, not a replay read: leave the cache alone.
		return c.Adapter.ReadEvents(ctx, sessionID, tenantID, from, to)
	}
	n := int((last-first)/ChunkSize) + 1
	parts := make([][]fsm.Event, n)
	hit := make([]bool, n)
	for i := range n {
		start := first + uint64(i)*ChunkSize
		lo, hi := max(from, start), min(to, start+ChunkSize-1)
		if v, ok := c.cache.GetIfPresent(cacheKey{sessionID, start}); ok && v.tenant == tenantID &&
			hi < start+uint64(len(v.events)) {
			parts[i], hit[i] = v.events[lo-start:hi-start+1], true
		}
	}
	// Read each run of consecutive missed chunks with one adapter call.
	for i := 0; i < n; {
		if hit[i] {
			i++
			continue
		}
		j := i
		for j+1 < n && !hit[j+1] {
			j++
		}
		runFrom := first + uint64(i)*ChunkSize
		runTo := first + uint64(j)*ChunkSize + ChunkSize - 1
		if runTo < runFrom { // overflow at the very top of the seq space
			runTo = math.MaxUint64
		}
		evs, err := c.Adapter.ReadEvents(ctx, sessionID, tenantID, runFrom, runTo)
		if err != nil {
			return nil, err
		}
		for k := i; k <= j; k++ {
			start := first + uint64(k)*ChunkSize
			var chunk []fsm.Event
			for len(evs) > 0 && evs[0].Seq < start+ChunkSize && evs[0].Seq >= start {
				chunk = append(chunk, evs[0])
				evs = evs[1:]
			}
			for len(evs) > 0 && evs[0].Seq < start { // out of order input: drop
				evs = evs[1:]
			}
			c.remember(sessionID, tenantID, start, chunk)
			lo, hi := max(from, start), min(to, start+ChunkSize-1)
			for _, e := range chunk {
				if e.Seq >= lo && e.Seq <= hi {
					parts[k] = append(parts[k], e)
				}
			}
		}
		i = j + 1
	}
	var size int
	for _, p := range parts {
		size += len(p)
	}
	if size == 0 {
		return nil, nil
	}
	out := make([]fsm.Event, 0, size)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// remember caches the contiguous run of chunk (the events read for the
// chunk starting at start) that begins at start.
func (c *cachedAdapter) remember(sessionID, tenantID string, start uint64, chunk []fsm.Event) {
	n := 0
	for n < len(chunk) && chunk[n].Seq == start+uint64(n) {
		n++
	}
	if n == 0 {
		return
	}
	var weight uint64
	for _, e := range chunk[:n] {
		weight += uint64(len(e.JSON))
	}
	v := &cacheChunk{tenant: tenantID, events: chunk[:n:n], weight: uint32(min(weight, math.MaxUint32))}
	c.cache.Compute(cacheKey{sessionID, start}, func(old *cacheChunk, found bool) (*cacheChunk, otter.ComputeOp) {
		if found && old.tenant == tenantID && len(old.events) >= n {
			return old, otter.CancelOp // a concurrent read cached as much or more
		}
		return v, otter.WriteOp
	})
}
