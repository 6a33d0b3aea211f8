package e2e

import (
	"fmt"
	"sync"
	"testing"

	"starcite/test/harness"
)

// TestContractProducerEviction: a session remembers at most 10,000
// producers; beyond that the producer whose last append has the smallest
// session seq is forgotten and must start again at 1
// (docs/api.md#producer-sequencing).
func TestContractProducerEviction(t *testing.T) {
	if testing.Short() {
		t.Skip("10,001 appends")
	}
	n := harness.StartNode(t, harness.Options{})
	createOK(t, n, `{"id":"many"}`)
	const producers = 10_001
	body := func(producer, seq int) string {
		return fmt.Sprintf(`{"type":"msg","payload":{"p":%d},"producer_id":"p%05d","producer_seq":%d}`, producer, producer, seq)
	}
	bySeq := make([]int, producers+1) // session seq -> producer
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				r, err := tryDo(n, "POST", "/v1/sessions/many/append", body(p, 1), nil)
				if err != nil || r.status != 201 {
					t.Errorf("producer %d: %v %v", p, r, err)
					continue
				}
				m := object(t, r)
				seq := num(t, "seq", m["seq"])
				mu.Lock()
				bySeq[seq] = p
				mu.Unlock()
			}
		}()
	}
	// The first producer is appended alone so that it certainly holds seq 1.
	wantAppend(t, appendReq(t, n, "many", body(0, 1)), 1, 1, false)
	bySeq[1] = 0
	for p := 1; p < producers; p++ {
		work <- p
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := lastSeq(t, n, "many"); got != producers {
		t.Fatalf("last_seq %d, want %d", got, producers)
	}
	first, second, third := bySeq[1], bySeq[2], bySeq[3]
	// The producer of seq 1 was forgotten: it must start again at 1.
	wantErr(t, appendReq(t, n, "many", body(first, 2)), 409, "producer_seq_conflict",
		fmt.Sprintf(producerConflictFmt, fmt.Sprintf("p%05d", first), 1, 2))
	// The producer of seq 2 is still known: its retry is deduped.
	wantAppend(t, appendReq(t, n, "many", body(second, 1)), 2, producers, true)
	wantErr(t, appendReq(t, n, "many", body(second, 3)), 409, "producer_seq_conflict",
		fmt.Sprintf(producerConflictFmt, fmt.Sprintf("p%05d", second), 2, 3))
	// An exact retry of the forgotten producer's event is a new event, which
	// in turn evicts the producer of seq 2.
	wantAppend(t, appendReq(t, n, "many", body(first, 1)), producers+1, producers+1, false)
	wantErr(t, appendReq(t, n, "many", body(second, 2)), 409, "producer_seq_conflict",
		fmt.Sprintf(producerConflictFmt, fmt.Sprintf("p%05d", second), 1, 2))
	wantAppend(t, appendReq(t, n, "many", body(third, 1)), 3, producers+1, true)
	wantAppend(t, appendReq(t, n, "many", body(first, 1)), producers+1, producers+1, true)
}
