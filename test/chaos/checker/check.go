package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"starcite/test/chaos/history"
)

// Options tune a check.
type Options struct {
	Porcupine time.Duration // budget of the linearizability check per session; 0 skips it
}

// Violation is one broken promise.
type Violation struct {
	Kind    string
	Session string
	Detail  string
}

// Report is what the checker counted and found.
type Report struct {
	Records  int
	Params   map[string]string
	Complete bool // the history ends with an end record

	Faults map[string]int // injected, by kind

	Attempts           int // append attempts, probes included
	OKAnswers          int // 201 answers
	Acked              int // distinct (producer, producer_seq) acknowledged
	DedupedAnswers     int // 201 deduped:true
	RetriesDeduped     int // 201 deduped:true to a retry after an ambiguous attempt
	Probes             int // deliberate resends of an acknowledged append
	ProbesDeduped      int
	Ambiguous          int // ambiguous attempts
	AmbiguousWritten   int // contents with an ambiguous attempt that committed (a retry came back deduped)
	AmbiguousRetried   int // ... none of which committed: a retry wrote it
	AmbiguousUnwritten int // ... never written (abandoned, or replaced after raft_unavailable)
	Unavailable        int // 503 raft_unavailable answers
	Unsent             int // connection refused: never reached a node
	Refused            map[string]int
	Abandoned          int
	Creates            int
	CreatesAcked       int

	Sessions int
	Events   int // events in the final logs (one copy)
	Reads    int // final reads (session × node)

	TailConns       int
	TailRefused     int // upgrades that failed
	TailFrames      int
	TailEvents      int // events received on tails and checked
	TailCloses      map[string]int
	TailersCaughtUp int
	Tailers         int

	Linearizable, LinUnknown, LinSkipped int

	Violations []Violation

	acked map[pkey]bool // (producer, producer_seq) with a 201
}

func (r *Report) violate(kind, session, format string, args ...any) {
	r.Violations = append(r.Violations, Violation{Kind: kind, Session: session, Detail: fmt.Sprintf(format, args...)})
}

// pkey is one producer_seq of one producer on one session.
type pkey struct {
	session, producer string
	pseq              uint64
}

// logEvent is an event of a final log with the content it carries.
type logEvent struct {
	history.Event
	variant int
	canon   string // canonical payload
	ok      bool   // the payload is one the workload could have sent
}

// variantInfo is what happened to one content of one producer_seq.
type variantInfo struct {
	payload  string // canonical
	attempts []*history.Record
}

func (v *variantInfo) has(outcome string, probes bool) bool {
	for _, a := range v.attempts {
		if a.Outcome == outcome && (probes || !a.Probe) {
			return true
		}
	}
	return false
}

// canonical re-encodes JSON with sorted keys and numbers as written, so
// that payloads compare whatever order the server wrote keys in.
func canonical(raw []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// Check judges a history.
func Check(recs []history.Record, opt Options) *Report {
	r := &Report{Records: len(recs), Faults: map[string]int{}, Refused: map[string]int{}, TailCloses: map[string]int{}}
	var (
		appends  []*history.Record
		creates  = map[string][]*history.Record{}
		reads    = map[string][]*history.Record{}
		tails    = map[int]*tailConn{}
		tailIDs  []int
		dones    []*history.Record
		sessions []string
	)
	for i := range recs {
		rec := &recs[i]
		switch rec.Type {
		case history.TypeRun:
			r.Params = rec.Params
		case history.TypeEnd:
			r.Complete = true
		case history.TypeFault:
			if rec.Phase == "start" {
				r.Faults[rec.Fault]++
			}
		case history.TypeAppend:
			appends = append(appends, rec)
		case history.TypeAbandon:
			r.Abandoned++
		case history.TypeCreate:
			creates[rec.Session] = append(creates[rec.Session], rec)
		case history.TypeRead:
			if _, ok := reads[rec.Session]; !ok {
				sessions = append(sessions, rec.Session)
			}
			reads[rec.Session] = append(reads[rec.Session], rec)
		case history.TypeTailOpen:
			tails[rec.Tail] = &tailConn{open: rec}
			tailIDs = append(tailIDs, rec.Tail)
		case history.TypeTailFrame:
			if tc := tails[rec.Tail]; tc != nil {
				tc.frames = append(tc.frames, rec)
			} else {
				r.violate("history", rec.Session, "frame of unknown tail %d", rec.Tail)
			}
		case history.TypeTailClose:
			if tc := tails[rec.Tail]; tc != nil {
				tc.close = rec
			}
		case history.TypeTailDone:
			dones = append(dones, rec)
		}
	}
	if !r.Complete {
		r.violate("history", "", "the history has no end record: the run did not finish")
	}

	logs := r.checkReads(sessions, reads)
	variants := r.checkAppends(appends, logs)
	r.checkCreates(creates, reads)
	r.checkTails(tailIDs, tails, dones, logs)
	if opt.Porcupine > 0 {
		r.checkLinearizable(appends, logs, variants, reads, opt.Porcupine)
	}
	return r
}

// checkReads compares every node's final log of every session and
// returns one reference log per session.
func (r *Report) checkReads(sessions []string, reads map[string][]*history.Record) map[string][]logEvent {
	logs := map[string][]logEvent{}
	for _, s := range sessions {
		r.Sessions++
		var ref *history.Record
		for _, rd := range reads[s] {
			r.Reads++
			if rd.Err != "" {
				r.violate("final_read_failed", s, "node %d: %s", rd.Node, rd.Err)
				continue
			}
			for i, ev := range rd.Events {
				if ev.Seq != uint64(i+1) {
					r.violate("log_not_contiguous", s, "node %d: event #%d has seq %d", rd.Node, i+1, ev.Seq)
					break
				}
			}
			if uint64(len(rd.Events)) != rd.LastSeq {
				r.violate("log_not_contiguous", s, "node %d: %d events but last_seq %d", rd.Node, len(rd.Events), rd.LastSeq)
			}
			if ref == nil {
				ref = rd
				continue
			}
			if len(rd.Events) != len(ref.Events) {
				r.violate("replica_divergence", s, "node %d serves %d events, node %d %d", rd.Node, len(rd.Events), ref.Node, len(ref.Events))
			}
			for i := 0; i < min(len(rd.Events), len(ref.Events)); i++ {
				if rd.Events[i].Hash != ref.Events[i].Hash {
					r.violate("replica_divergence", s, "seq %d differs between node %d and node %d", i+1, ref.Node, rd.Node)
					break
				}
			}
		}
		if ref == nil {
			continue
		}
		out := make([]logEvent, len(ref.Events))
		for i, ev := range ref.Events {
			le := logEvent{Event: ev}
			if c, err := canonical(ev.Payload); err == nil {
				le.canon = c
				var p struct {
					P string `json:"p"`
					K uint64 `json:"k"`
					V *int   `json:"v"`
				}
				if json.Unmarshal(ev.Payload, &p) == nil && p.V != nil && p.P == ev.ProducerID && p.K == ev.ProducerSeq {
					le.variant, le.ok = *p.V, true
				}
			}
			out[i] = le
		}
		logs[s] = out
		r.Events += len(out)
	}
	return logs
}

// checkAppends matches every append attempt against the final logs.
func (r *Report) checkAppends(appends []*history.Record, logs map[string][]logEvent) map[pkey]map[int]*variantInfo {
	variants := map[pkey]map[int]*variantInfo{}
	acked := map[pkey]bool{}
	for _, a := range appends {
		r.Attempts++
		k := pkey{a.Session, a.Producer, a.PSeq}
		if variants[k] == nil {
			variants[k] = map[int]*variantInfo{}
		}
		v := variants[k][a.Variant]
		if v == nil {
			c, _ := canonical(a.Payload)
			v = &variantInfo{payload: c}
			variants[k][a.Variant] = v
		}
		v.attempts = append(v.attempts, a)
		if a.Probe {
			r.Probes++
		}
		switch a.Outcome {
		case history.OutcomeOK:
			r.OKAnswers++
			acked[k] = true
			if a.Deduped {
				r.DedupedAnswers++
				if a.Probe {
					r.ProbesDeduped++
				}
			}
		case history.OutcomeAmbiguous:
			r.Ambiguous++
		case history.OutcomeUnavailable:
			r.Unavailable++
		case history.OutcomeUnsent:
			r.Unsent++
		case history.OutcomeRefused:
			code := a.Code
			if code == "" {
				code = fmt.Sprint(a.Status)
			}
			r.Refused[code]++
		}
	}
	r.Acked = len(acked)
	r.acked = acked

	// Where each (producer, producer_seq) sits in the final logs.
	where := map[pkey][]int{} // → indexes into logs[session]
	for s, log := range logs {
		for i, ev := range log {
			k := pkey{s, ev.ProducerID, ev.ProducerSeq}
			where[k] = append(where[k], i)
		}
	}
	for k, idx := range where {
		log := logs[k.session]
		if len(idx) > 1 {
			seqs := make([]uint64, len(idx))
			for i, j := range idx {
				seqs[i] = log[j].Seq
			}
			r.violate("duplicate_event", k.session, "producer %s producer_seq %d is in the log %d times, at seqs %v",
				k.producer, k.pseq, len(idx), seqs)
		}
		for _, j := range idx {
			ev := log[j]
			vs := variants[k]
			if vs == nil {
				r.violate("phantom_event", k.session, "seq %d (producer %s producer_seq %d) was never sent", ev.Seq, k.producer, k.pseq)
				continue
			}
			v := vs[ev.variant]
			if !ev.ok || v == nil || v.payload != ev.canon || ev.Type != "chaos" {
				r.violate("content_mismatch", k.session, "seq %d (producer %s producer_seq %d) holds content nobody sent: %s",
					ev.Seq, k.producer, k.pseq, ev.Payload)
				continue
			}
			switch {
			case v.has(history.OutcomeOK, false) || v.has(history.OutcomeAmbiguous, false):
			case v.has(history.OutcomeUnsent, false) && !v.has(history.OutcomeUnavailable, false):
				r.violate("unsent_written", k.session, "seq %d (producer %s producer_seq %d variant %d): no attempt with this content reached a node, yet it is in the log",
					ev.Seq, k.producer, k.pseq, ev.variant)
			case v.has(history.OutcomeUnavailable, false):
				r.violate("unavailable_written", k.session, "seq %d (producer %s producer_seq %d variant %d): every attempt with this content was answered raft_unavailable, yet it is in the log",
					ev.Seq, k.producer, k.pseq, ev.variant)
			default:
				r.violate("refused_written", k.session, "seq %d (producer %s producer_seq %d variant %d): every attempt with this content was refused, yet it is in the log",
					ev.Seq, k.producer, k.pseq, ev.variant)
			}
		}
	}

	// Every answer, against the log.
	for k, vs := range variants {
		log, haveLog := logs[k.session]
		idx := where[k]
		var ev *logEvent
		if len(idx) > 0 {
			ev = &log[idx[0]]
		}
		writers := 0
		for vn, v := range vs {
			inLog := ev != nil && ev.variant == vn && ev.ok
			if v.has(history.OutcomeAmbiguous, true) {
				answered := false // a request was told it wrote this content
				for _, a := range v.attempts {
					answered = answered || (a.Outcome == history.OutcomeOK && !a.Deduped)
				}
				switch {
				case inLog && !answered:
					r.AmbiguousWritten++ // an ambiguous attempt committed it
				case inLog:
					r.AmbiguousRetried++ // none did; a retry wrote it
				default:
					r.AmbiguousUnwritten++
				}
			}
			ambiguousBefore := int64(-1) // call of the first ambiguous attempt
			for _, a := range v.attempts {
				if a.Outcome == history.OutcomeAmbiguous && ambiguousBefore < 0 {
					ambiguousBefore = a.Call
				}
				if !haveLog {
					continue // no final read of this session (checked elsewhere)
				}
				switch a.Outcome {
				case history.OutcomeOK:
					switch {
					case ev == nil:
						r.violate("ack_lost", k.session, "producer %s producer_seq %d acknowledged at seq %d (node %d, deduped=%v) is not in the log",
							k.producer, k.pseq, a.Seq, a.Node, a.Deduped)
						continue
					case !inLog:
						r.violate("ack_wrong_content", k.session, "producer %s producer_seq %d variant %d acknowledged at seq %d, but the log holds variant %d",
							k.producer, k.pseq, vn, a.Seq, ev.variant)
					case a.Seq != ev.Seq:
						r.violate("ack_wrong_seq", k.session, "producer %s producer_seq %d acknowledged at seq %d (node %d, deduped=%v) is at seq %d",
							k.producer, k.pseq, a.Seq, a.Node, a.Deduped, ev.Seq)
					}
					if a.LastSeq < a.Seq || a.LastSeq > uint64(len(log)) {
						r.violate("bad_last_seq", k.session, "producer %s producer_seq %d: seq %d last_seq %d, the log has %d events",
							k.producer, k.pseq, a.Seq, a.LastSeq, len(log))
					}
					if !a.Deduped {
						writers++
					}
					if a.Deduped && !a.Probe && ambiguousBefore >= 0 && ambiguousBefore < a.Call {
						r.RetriesDeduped++
					}
					if a.Probe && !a.Deduped {
						r.violate("probe_not_deduped", k.session, "a resend of acknowledged producer %s producer_seq %d came back deduped=false (seq %d)",
							k.producer, k.pseq, a.Seq)
					}
				case history.OutcomeRefused:
					r.explainRefusal(k, vn, a, ev, where)
				}
			}
		}
		if writers > 1 {
			r.violate("two_writers", k.session, "producer %s producer_seq %d: %d different requests were told they wrote it",
				k.producer, k.pseq, writers)
		}
	}
	r.checkRealTime(appends, logs)
	return variants
}

// explainRefusal judges a 4xx answer to an append: a client that retries
// must be able to explain it from what it sent and what was acknowledged.
func (r *Report) explainRefusal(k pkey, vn int, a *history.Record, ev *logEvent, where map[pkey][]int) {
	switch a.Code {
	case "producer_replay_conflict":
		// Explained when another content of this producer_seq is the one
		// written (which the workload only risks after raft_unavailable,
		// so the log check above names the culprit).
		if ev != nil && ev.ok && ev.variant != vn {
			return
		}
		r.violate("unexplained_conflict", k.session, "producer %s producer_seq %d variant %d: producer_replay_conflict, but no other content of it was written",
			k.producer, k.pseq, vn)
	case "producer_seq_conflict":
		x := a.Expected // the server expected x: it holds x-1 as the producer's last
		switch {
		case x == 0:
			r.violate("unexplained_conflict", k.session, "producer %s producer_seq %d: producer_seq_conflict without an expected seq", k.producer, k.pseq)
		case x-1 > k.pseq && len(where[pkey{k.session, k.producer, x - 1}]) > 0:
			// The client resent an old producer_seq after later ones.
		case x-1 < k.pseq-1 && !r.ackedBetween(k.session, k.producer, x, k.pseq-1):
			// The client skipped producer_seqs it never got acknowledged.
		default:
			r.violate("unexplained_conflict", k.session, "producer %s producer_seq %d (node %d): the server expected %d, which a client that never skips nor goes back cannot explain",
				k.producer, k.pseq, a.Node, x)
		}
	case "session_not_found":
		r.violate("session_not_found", k.session, "producer %s producer_seq %d (node %d): 404 for a session that exists",
			k.producer, k.pseq, a.Node)
	default:
		r.violate("unexpected_refusal", k.session, "producer %s producer_seq %d (node %d): %d %s",
			k.producer, k.pseq, a.Node, a.Status, a.Code)
	}
}

// ackedBetween reports whether any producer_seq from..to of a producer
// was acknowledged.
func (r *Report) ackedBetween(session, producer string, from, to uint64) bool {
	for k := range r.acked {
		if k.session == session && k.producer == producer && k.pseq >= from && k.pseq <= to {
			return true
		}
	}
	return false
}

// checkRealTime: an append invoked after another returned sees at least
// the log that one saw, and a new write lands above it.
func (r *Report) checkRealTime(appends []*history.Record, logs map[string][]logEvent) {
	bySession := map[string][]*history.Record{}
	for _, a := range appends {
		if a.Outcome == history.OutcomeOK {
			bySession[a.Session] = append(bySession[a.Session], a)
		}
	}
	for s, ops := range bySession {
		if _, ok := logs[s]; !ok {
			continue
		}
		byRet := append([]*history.Record(nil), ops...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Ret < byRet[j].Ret })
		byCall := append([]*history.Record(nil), ops...)
		sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
		var floor uint64
		var floorOp *history.Record
		j := 0
		for _, b := range byCall {
			for j < len(byRet) && byRet[j].Ret < b.Call {
				if byRet[j].LastSeq > floor {
					floor, floorOp = byRet[j].LastSeq, byRet[j]
				}
				j++
			}
			if b.LastSeq < floor {
				r.violate("stale_answer", s, "producer %s producer_seq %d (node %d) answered last_seq %d, but an append that returned before it was sent had seen last_seq %d (producer %s producer_seq %d, node %d)",
					b.Producer, b.PSeq, b.Node, b.LastSeq, floor, floorOp.Producer, floorOp.PSeq, floorOp.Node)
			}
			if !b.Deduped && b.Seq <= floor {
				r.violate("write_below_acknowledged", s, "producer %s producer_seq %d (node %d) was written at seq %d, but seq %d was acknowledged before it was sent",
					b.Producer, b.PSeq, b.Node, b.Seq, floor)
			}
		}
	}
}

// checkCreates: an acknowledged create exists at the end; a 409 is
// explained by an earlier attempt that may have written it.
func (r *Report) checkCreates(creates map[string][]*history.Record, reads map[string][]*history.Record) {
	for s, atts := range creates {
		sort.Slice(atts, func(i, j int) bool { return atts[i].Call < atts[j].Call })
		mayExist := false
		acked := false
		for _, a := range atts {
			r.Creates++
			switch {
			case a.Outcome == history.OutcomeOK:
				acked = true
				mayExist = true
			case a.Outcome == history.OutcomeAmbiguous:
				mayExist = true
			case a.Outcome == history.OutcomeRefused && a.Code == "session_exists":
				if !mayExist {
					r.violate("unexplained_conflict", s, "create answered session_exists (node %d) before any attempt could have written it", a.Node)
				}
				acked = true
			case a.Outcome == history.OutcomeRefused:
				r.violate("unexpected_refusal", s, "create (node %d): %d %s", a.Node, a.Status, a.Code)
			}
		}
		if acked {
			r.CreatesAcked++
			missing := len(reads[s]) > 0 // every node answered 404
			for _, rd := range reads[s] {
				missing = missing && strings.Contains(rd.Err, " 404 ")
			}
			if missing {
				r.violate("create_lost", s, "every node answers 404 for the acknowledged session")
			}
		}
	}
}

// tailConn is one tail connection as recorded.
type tailConn struct {
	open   *history.Record
	frames []*history.Record
	close  *history.Record
}

// checkTails: each connection's run of seqs, its bytes, its close.
func (r *Report) checkTails(ids []int, tails map[int]*tailConn, dones []*history.Record, logs map[string][]logEvent) {
	for _, id := range ids {
		tc := tails[id]
		s := tc.open.Session
		if tc.open.Status != 101 || tc.open.Err != "" {
			r.TailRefused++
			continue
		}
		r.TailConns++
		log, haveLog := logs[s]
		next := tc.open.Cursor + 1
		for _, f := range tc.frames {
			r.TailFrames++
			if f.Err != "" {
				r.violate("tail_bad_frame", s, "tail %d (node %d): %s", id, tc.open.Node, f.Err)
			}
			if len(f.Seqs) > max(tc.open.Batch, 1) {
				r.violate("tail_batch", s, "tail %d: a frame of %d events with batch_size %d", id, len(f.Seqs), tc.open.Batch)
			}
			for i, seq := range f.Seqs {
				r.TailEvents++
				switch {
				case seq == next:
				case seq > next && next == tc.open.Cursor+1:
					r.violate("tail_bad_start", s, "tail %d (node %d) from cursor %d: first seq %d", id, tc.open.Node, tc.open.Cursor, seq)
				case seq > next:
					r.violate("tail_gap", s, "tail %d (node %d) from cursor %d: seq %d after %d", id, tc.open.Node, tc.open.Cursor, seq, next-1)
				default:
					r.violate("tail_duplicate", s, "tail %d (node %d) from cursor %d: seq %d after %d", id, tc.open.Node, tc.open.Cursor, seq, next-1)
				}
				if seq >= next {
					next = seq + 1
				}
				if !haveLog {
					continue
				}
				if seq == 0 || seq > uint64(len(log)) {
					r.violate("tail_phantom", s, "tail %d (node %d) received seq %d; the final log has %d events", id, tc.open.Node, seq, len(log))
				} else if i < len(f.Hashes) && f.Hashes[i] != log[seq-1].Hash {
					r.violate("tail_content_mismatch", s, "tail %d (node %d): seq %d differs from the final log", id, tc.open.Node, seq)
				}
			}
		}
		if tc.close != nil {
			key := tc.close.By
			if tc.close.By == "server" {
				key = fmt.Sprintf("server %d", tc.close.Close)
				if tc.close.Close == 1000 {
					r.violate("tail_close_1000", s, "tail %d (node %d) was closed with 1000 %q: clients stop reconnecting on it", id, tc.open.Node, tc.close.Reason)
				}
			} else if tc.close.By == "client" {
				key = "client " + tc.close.Reason
			}
			r.TailCloses[key]++
		} else {
			r.TailCloses["unrecorded"]++
		}
	}
	for _, d := range dones {
		r.Tailers++
		if d.CaughtUp {
			r.TailersCaughtUp++
		} else {
			r.violate("tail_stalled", d.Session, "tailer %s stopped at seq %d; the log ends at %d", d.Proc, d.Last, d.Target)
		}
	}
}

// Print writes the report.
func (r *Report) Print(w io.Writer, path string, maxShown int) {
	fmt.Fprintf(w, "history %s: %d records", path, r.Records)
	if len(r.Params) > 0 {
		keys := make([]string, 0, len(r.Params))
		for k := range r.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+r.Params[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, " "))
	}
	fmt.Fprintln(w)
	total := 0
	for _, n := range r.Faults {
		total += n
	}
	fmt.Fprintf(w, "faults injected:    %d %s\n", total, counts(r.Faults))
	fmt.Fprintf(w, "appends:            %d attempts, %d acknowledged (%d answers 201, %d of them deduped)\n",
		r.Attempts, r.Acked, r.OKAnswers, r.DedupedAnswers)
	fmt.Fprintf(w, "ambiguous:          %d answers (timeouts, resets, 5xx); of their contents %d committed anyway, %d were written by a retry, %d never; %d retries came back deduped with the original seq\n",
		r.Ambiguous, r.AmbiguousWritten, r.AmbiguousRetried, r.AmbiguousUnwritten, r.RetriesDeduped)
	fmt.Fprintf(w, "not written:        %d raft_unavailable, %d refused connections, %d abandoned at the end\n",
		r.Unavailable, r.Unsent, r.Abandoned)
	fmt.Fprintf(w, "probes:             %d resends of acknowledged appends, %d came back deduped\n", r.Probes, r.ProbesDeduped)
	fmt.Fprintf(w, "refusals:           %s\n", counts(r.Refused))
	fmt.Fprintf(w, "sessions:           %d (%d create attempts, %d acknowledged), %d events in the final logs, %d final reads\n",
		r.Sessions, r.Creates, r.CreatesAcked, r.Events, r.Reads)
	fmt.Fprintf(w, "tails:              %d connections (%d upgrades refused or failed), %d frames, %d tail events checked, %d/%d tailers caught up\n",
		r.TailConns, r.TailRefused, r.TailFrames, r.TailEvents, r.TailersCaughtUp, r.Tailers)
	fmt.Fprintf(w, "tail closes:        %s\n", counts(r.TailCloses))
	fmt.Fprintf(w, "linearizability:    %d sessions linearizable, %d unknown (time budget), %d not checked\n",
		r.Linearizable, r.LinUnknown, r.LinSkipped)
	byKind := map[string]int{}
	for _, v := range r.Violations {
		byKind[v.Kind]++
	}
	fmt.Fprintf(w, "violations:         %d %s\n", len(r.Violations), counts(byKind))
	for i, v := range r.Violations {
		if i == maxShown {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Violations)-maxShown)
			break
		}
		fmt.Fprintf(w, "  %s [%s] %s\n", v.Kind, v.Session, v.Detail)
	}
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
