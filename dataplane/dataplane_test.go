package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"starcite/app/procrun"
	"starcite/fsm"
)

func TestPlacement(t *testing.T) {
	nodes := []string{"starcite@c", "starcite@a", "starcite@b", "starcite@d", "starcite@e"}
	p, err := NewPlacement(nodes, 256, 3)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewPlacement([]string{"starcite@e", "starcite@d", "starcite@c", "starcite@b", "starcite@a"}, 256, 3)
	load := map[string]int{}
	for g := 0; g < 256; g++ {
		reps := p.Replicas(g)
		if len(reps) != 3 || fmt.Sprint(reps) != fmt.Sprint(q.Replicas(g)) {
			t.Fatalf("group %d: replicas %v vs %v (order of configuration must not matter)", g, reps, q.Replicas(g))
		}
		seen := map[string]bool{}
		for _, r := range reps {
			if seen[r] {
				t.Fatalf("group %d: %s twice", g, r)
			}
			seen[r] = true
			load[r]++
			if !p.Holds(r, g) {
				t.Fatalf("group %d: Holds(%s) false", g, r)
			}
		}
	}
	for n, l := range load { // 768 replicas over 5 nodes: about 154 each
		if l < 110 || l > 200 {
			t.Fatalf("unbalanced placement: %s holds %d replicas (%v)", n, l, load)
		}
	}
	if p.ReplicaID("starcite@a") != 1 || p.ReplicaID("starcite@e") != 5 || p.ReplicaID("starcite@x") != 0 {
		t.Fatal("replica ids must follow sorted node names")
	}
	if n, ok := p.NodeOf(2); !ok || n != "starcite@b" {
		t.Fatalf("NodeOf(2) = %s", n)
	}
	if g := p.Group("session-1"); g != q.Group("session-1") || g < 0 || g >= 256 {
		t.Fatalf("group of a session: %d", g)
	}
	for _, bad := range []struct {
		nodes []string
		rf    int
	}{{nodes, 6}, {nodes, 0}, {[]string{"a@x", "a@x"}, 1}} {
		if _, err := NewPlacement(bad.nodes, 8, bad.rf); err == nil {
			t.Fatalf("NewPlacement(%v, rf %d) accepted", bad.nodes, bad.rf)
		}
	}
}

func TestMergeEvents(t *testing.T) {
	ev := func(seqs ...uint64) []fsm.Event {
		out := make([]fsm.Event, len(seqs))
		for i, s := range seqs {
			out[i] = fsm.Event{Seq: s}
		}
		return out
	}
	seqs := func(evs []fsm.Event) string {
		var b []string
		for _, e := range evs {
			b = append(b, strconv.FormatUint(e.Seq, 10))
		}
		return fmt.Sprint(b)
	}
	tests := []struct {
		name      string
		cold, hot []fsm.Event
		after     uint64
		limit     int
		want      string
	}{
		{"archive then hot", ev(1, 2, 3), ev(4, 5), 0, 10, "[1 2 3 4 5]"},
		{"overlap dedupes", ev(3, 4, 5), ev(5, 6), 2, 10, "[3 4 5 6]"},
		{"limit", ev(1, 2, 3), ev(4), 0, 2, "[1 2]"},
		{"gap ends the run", ev(1, 2), ev(5, 6), 0, 10, "[1 2]"},
		{"missing start gives nothing", ev(3, 4), nil, 1, 10, "[]"},
		{"entries at or below after are dropped", ev(1, 2, 3), nil, 1, 10, "[2 3]"},
	}
	for _, tt := range tests {
		if got := seqs(mergeEvents(tt.cold, tt.hot, tt.after, tt.limit)); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestBatcherCoalesces: while a group's proposal is in flight, appends to
// it queue and leave together; other groups are not held up; every
// append gets its own outcome.
func TestBatcherCoalesces(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]string
	b := newBatcher(2, func(group int, batch []*pendingAppend) {
		if batch[0].cmd.ProducerID == "p0" {
			<-release // hold the first proposal of group 0 in flight
		}
		mu.Lock()
		var ids []string
		for i, pa := range batch {
			ids = append(ids, pa.cmd.ProducerID)
			pa.done <- appendOutcome{r: fsm.AppendResult{Seq: uint64(i + 1)}}
		}
		batches = append(batches, ids)
		mu.Unlock()
	})
	first := b.submit(0, &fsm.AppendEvent{ProducerID: "p0"})
	var waits []<-chan appendOutcome
	for i := 1; i <= 5; i++ {
		waits = append(waits, b.submit(0, &fsm.AppendEvent{ProducerID: "p" + strconv.Itoa(i)}))
	}
	// Group 1 is independent of group 0's queue.
	select {
	case <-b.submit(1, &fsm.AppendEvent{ProducerID: "other"}):
	case <-time.After(10 * time.Second):
		t.Fatal("group 1 waited for group 0")
	}
	close(release)
	<-first
	for _, w := range waits {
		<-w
	}
	mu.Lock()
	defer mu.Unlock()
	got := fmt.Sprint(batches)
	if got != "[[other] [p0] [p1 p2 p3 p4 p5]]" {
		t.Fatalf("batches %s", got)
	}
}

func TestBatcherCaps(t *testing.T) {
	b := &batcher{}
	q := &groupQueue{}
	for i := 0; i < maxBatchEvents+10; i++ {
		q.waiting = append(q.waiting, &pendingAppend{cmd: &fsm.AppendEvent{Body: make([]byte, 10)}})
	}
	if n := len(b.take(q)); n != maxBatchEvents {
		t.Fatalf("batch of %d events", n)
	}
	if n := len(b.take(q)); n != 10 {
		t.Fatalf("rest %d", n)
	}
	q.waiting = []*pendingAppend{{cmd: &fsm.AppendEvent{Body: make([]byte, maxBatchBytes)}},
		{cmd: &fsm.AppendEvent{Body: make([]byte, 10)}}}
	if n := len(b.take(q)); n != 1 {
		t.Fatalf("an oversized event must travel alone, batch %d", n)
	}
	if n := len(b.take(q)); n != 1 {
		t.Fatalf("then the next, batch %d", n)
	}
}

// TestGroupCommit runs a real single-node Raft group: 200 producers
// appending to one session at once all succeed with seqs 1..200, in
// fewer Raft entries than appends.
func TestGroupCommit(t *testing.T) {
	p := startPlane(t)
	ctx := context.Background()
	if err := p.Create(ctx, &fsm.CreateSession{RequestID: 1, Header: fsm.Header{ID: "s", TenantID: "t", Metadata: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	// Hold the first proposal until every other append has queued behind
	// it, so the batching is certain rather than likely.
	var flushes atomic.Int64
	flush := p.batch.flush
	p.batch.flush = func(group int, batch []*pendingAppend) {
		if flushes.Add(1) == 1 {
			for queued := 0; queued < n-1; time.Sleep(time.Millisecond) {
				p.batch.mu.Lock()
				queued = len(p.batch.groups[group].waiting)
				p.batch.mu.Unlock()
			}
		}
		flush(group, batch)
	}
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fsm.Content{Type: "t", Payload: []byte(`{}`), Actor: "a", ProducerID: "p" + strconv.Itoa(i),
				ProducerSeq: 1, Metadata: []byte("{}"), Refs: []byte("{}")}
			r, err := p.Append(ctx, &fsm.AppendEvent{RequestID: uint64(i + 1), SessionID: "s", ProducerID: c.ProducerID,
				ProducerSeq: 1, Hash: c.Hash(), Body: fsm.AppendBody(nil, &c, 1, "t")})
			if err != nil || r.Status != fsm.StatusOK {
				t.Errorf("append %d: %+v %v", i, r, err)
			}
			seqs[i] = r.Seq
		}()
	}
	wg.Wait()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs are not 1..%d: %v", n, seqs)
		}
	}
	page, err := p.Events(ctx, "s", 0, 1000, true)
	if err != nil || len(page.Events) != n {
		t.Fatalf("events: %d %v", len(page.Events), err)
	}
	// 1 + 199 queued appends in batches of at most 256: two entries.
	if f := flushes.Load(); f != 2 {
		t.Fatalf("%d appends took %d Raft entries, want 2", n, f)
	}
}

// startPlane runs a single-node, single-group data plane on a real
// Dragonboat NodeHost in a temporary directory.
func startPlane(t *testing.T) *Plane {
	t.Helper()
	self := "starcite@127.0.0.1"
	pl, err := NewPlacement([]string{self}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	port, err := procrun.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRaft(RaftConfig{Dir: t.TempDir(), Self: self, RaftPort: port, RTT: 10 * time.Millisecond, Placement: pl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.StartGroups(); err != nil {
		t.Fatal(err)
	}
	r.MarkStarted()
	deadline := time.Now().Add(30 * time.Second)
	for !r.Readiness(0).Probe.Ready {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return NewPlane(r, PlaneConfig{ProposeTimeout: 2 * time.Second, SessionTTL: time.Minute})
}

// TestDeploymentIDFollowsSecret: the Raft deployment id derives from the
// cluster secret. A data dir refuses another secret with a clear error,
// and one an earlier build created (the fixed id) still opens.
func TestDeploymentIDFollowsSecret(t *testing.T) {
	self := "starcite@127.0.0.1"
	pl, err := NewPlacement([]string{self}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	port, err := procrun.FreePort("127.0.0.1") // the Raft address is part of a data dir's identity
	if err != nil {
		t.Fatal(err)
	}
	open := func(dir, secret string, fixed uint64) error {
		r, err := OpenRaft(RaftConfig{Dir: dir, Self: self, RaftPort: port, RTT: 10 * time.Millisecond,
			Placement: pl, Secret: secret, fixedDeploymentID: fixed})
		if err == nil {
			r.Close()
		}
		return err
	}
	dir := t.TempDir()
	if err := open(dir, "cluster-secret-one", 0); err != nil {
		t.Fatal(err)
	}
	if err := open(dir, "cluster-secret-two", 0); !errors.Is(err, errOtherSecret) {
		t.Fatalf("other secret: %v, want %v", err, errOtherSecret)
	}
	if err := open(dir, "cluster-secret-one", 0); err != nil {
		t.Fatalf("the right secret after a refusal: %v", err)
	}

	legacy := t.TempDir()
	if err := open(legacy, "", legacyDeploymentID); err != nil {
		t.Fatal(err)
	}
	if err := open(legacy, "cluster-secret-one", 0); err != nil {
		t.Fatalf("data dir of an earlier build: %v", err)
	}
	if deploymentID("a") == deploymentID("b") || deploymentID("a") == legacyDeploymentID || deploymentID("") == 0 {
		t.Fatal("derived ids collide")
	}
}

// TestServeProposeRefusesInternalCommands: a forwarded ack_archived is
// refused with ErrNotForwardable and evicts nothing; a forwarded append
// commits.
func TestServeProposeRefusesInternalCommands(t *testing.T) {
	p := startPlane(t)
	ctx := context.Background()
	if err := p.Create(ctx, &fsm.CreateSession{RequestID: 1, Header: fsm.Header{ID: "s", TenantID: "t", Metadata: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	c := fsm.Content{Type: "t", Payload: []byte(`{}`), Actor: "a", ProducerID: "p", ProducerSeq: 1,
		Metadata: []byte("{}"), Refs: []byte("{}")}
	a := fsm.AppendEvent{SessionID: "s", ProducerID: "p", ProducerSeq: 1, Hash: c.Hash(), Body: fsm.AppendBody(nil, &c, 1, "t")}
	if r, err := p.ServePropose(ctx, ProposeRequest{Group: 0, Cmd: fsm.EncodeAppendEvent(&a)}); err != nil || r.Err != "" {
		t.Fatalf("forwarded append: %+v %v", r, err)
	}
	hot := p.raft.HotEvents()
	r, err := p.ServePropose(ctx, ProposeRequest{Group: 0, Cmd: fsm.EncodeAckArchived([]fsm.ArchiveMark{{SessionID: "s", Seq: 1}})})
	if !errors.Is(err, ErrNotForwardable) || r.Err == "" {
		t.Fatalf("forwarded ack_archived: %+v %v", r, err)
	}
	if got := p.raft.HotEvents(); got != hot || hot != 1 {
		t.Fatalf("hot events %d → %d", hot, got)
	}
}
