package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"

	"starcite/test/harness"
)

// TestConcurrentAppendsOneSession: 100 producers appending to one session
// at once get seqs 1..N with no gap and no duplicate, and the log holds
// each acknowledged event at its acknowledged seq.
func TestConcurrentAppendsOneSession(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("hot", nil)
	const producers, each = 100, 10
	type ack struct {
		producer string
		pseq     uint64
		seq      uint64
	}
	acks := make(chan ack, producers*each)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("p%03d", p)
			for i := uint64(1); i <= each; i++ {
				st, r, b, err := n.Append("hot", id, i, map[string]any{"p": id, "i": i})
				if err != nil || st != 201 || r.Deduped {
					t.Errorf("%s #%d: %d %s %v", id, i, st, b, err)
					return
				}
				acks <- ack{id, i, r.Seq}
			}
		}()
	}
	wg.Wait()
	close(acks)
	if t.Failed() {
		t.FailNow()
	}
	bySeq := map[uint64]ack{}
	for a := range acks {
		if prev, dup := bySeq[a.seq]; dup {
			t.Fatalf("seq %d acknowledged twice: %+v and %+v", a.seq, prev, a)
		}
		bySeq[a.seq] = a
	}
	seqs := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if len(seqs) != producers*each || seqs[0] != 1 || seqs[len(seqs)-1] != producers*each {
		t.Fatalf("acknowledged seqs are not 1..%d: %d seqs from %d to %d", producers*each, len(seqs), seqs[0], seqs[len(seqs)-1])
	}
	evs, err := n.Events("hot")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != producers*each {
		t.Fatalf("log holds %d events, want %d", len(evs), producers*each)
	}
	for i, raw := range evs {
		var ev struct {
			Seq         uint64 `json:"seq"`
			ProducerID  string `json:"producer_id"`
			ProducerSeq uint64 `json:"producer_seq"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		a := bySeq[ev.Seq]
		if ev.Seq != uint64(i+1) || ev.ProducerID != a.producer || ev.ProducerSeq != a.pseq {
			t.Fatalf("event %d is %s #%d at seq %d; acknowledged %+v", i+1, ev.ProducerID, ev.ProducerSeq, ev.Seq, a)
		}
	}
}

// TestParallelSessions: 50 sessions appended to in parallel each end up
// with exactly their own events, in order.
func TestParallelSessions(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	const sessions, each = 50, 20
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("par-%02d", s)
			if st, b, err := n.TryDo("POST", "/v1/sessions", map[string]any{"id": id}, nil); err != nil || st != 201 {
				t.Errorf("create %s: %d %s %v", id, st, b, err)
				return
			}
			for i := uint64(1); i <= each; i++ {
				st, r, b, err := n.Append(id, "w", i, map[string]any{"s": id, "i": i})
				if err != nil || st != 201 || r.Seq != i {
					t.Errorf("%s #%d: %d %s %v", id, i, st, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for s := 0; s < sessions; s++ {
		id := fmt.Sprintf("par-%02d", s)
		evs, err := n.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != each {
			t.Fatalf("%s: %d events", id, len(evs))
		}
		for i, raw := range evs {
			var ev struct {
				Seq     uint64         `json:"seq"`
				Payload map[string]any `json:"payload"`
			}
			json.Unmarshal(raw, &ev)
			if ev.Seq != uint64(i+1) || ev.Payload["s"] != id {
				t.Fatalf("%s event %d: %s", id, i+1, raw)
			}
		}
	}
}
