package bench

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

func TestOpenScheduleAt(t *testing.T) {
	start := time.Unix(1000, 0)
	s := openSchedule{start: start, rate: 1000}
	for _, k := range []int64{0, 1, 999, 1000, 123456} {
		if got, want := s.at(k), start.Add(time.Duration(k)*time.Millisecond); !got.Equal(want) {
			t.Errorf("at(%d) = %v, want %v", k, got, want)
		}
	}
	// A rate that does not divide a second: no drift from rounding.
	s.rate = 3
	if got, want := s.at(3_000_000), start.Add(1_000_000*time.Second); !got.Equal(want) {
		t.Errorf("at(3e6) at 3/s = %v, want %v", got, want)
	}
}

// A slow consumer must not move the schedule: each item keeps its due
// time, so the latency measured from it includes the wait.
func TestDispatchOpenLoopKeepsScheduleWhenConsumerIsSlow(t *testing.T) {
	sched := openSchedule{start: time.Now(), rate: 1000}
	end := sched.start.Add(50 * time.Millisecond)
	out := make(chan openItem) // unbuffered: the dispatcher waits for the consumer
	go dispatchOpenLoop(context.Background(), sched, end, out)
	var n int64
	var lastLate time.Duration
	for it := range out {
		if it.k != n {
			t.Fatalf("item %d arrived as number %d", it.k, n)
		}
		if !it.due.Equal(sched.at(n)) {
			t.Fatalf("item %d due %v, want %v", n, it.due, sched.at(n))
		}
		lastLate = time.Since(it.due)
		time.Sleep(4 * time.Millisecond) // 4x slower than the offered rate
		n++
	}
	if n != 50 {
		t.Errorf("dispatched %d items over 50 ms at 1000/s, want 50", n)
	}
	// 50 items at 4 ms each: the last is handed out ~150 ms late.
	if lastLate < 100*time.Millisecond {
		t.Errorf("last item handed out %v after its due time; the schedule moved with the consumer", lastLate)
	}
}

func TestDispatchOpenLoopPacesAndStops(t *testing.T) {
	sched := openSchedule{start: time.Now(), rate: 200}
	out := make(chan openItem, 1000)
	dispatchOpenLoop(context.Background(), sched, sched.start.Add(100*time.Millisecond), out)
	if got := len(out); got != 20 {
		t.Errorf("%d items in 100 ms at 200/s, want 20", got)
	}
	for it := range out {
		if early := time.Until(it.due); early > 0 {
			t.Errorf("item %d handed out %v before its due time", it.k, early)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out = make(chan openItem)
	done := make(chan struct{})
	go func() {
		dispatchOpenLoop(ctx, openSchedule{start: time.Now(), rate: 1}, time.Now().Add(time.Hour), out)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("dispatcher did not stop on a cancelled context")
	}
}

func TestAppendBody(t *testing.T) {
	for _, size := range []int{0, 60, 200, 1000} {
		b := appendBody(nil, "prod-1", 42, 123456789, 7, size)
		var v struct {
			Type        string          `json:"type"`
			ProducerID  string          `json:"producer_id"`
			ProducerSeq uint64          `json:"producer_seq"`
			Payload     json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("size %d: %s: %v", size, b, err)
		}
		if v.Type != "bench" || v.ProducerID != "prod-1" || v.ProducerSeq != 42 {
			t.Errorf("size %d: fields %+v", size, v)
		}
		if size >= 60 && len(v.Payload) != size {
			t.Errorf("payload of %d bytes, want %d: %s", len(v.Payload), size, v.Payload)
		}
		if ts, n := frameField(b, `"bench_t":`, 0); n < 0 || ts != 123456789 {
			t.Errorf("bench_t = %d (%d)", ts, n)
		}
		if i, n := frameField(b, `"bench_i":`, 0); n < 0 || i != 7 {
			t.Errorf("bench_i = %d (%d)", i, n)
		}
	}
}

func TestFrameLastSeq(t *testing.T) {
	one := `{"seq":41,"type":"bench","payload":{"bench_i":1},"producer_id":"p","producer_seq":9,"refs":{"to_seq":3}}`
	if n, last := frameLastSeq([]byte(one)); n != 1 || last != 41 {
		t.Errorf("object frame: %d events, last %d", n, last)
	}
	arr := "[" + one + "," + strings.Replace(one, `"seq":41`, `"seq":42`, 1) + "]"
	if n, last := frameLastSeq([]byte(arr)); n != 2 || last != 42 {
		t.Errorf("array frame: %d events, last %d", n, last)
	}
	if n, _ := frameLastSeq([]byte(`{"producer_seq":3}`)); n != 0 {
		t.Errorf("producer_seq counted as seq")
	}
}

func TestOwnedSessionsCoverEverySessionOnce(t *testing.T) {
	for _, producers := range []int{1, 3, 16, 64, 256} {
		seen := make([]int, 256)
		for p := range producers {
			for _, s := range ownedSessions(p, producers, 256) {
				seen[s]++
			}
		}
		for s, n := range seen {
			if n != 1 {
				t.Fatalf("%d producers: session %d has %d producers", producers, s, n)
			}
		}
	}
	// More producers than sessions: each still gets one.
	if got := ownedSessions(300, 512, 256); len(got) != 1 || got[0] != 44 {
		t.Errorf("producer 300 of 512 over 256 sessions: %v", got)
	}
}

func TestProducerSessionRetriesUnknownOutcomes(t *testing.T) {
	c := &benchClient{urls: []string{"http://127.0.0.1:1"}, epoch: time.Now()}
	ps := newProducerSession(c, 0, "s", "p")
	first := string(ps.next(c, 1, 200))
	ps.done("503 raft_timeout")
	if again := string(ps.next(c, 2, 200)); again != first {
		t.Error("a 503 was not retried with the identical body")
	}
	ps.done("transport: timeout")
	if again := string(ps.next(c, 3, 200)); again != first {
		t.Error("a request without reply was not retried with the identical body")
	}
	ps.done("")
	if ps.seq != 2 || ps.pending {
		t.Errorf("after success: seq %d pending %v", ps.seq, ps.pending)
	}
	ps.next(c, 4, 200)
	ps.done("409 producer_seq_conflict")
	if ps.seq != 1 || ps.producer != "p-g1" || ps.pending {
		t.Errorf("after a conflict: seq %d producer %q pending %v", ps.seq, ps.producer, ps.pending)
	}
}

func TestReplyClass(t *testing.T) {
	if got := replyClass(503, []byte(`{"error":"raft_timeout","message":"x"}`)); got != "503 raft_timeout" {
		t.Errorf("got %q", got)
	}
	if got := replyClass(502, []byte(`<html>`)); got != "502" {
		t.Errorf("got %q", got)
	}
}

func TestParseBenchFlags(t *testing.T) {
	o, err := parseBenchFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.workloads) != 4 || len(o.auth) != 2 || o.sessions != 256 || o.payload != 200 ||
		len(o.producers) != 3 || o.producers[2] != 64 || o.replayEvents != 100_000 {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range [][]string{
		{"--workloads", "closed,bogus"},
		{"--auth", "basic"},
		{"--nodes", "http://a:1", "--auth", "none,jwt"},
		{"--nodes", "http://a:1", "--auth", "jwt"},
		{"--nodes", "a:1"},
		{"--producers", "0"},
		{"--rates", "-5"},
		{"--replay-batch", "1001"},
		{"--duration", "0s"},
	} {
		if _, err := parseBenchFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	o, err = parseBenchFlags([]string{"--nodes", "http://127.0.0.1:4000/,http://127.0.0.2:4000", "--auth", "none", "--pids", "12,13"}, io.Discard)
	if err != nil || len(o.nodes) != 2 || o.nodes[0] != "http://127.0.0.1:4000" || len(o.pids) != 2 {
		t.Errorf("--nodes: %+v %v", o, err)
	}
}
