package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"starcite/test/chaos/history"
)

// The checker is tested on small hand-made histories: a good one passes,
// and each way of breaking a promise is reported under its name.

func payload(p string, k uint64, v int) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"p": p, "k": k, "v": v, "pad": "xx"})
	return b
}

// event is a final-log event as a read records it.
func event(seq uint64, p string, k uint64, v int) history.Event {
	// The server writes keys in its own order: the checker must not care.
	pl := json.RawMessage(fmt.Sprintf(`{"v":%d,"pad":"xx","k":%d,"p":%q}`, v, k, p))
	raw := fmt.Sprintf(`{"seq":%d,"type":"chaos","payload":%s,"producer_id":%q,"producer_seq":%d}`, seq, pl, p, k)
	return history.Event{Seq: seq, Type: "chaos", ProducerID: p, ProducerSeq: k, Payload: pl, Hash: history.Hash([]byte(raw))}
}

type op struct {
	p        string
	k        uint64
	v        int
	call     int64
	ret      int64
	outcome  string
	seq      uint64
	last     uint64
	deduped  bool
	code     string
	expected uint64
	probe    bool
}

func (o op) record() history.Record {
	r := history.Record{Type: history.TypeAppend, Proc: o.p, Session: "s", Node: 1, Call: o.call, Ret: o.ret,
		Outcome: o.outcome, Producer: o.p, PSeq: o.k, Variant: o.v, Payload: payload(o.p, o.k, o.v),
		Seq: o.seq, LastSeq: o.last, Deduped: o.deduped, Code: o.code, Expected: o.expected, Probe: o.probe}
	switch o.outcome {
	case history.OutcomeOK:
		r.Status = 201
	case history.OutcomeUnavailable:
		r.Status, r.Code = 503, "raft_unavailable"
	case history.OutcomeAmbiguous:
		r.Status, r.Code = 503, "raft_timeout"
	case history.OutcomeRefused:
		r.Status = 409
	}
	return r
}

// scenario is a history under construction.
type scenario struct {
	ops    []op
	log    []history.Event
	nodes  map[int][]history.Event // per-node override of the final log
	frames [][]uint64              // one tail from cursor, these frames
	cursor uint64
	close  int
	hashes map[uint64]string // per-seq override of what the tail received
}

func good() *scenario {
	return &scenario{
		ops: []op{
			{p: "w0", k: 1, call: 10, ret: 20, outcome: history.OutcomeOK, seq: 1, last: 1},
			{p: "w0", k: 2, call: 30, ret: 40, outcome: history.OutcomeAmbiguous},
			{p: "w0", k: 2, call: 50, ret: 60, outcome: history.OutcomeOK, seq: 2, last: 2, deduped: true},
			{p: "w0", k: 2, call: 61, ret: 62, outcome: history.OutcomeOK, seq: 2, last: 2, deduped: true, probe: true},
			{p: "w1", k: 1, call: 15, ret: 25, outcome: history.OutcomeUnavailable},
			{p: "w1", k: 1, v: 1, call: 63, ret: 70, outcome: history.OutcomeOK, seq: 3, last: 3},
			{p: "w1", k: 2, call: 71, ret: 80, outcome: history.OutcomeAmbiguous}, // never written
		},
		log:    []history.Event{event(1, "w0", 1, 0), event(2, "w0", 2, 0), event(3, "w1", 1, 1)},
		frames: [][]uint64{{1}, {2}, {3}},
		close:  1011,
	}
}

func (sc *scenario) history() []history.Record {
	recs := []history.Record{
		{Type: history.TypeRun, Params: map[string]string{"duration": "test"}},
		{Type: history.TypeCreate, Session: "s", Node: 1, Call: 1, Ret: 2, Status: 201, Outcome: history.OutcomeOK},
		{Type: history.TypeFault, Fault: history.FaultKill, Phase: "start", Node: 2},
		{Type: history.TypeFault, Fault: history.FaultKill, Phase: "end", Node: 2},
	}
	for _, o := range sc.ops {
		recs = append(recs, o.record())
	}
	recs = append(recs, history.Record{Type: history.TypeTailOpen, Session: "s", Node: 2, Tail: 1, Cursor: sc.cursor, Batch: 1, Status: 101})
	last := uint64(0)
	for _, f := range sc.frames {
		fr := history.Record{Type: history.TypeTailFrame, Session: "s", Tail: 1, Seqs: f}
		for _, seq := range f {
			h := "none"
			if seq >= 1 && int(seq) <= len(sc.log) {
				h = sc.log[seq-1].Hash
			}
			if o, ok := sc.hashes[seq]; ok {
				h = o
			}
			fr.Hashes = append(fr.Hashes, h)
			last = seq
		}
		recs = append(recs, fr)
	}
	recs = append(recs,
		history.Record{Type: history.TypeTailClose, Session: "s", Tail: 1, By: "server", Close: sc.close},
		history.Record{Type: history.TypeTailDone, Proc: "t0", Session: "s", Last: last, Target: uint64(len(sc.log)), CaughtUp: last >= uint64(len(sc.log))})
	for n := 1; n <= 3; n++ {
		evs := sc.log
		if o, ok := sc.nodes[n]; ok {
			evs = o
		}
		recs = append(recs, history.Record{Type: history.TypeRead, Session: "s", Node: n, Call: 1000, Ret: 1001,
			Events: evs, LastSeq: uint64(len(evs))})
	}
	return append(recs, history.Record{Type: history.TypeEnd})
}

func kinds(r *Report) []string {
	var out []string
	for _, v := range r.Violations {
		if !slices.Contains(out, v.Kind) {
			out = append(out, v.Kind)
		}
	}
	return out
}

func check(t *testing.T, sc *scenario) *Report {
	t.Helper()
	return Check(sc.history(), Options{Porcupine: 10 * time.Second})
}

func TestGoodHistoryPasses(t *testing.T) {
	r := check(t, good())
	if len(r.Violations) > 0 {
		var b strings.Builder
		r.Print(&b, "good", 20)
		t.Fatalf("violations in a good history:\n%s", b.String())
	}
	if r.Acked != 3 || r.RetriesDeduped != 1 || r.ProbesDeduped != 1 || r.TailEvents != 3 || r.Linearizable != 1 ||
		r.AmbiguousWritten != 1 || r.AmbiguousUnwritten != 1 || r.Faults["kill"] != 1 {
		var b strings.Builder
		r.Print(&b, "good", 20)
		t.Fatalf("counts:\n%s", b.String())
	}
}

func TestViolationsAreReported(t *testing.T) {
	for _, c := range []struct {
		name   string
		want   []string
		break_ func(sc *scenario)
	}{
		{"an acknowledged event is lost", []string{"ack_lost", "not_linearizable"}, func(sc *scenario) {
			sc.log = sc.log[:2]
			sc.frames = sc.frames[:2]
		}},
		{"an event is in the log twice", []string{"duplicate_event", "not_linearizable"}, func(sc *scenario) {
			sc.log = append(sc.log, event(4, "w0", 2, 0))
		}},
		{"an event nobody sent", []string{"phantom_event"}, func(sc *scenario) {
			sc.log = append(sc.log, event(4, "ghost", 1, 0))
		}},
		{"a raft_unavailable append was written", []string{"unavailable_written", "ack_wrong_content"}, func(sc *scenario) {
			sc.log[2] = event(3, "w1", 1, 0)
		}},
		{"an acknowledgement names the wrong seq", []string{"ack_wrong_seq", "not_linearizable"}, func(sc *scenario) {
			sc.ops[0].seq, sc.ops[0].last = 2, 2
		}},
		{"replicas disagree", []string{"replica_divergence"}, func(sc *scenario) {
			sc.nodes = map[int][]history.Event{3: {sc.log[0], sc.log[1], event(3, "w9", 1, 0)}}
		}},
		{"a later append sees an older log", []string{"stale_answer", "write_below_acknowledged", "not_linearizable"}, func(sc *scenario) {
			// w1's write returned (seq 3) before w0's first append was sent,
			// yet w0 got seq 1.
			sc.ops[5].call, sc.ops[5].ret = 1, 5
			sc.log = []history.Event{event(1, "w0", 1, 0), event(2, "w0", 2, 0), event(3, "w1", 1, 1)}
			sc.ops[0].call = 6
		}},
		{"an unexplainable producer_seq_conflict", []string{"unexplained_conflict"}, func(sc *scenario) {
			sc.ops = append(sc.ops, op{p: "w0", k: 3, call: 90, ret: 91, outcome: history.OutcomeRefused,
				code: "producer_seq_conflict", expected: 2})
		}},
		{"a resend of an acknowledged append is refused", []string{"unexplained_conflict"}, func(sc *scenario) {
			sc.ops[3].outcome, sc.ops[3].code, sc.ops[3].probe = history.OutcomeRefused, "producer_replay_conflict", true
		}},
		{"a tail skips a seq", []string{"tail_gap"}, func(sc *scenario) { sc.frames = [][]uint64{{1}, {3}} }},
		{"a tail repeats a seq", []string{"tail_duplicate"}, func(sc *scenario) { sc.frames = [][]uint64{{1}, {2}, {2}, {3}} }},
		{"a tail starts past its cursor", []string{"tail_bad_start"}, func(sc *scenario) {
			sc.cursor = 1
			sc.frames = [][]uint64{{3}}
		}},
		{"a tail receives other bytes", []string{"tail_content_mismatch"}, func(sc *scenario) {
			sc.hashes = map[uint64]string{2: "beef"}
		}},
		{"a tail receives an event that is not in the log", []string{"tail_phantom"}, func(sc *scenario) {
			sc.frames = append(sc.frames, []uint64{4})
			sc.log = sc.log[:3]
		}},
		{"a tail closes with 1000", []string{"tail_close_1000"}, func(sc *scenario) { sc.close = 1000 }},
		{"a tail never catches up", []string{"tail_stalled"}, func(sc *scenario) { sc.frames = sc.frames[:1] }},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := good()
			c.break_(sc)
			r := check(t, sc)
			got := kinds(r)
			for _, k := range c.want {
				if !slices.Contains(got, k) {
					var b strings.Builder
					r.Print(&b, c.name, 20)
					t.Errorf("want a %s violation, got %v:\n%s", k, got, b.String())
				}
			}
		})
	}
}

func TestIncompleteHistory(t *testing.T) {
	recs := good().history()
	r := Check(recs[:len(recs)-1], Options{})
	if !slices.Contains(kinds(r), "history") {
		t.Fatalf("a history without its end record passed: %v", kinds(r))
	}
}
