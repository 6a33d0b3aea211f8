package archive

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"starcite/fsm"
)

// memAdapter is an in-memory adapter that counts reads, for cache tests.
type memAdapter struct {
	mu     sync.Mutex
	events map[string]map[uint64]fsm.Event
	reads  atomic.Int64
}

func newMemAdapter() *memAdapter { return &memAdapter{events: map[string]map[uint64]fsm.Event{}} }

func (m *memAdapter) PutSession(context.Context, Session) error       { return nil }
func (m *memAdapter) UpdateSession(context.Context, Session) error    { return nil }
func (m *memAdapter) PutNodeMarker(context.Context, NodeMarker) error { return nil }
func (m *memAdapter) GetNodeMarker(context.Context, string) (NodeMarker, error) {
	return NodeMarker{}, ErrNotFound
}
func (m *memAdapter) GetSession(context.Context, string) (Session, error) {
	return Session{}, ErrNotFound
}
func (m *memAdapter) Name() string { return "mem" }
func (m *memAdapter) Close() error { return nil }

func (m *memAdapter) WriteEvents(_ context.Context, sid string, evs []fsm.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events[sid] == nil {
		m.events[sid] = map[uint64]fsm.Event{}
	}
	for _, e := range evs {
		if _, ok := m.events[sid][e.Seq]; !ok {
			m.events[sid][e.Seq] = e
		}
	}
	return nil
}

func (m *memAdapter) ReadEvents(_ context.Context, sid, _ string, from, to uint64) ([]fsm.Event, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []fsm.Event
	for s := max(from, 1); s <= to && s < 1<<20; s++ {
		if e, ok := m.events[sid][s]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func TestCacheBudget(t *testing.T) {
	mem := newMemAdapter()
	const budget = 100 << 10
	c := NewCached(mem, budget).(*cachedAdapter)
	ctx := context.Background()
	var all []fsm.Event
	for s := uint64(1); s <= 50*ChunkSize; s++ {
		all = append(all, testEvent(s, "budget", 100)) // ~300 bytes: ~75 KiB a chunk
	}
	if err := mem.WriteEvents(ctx, "s", all); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for start := uint64(1); start <= 50*ChunkSize; start += ChunkSize {
			got, err := c.ReadEvents(ctx, "s", testTenant, start, start+ChunkSize-1)
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, fmt.Sprintf("round %d chunk %d", round, start), got, slice(all, start, start+ChunkSize-1))
			c.cache.CleanUp()
			if w := c.cache.WeightedSize(); w > budget {
				t.Fatalf("cache holds %d bytes, budget %d", w, budget)
			}
		}
	}
	if w := c.cache.WeightedSize(); w == 0 {
		t.Fatal("cache holds nothing")
	}
	// A chunk alone larger than the budget is never kept.
	small := NewCached(mem, 1000).(*cachedAdapter)
	if _, err := small.ReadEvents(ctx, "s", testTenant, 1, ChunkSize); err != nil {
		t.Fatal(err)
	}
	small.cache.CleanUp()
	if w := small.cache.WeightedSize(); w > 1000 {
		t.Fatalf("tiny cache holds %d bytes", w)
	}
}

func TestCacheHitsAndPartialChunks(t *testing.T) {
	mem := newMemAdapter()
	c := NewCached(mem, 64<<20)
	ctx := context.Background()
	reads := func(what string, want int64) {
		t.Helper()
		if got := mem.reads.Swap(0); got != want {
			t.Fatalf("%s: %d adapter reads, want %d", what, got, want)
		}
	}
	all := testEvents(1, 1100, "a")

	mustWrite(t, c, "s", all[:100])
	checkEqual(t, "1..100", mustRead(t, c, "s", 1, 100), all[:100])
	reads("first read", 1)
	checkEqual(t, "50..100", mustRead(t, c, "s", 50, 100), all[49:100])
	reads("read inside the cached run", 0)
	// Beyond the cached run: must go to the adapter, even if nothing is there.
	checkEqual(t, "1..200", mustRead(t, c, "s", 1, 200), all[:100])
	reads("read past the cached run", 1)
	checkEqual(t, "1..200 again", mustRead(t, c, "s", 1, 200), all[:100])
	reads("read past the cached run again", 1)

	// Another node archives more (not through this cache): the partial
	// entry is never served as if it were all there is.
	if err := mem.WriteEvents(ctx, "s", all[100:150]); err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "1..150 after a foreign write", mustRead(t, c, "s", 1, 150), all[:150])
	reads("read after a foreign write", 1)

	// A write through the cache drops the partial entry it touched.
	mustWrite(t, c, "s", all[150:1100])
	checkEqual(t, "1..1100", mustRead(t, c, "s", 1, 1100), all)
	reads("read of five chunks after a write", 1)
	checkEqual(t, "200..1000", mustRead(t, c, "s", 200, 1000), all[199:1000])
	reads("read of complete chunks", 0)
	checkEqual(t, "1..1100 again", mustRead(t, c, "s", 1, 1100), all)
	reads("complete chunks plus the cached part of the last", 0)
	// Complete chunks stay cached across writes; a mixed read fetches only
	// the missing run.
	mustWrite(t, c, "s", testEvents(1101, 1200, "a"))
	checkEqual(t, "1000..1200", mustRead(t, c, "s", 1000, 1200), testEvents(1000, 1200, "a"))
	reads("read across a complete and a dropped chunk", 1)

	// Another tenant rendering is a miss, not a wrong answer.
	if _, err := c.ReadEvents(ctx, "s", "other", 1, 10); err != nil {
		t.Fatal(err)
	}
	reads("other tenant", 1)
	// Sessions are separate; an empty session is not cached.
	if got := mustRead(t, c, "t", 1, 10); len(got) != 0 {
		t.Fatalf("empty session: %d events", len(got))
	}
	mustRead(t, c, "t", 1, 10)
	reads("empty session twice", 2)
}

func TestCacheConcurrentReaders(t *testing.T) {
	mem := newMemAdapter()
	c := NewCached(mem, 1<<20)
	all := testEvents(1, 2000, "c")
	mustWrite(t, c, "s", all[:1000])
	runConcurrently(t, 8, func(i int) error {
		for k := range 50 {
			from := uint64((i*131+k*17)%1900 + 1)
			got, err := c.ReadEvents(context.Background(), "s", testTenant, from, from+100)
			if err != nil {
				return err
			}
			want := slice(all[:1000], from, from+100)
			if k == 25 && i == 0 {
				if err := c.WriteEvents(context.Background(), "s", all[1000:]); err != nil {
					return err
				}
			}
			if len(got) < len(want) {
				return fmt.Errorf("read %d..%d: %d events, want at least %d", from, from+100, len(got), len(want))
			}
			for j, e := range got {
				if e.Seq != from+uint64(j) || string(e.JSON) != string(all[e.Seq-1].JSON) {
					return fmt.Errorf("read %d..%d: event %d wrong", from, from+100, j)
				}
			}
		}
		return nil
	})
}
