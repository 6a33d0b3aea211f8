package main

import (
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"starcite/test/chaos/history"
)

// A sequential model of one session for porcupine: the log (its length and
// a hash chain of its entries) and the producer cursors of
// docs/api.md#producer-sequencing. Appends follow the producer rules; the
// final reads must see the whole log.
//
// The history is reduced before the search, soundly:
//   - raft_unavailable answers promise nothing was written: they are no-ops
//     (the log check already catches one that did write);
//   - an ambiguous attempt whose content is not in the final log did not
//     write and changes no state: left out;
//   - the content that is in the log was written by exactly one request:
//     the one answered deduped:false, or else one of its ambiguous attempts,
//     modelled as a single write that may happen any time after the first
//     of them started;
//   - a request answered deduped:false whose last_seq is above its seq
//     wrote, then (retrying inside the server) observed a longer log: a
//     write and an observation, both within its interval.

type mstate struct {
	n   uint64
	h   uint64
	cur map[string]mcursor
}

type mcursor struct {
	k   uint64
	v   int
	seq uint64
}

const (
	opWrite    = 'w' // must append
	opAnswer   = 'o' // a 201
	opReplay   = 'r' // producer_replay_conflict
	opSeqConfl = 's' // producer_seq_conflict
	opRead     = 'R' // a final read
)

type mIn struct {
	p string
	k uint64
	v int
}

type mOut struct {
	kind     byte
	seq      uint64
	last     uint64
	deduped  bool
	expected uint64
	n, h     uint64
}

func chain(h uint64, p string, k uint64, v int) uint64 {
	f := fnv.New64a()
	fmt.Fprintf(f, "%x|%s|%d|%d", h, p, k, v)
	return f.Sum64()
}

func (s *mstate) appended(in mIn) *mstate {
	cur := maps.Clone(s.cur)
	cur[in.p] = mcursor{k: in.k, v: in.v, seq: s.n + 1}
	return &mstate{n: s.n + 1, h: chain(s.h, in.p, in.k, in.v), cur: cur}
}

var sessionModel = porcupine.Model{
	Init: func() any { return &mstate{cur: map[string]mcursor{}} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(*mstate)
		in, out := input.(mIn), output.(mOut)
		if out.kind == opRead {
			return out.n == s.n && out.h == s.h, s
		}
		c, known := s.cur[in.p]
		next := uint64(1)
		if known {
			next = c.k + 1
		}
		same := known && c.k == in.k
		switch out.kind {
		case opAnswer:
			if same && c.v == in.v {
				return out.seq == c.seq && out.last == s.n, s
			}
			if same || in.k != next || out.deduped || out.seq != s.n+1 || out.last != s.n+1 {
				return false, s
			}
			return true, s.appended(in)
		case opWrite:
			if same || in.k != next {
				return false, s
			}
			return true, s.appended(in)
		case opReplay:
			return same && c.v != in.v, s
		case opSeqConfl:
			return !same && in.k != next && out.expected == next, s
		}
		return false, s
	},
	Equal: func(a, b any) bool {
		x, y := a.(*mstate), b.(*mstate)
		return x.n == y.n && x.h == y.h && maps.Equal(x.cur, y.cur)
	},
	Hash: func(a any) uint64 { s := a.(*mstate); return s.h ^ s.n },
	DescribeOperation: func(input, output any) string {
		in, out := input.(mIn), output.(mOut)
		switch out.kind {
		case opRead:
			return fmt.Sprintf("read → %d events", out.n)
		case opWrite:
			return fmt.Sprintf("append(%s #%d v%d) → ?", in.p, in.k, in.v)
		case opAnswer:
			return fmt.Sprintf("append(%s #%d v%d) → seq %d last %d deduped %v", in.p, in.k, in.v, out.seq, out.last, out.deduped)
		case opReplay:
			return fmt.Sprintf("append(%s #%d v%d) → replay conflict", in.p, in.k, in.v)
		default:
			return fmt.Sprintf("append(%s #%d v%d) → seq conflict, expected %d", in.p, in.k, in.v, out.expected)
		}
	},
	DescribeState: func(state any) string {
		s := state.(*mstate)
		return fmt.Sprintf("%d events", s.n)
	},
}

// checkLinearizable runs porcupine on each session's reduced history.
func (r *Report) checkLinearizable(appends []*history.Record, logs map[string][]logEvent,
	variants map[pkey]map[int]*variantInfo, reads map[string][]*history.Record, budget time.Duration) {
	var end int64
	for _, a := range appends {
		end = max(end, a.Ret)
	}
	for _, rds := range reads {
		for _, rd := range rds {
			end = max(end, rd.Ret)
		}
	}
	end++

	byKey := map[string][]pkey{}
	for k := range variants {
		byKey[k.session] = append(byKey[k.session], k)
	}
	sessions := make([]string, 0, len(logs))
	for s := range logs {
		sessions = append(sessions, s)
	}
	sort.Strings(sessions)
	for _, s := range sessions {
		log := logs[s]
		ops, ok := sessionOps(s, log, byKey[s], variants, reads[s], end)
		if !ok {
			r.LinSkipped++ // the log holds what nobody sent: reported already
			continue
		}
		res, _ := porcupine.CheckOperationsVerbose(sessionModel, ops, budget)
		switch res {
		case porcupine.Ok:
			r.Linearizable++
		case porcupine.Unknown:
			r.LinUnknown++
		default:
			r.violate("not_linearizable", s, "no order of this session's %d operations explains every answer and the final log", len(ops))
		}
	}
}

func sessionOps(s string, log []logEvent, keys []pkey, variants map[pkey]map[int]*variantInfo,
	reads []*history.Record, end int64) ([]porcupine.Operation, bool) {
	written := map[pkey]int{} // → variant in the log
	for _, ev := range log {
		k := pkey{s, ev.ProducerID, ev.ProducerSeq}
		v := variants[k]
		if !ev.ok || v == nil || v[ev.variant] == nil {
			return nil, false
		}
		written[k] = ev.variant
	}
	var ops []porcupine.Operation
	add := func(in mIn, out mOut, call, ret int64) {
		ops = append(ops, porcupine.Operation{Input: in, Output: out, Call: call, Return: ret})
	}
	for _, k := range keys {
		wv, isWritten := written[k]
		for vn, v := range variants[k] {
			in := mIn{p: k.producer, k: k.pseq, v: vn}
			writer := false
			firstAmbiguous, first := int64(-1), int64(-1)
			for _, a := range v.attempts {
				if first < 0 || a.Call < first {
					first = a.Call
				}
				switch a.Outcome {
				case history.OutcomeOK:
					if !a.Deduped {
						writer = true
					}
					if !a.Deduped && a.LastSeq > a.Seq {
						add(in, mOut{kind: opWrite}, a.Call, a.Ret)
						add(in, mOut{kind: opAnswer, seq: a.Seq, last: a.LastSeq, deduped: true}, a.Call, a.Ret)
					} else {
						add(in, mOut{kind: opAnswer, seq: a.Seq, last: a.LastSeq, deduped: a.Deduped}, a.Call, a.Ret)
					}
				case history.OutcomeAmbiguous:
					if firstAmbiguous < 0 || a.Call < firstAmbiguous {
						firstAmbiguous = a.Call
					}
				case history.OutcomeRefused:
					switch a.Code {
					case "producer_replay_conflict":
						add(in, mOut{kind: opReplay}, a.Call, a.Ret)
					case "producer_seq_conflict":
						add(in, mOut{kind: opSeqConfl, expected: a.Expected}, a.Call, a.Ret)
					}
				}
			}
			if isWritten && wv == vn && !writer {
				call := firstAmbiguous
				if call < 0 {
					call = first // no attempt could write it: the search will fail, as it should
				}
				add(in, mOut{kind: opWrite}, call, end)
			}
		}
	}
	for _, rd := range reads {
		if rd.Err != "" {
			continue
		}
		var h uint64
		n := uint64(0)
		for _, ev := range rd.Events {
			var variant int
			if ev.Seq >= 1 && ev.Seq <= uint64(len(log)) && log[ev.Seq-1].Hash == ev.Hash {
				variant = log[ev.Seq-1].variant
			} else {
				variant = -1 // a diverging replica: cannot match the model
			}
			h = chain(h, ev.ProducerID, ev.ProducerSeq, variant)
			n++
		}
		add(mIn{}, mOut{kind: opRead, n: n, h: h}, rd.Call, rd.Ret)
	}
	return ops, true
}
