package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"starcite/test/chaos/history"
	"starcite/test/harness"
)

// Workload drives a cluster the way careful clients do and records every
// attempt in the history:
//
//   - writers append to random sessions through random nodes. Each writer
//     is one producer per session and never moves past a producer_seq
//     before it has a definitive answer: on an ambiguous outcome
//     (transport error, timeout, any 5xx but raft_unavailable) it resends
//     the same producer_seq with the same content, to any node; after
//     raft_unavailable, which promises nothing was written, it may send
//     new content under the same producer_seq (a new variant), which is
//     how the checker catches a raft_unavailable that did write. Now and
//     then it resends an acknowledged append on purpose (a probe), which
//     must come back deduped with the original seq.
//   - a creator adds sessions while faults happen, retrying ambiguous
//     creates (a 409 session_exists after an ambiguous attempt is fine).
//   - tailers follow random sessions on random nodes and reconnect from
//     the last seq they received, whenever the server closes, the node
//     goes away, or on a whim.
//
// The workload checks nothing itself: test/chaos/checker does, from the
// history alone.
type Workload struct {
	cfg    Config
	nodes  []*harness.Node
	h      *history.Writer
	client *http.Client

	mu       sync.Mutex
	sessions []string
	targets  map[string]uint64 // session → final last_seq, once writes stopped

	stopWrites chan struct{} // writers and the creator finish what they started
	stopTails  chan struct{} // tailers stop once caught up (targets set) or now
	drainBy    time.Time     // when stopWrites: give up on unresolved appends after this
	tailsBy    time.Time     // when stopTails: stop even if not caught up

	writers, creators, tailers sync.WaitGroup
	tailSeq                    int64 // tail connection ids
	stats                      stats
}

// Config sizes a run.
type Config struct {
	Duration    time.Duration
	Seed        uint64
	Writers     int
	Tailers     int
	Sessions    int // created before the faults start
	MaxSessions int // the creator stops there
}

type stats struct {
	mu                                       sync.Mutex
	acked, attempts, ambiguous, unav, unsent int
	tailFrames                               int
}

func newWorkload(cfg Config, nodes []*harness.Node, h *history.Writer) *Workload {
	return &Workload{
		cfg:   cfg,
		nodes: nodes,
		h:     h,
		client: &http.Client{
			// Above the server's own 10 s request timeout: the server
			// answers for itself unless the node is paused or cut off.
			Timeout: 15 * time.Second,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 64,
			},
		},
		targets:    map[string]uint64{},
		stopWrites: make(chan struct{}),
		stopTails:  make(chan struct{}),
	}
}

func (w *Workload) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.cfg.Seed, stream))
}

func stopped(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// sleep waits d, or less when stop closes; it reports whether stop closed.
func sleep(d time.Duration, stop chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-stop:
		return true
	}
}

func (w *Workload) addSession(id string) {
	w.mu.Lock()
	w.sessions = append(w.sessions, id)
	w.mu.Unlock()
}

// Sessions returns the sessions known to exist.
func (w *Workload) Sessions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.sessions...)
}

func (w *Workload) randomSession(r *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sessions[r.IntN(len(w.sessions))]
}

// answer is one HTTP exchange as the client saw it.
type answer struct {
	status int
	body   []byte
	code   string // error code of an error body
	msg    string
	err    error
}

func (w *Workload) do(node int, method, path string, body []byte) answer {
	return w.doWithin(node, method, path, body, 0)
}

// doWithin is do with a client-side deadline shorter than the client's
// (0: the client's own), to give up on requests the server is still
// working on: the ambiguous outcome retries must cope with.
func (w *Workload) doWithin(node int, method, path string, body []byte, limit time.Duration) answer {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	ctx := context.Background()
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, w.nodes[node].URL()+path, r)
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := w.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, body: b, err: err}
	if res.StatusCode >= 400 {
		var e struct{ Error, Message string }
		json.Unmarshal(b, &e)
		a.code, a.msg = e.Error, e.Message
	}
	return a
}

// outcome classifies an answer to a write.
func outcome(a answer, ok int) string {
	var op *net.OpError
	switch {
	case a.err != nil && errors.As(a.err, &op) && op.Op == "dial":
		return history.OutcomeUnsent
	case a.err != nil:
		return history.OutcomeAmbiguous
	case a.status == ok:
		return history.OutcomeOK
	case a.status == 503 && a.code == "raft_unavailable":
		return history.OutcomeUnavailable
	case a.status >= 500:
		return history.OutcomeAmbiguous
	default:
		return history.OutcomeRefused
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// ---- sessions ----

// CreateInitial creates the first sessions before any fault, each through
// a random node, and waits until every node knows every one of them.
func (w *Workload) CreateInitial() error {
	r := w.rng(1 << 40)
	for i := 0; i < w.cfg.Sessions; i++ {
		id := fmt.Sprintf("s%02d", i)
		if !w.create(r, "setup", id, time.Now().Add(2*time.Minute)) {
			return fmt.Errorf("could not create %s before the faults", id)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range w.Sessions() {
		for n := range w.nodes {
			for {
				a := w.do(n, "GET", "/v1/sessions/"+id, nil)
				if a.err == nil && a.status == 200 {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("node %d does not know session %s: %d %s %v", n+1, id, a.status, a.body, a.err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// create creates session id, retrying ambiguous outcomes until a
// definitive answer or giveUp; it reports whether the session exists.
func (w *Workload) create(r *rand.Rand, proc, id string, giveUp time.Time) bool {
	body, _ := json.Marshal(map[string]any{"id": id, "metadata": map[string]any{"chaos": true}})
	ambiguous := false
	for attempt := 0; ; attempt++ {
		node := r.IntN(len(w.nodes))
		call := w.h.Now()
		a := w.do(node, "POST", "/v1/sessions", body)
		out := outcome(a, 201)
		w.h.Add(history.Record{Type: history.TypeCreate, Proc: proc, Session: id, Node: node + 1, Call: call,
			Ret: w.h.Now(), Status: a.status, Code: a.code, Err: errString(a.err), Outcome: out})
		switch {
		case out == history.OutcomeOK:
			w.addSession(id)
			return true
		case out == history.OutcomeRefused && a.code == "session_exists" && ambiguous:
			// An earlier attempt wrote it (the checker confirms it is there).
			w.addSession(id)
			return true
		case out == history.OutcomeRefused:
			return false // recorded; the checker judges it
		case out == history.OutcomeAmbiguous:
			ambiguous = true
		}
		if time.Now().After(giveUp) {
			return false
		}
		time.Sleep(backoff(r, attempt))
	}
}

func backoff(r *rand.Rand, attempt int) time.Duration {
	return time.Duration(10+r.IntN(90)) * time.Millisecond * time.Duration(min(attempt+1, 10))
}

// RunCreator adds a session every few seconds until writes stop.
func (w *Workload) RunCreator() {
	w.creators.Add(1)
	go func() {
		defer w.creators.Done()
		r := w.rng(1 << 41)
		for i := 0; ; i++ {
			if sleep(time.Duration(2000+r.IntN(3000))*time.Millisecond, w.stopWrites) {
				return
			}
			if len(w.Sessions()) >= w.cfg.MaxSessions {
				return
			}
			w.create(r, "creator", fmt.Sprintf("n%03d", i), time.Now().Add(time.Hour))
		}
	}()
}

// ---- writers ----

// producerState is one writer's producer on one session.
type producerState struct {
	id      string // producer_id
	gen     int    // bumped when the producer is abandoned after a refusal
	next    uint64 // the producer_seq in flight (or next)
	variant int
	payload json.RawMessage
	tainted bool // an attempt with this content had an ambiguous outcome
}

var conflictRe = regexp.MustCompile(`expected seq (\d+), got (\d+)`)

// RunWriters starts the writers.
func (w *Workload) RunWriters() {
	for i := 0; i < w.cfg.Writers; i++ {
		w.writers.Add(1)
		go func() {
			defer w.writers.Done()
			w.writer(i)
		}()
	}
}

func (w *Workload) writer(id int) {
	r := w.rng(uint64(id) + 1)
	proc := fmt.Sprintf("w%d", id)
	producers := map[string]*producerState{}
	for !stopped(w.stopWrites) {
		s := w.randomSession(r)
		p := producers[s]
		if p == nil {
			p = &producerState{id: proc, next: 1}
			producers[s] = p
		}
		w.appendOne(r, proc, s, p)
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
	}
}

// content sets the payload of the current (producer_seq, variant).
func (p *producerState) content(r *rand.Rand) {
	pad := strings.Repeat("x", r.IntN(200))
	p.payload, _ = json.Marshal(map[string]any{"p": p.id, "k": p.next, "v": p.variant, "pad": pad})
}

func (w *Workload) appendBody(p *producerState) []byte {
	b, _ := json.Marshal(map[string]any{"type": "chaos", "payload": p.payload, "producer_id": p.id, "producer_seq": p.next})
	return b
}

// attempt sends one append and records it.
func (w *Workload) attempt(r *rand.Rand, proc, session string, p *producerState, body []byte, probe bool) (answer, string, history.Record) {
	node := r.IntN(len(w.nodes))
	// Now and then the client gives up early, often while the server is
	// still committing the write.
	var limit time.Duration
	if r.IntN(4) == 0 {
		limit = time.Duration(100+r.IntN(2900)) * time.Millisecond
	}
	call := w.h.Now()
	a := w.doWithin(node, "POST", "/v1/sessions/"+session+"/append", body, limit)
	out := outcome(a, 201)
	rec := history.Record{Type: history.TypeAppend, Proc: proc, Session: session, Node: node + 1, Call: call,
		Ret: w.h.Now(), Status: a.status, Code: a.code, Err: errString(a.err), Outcome: out,
		Producer: p.id, PSeq: p.next, Variant: p.variant, Payload: p.payload, Probe: probe}
	switch {
	case out == history.OutcomeOK:
		var res struct {
			Seq     uint64 `json:"seq"`
			LastSeq uint64 `json:"last_seq"`
			Deduped bool   `json:"deduped"`
		}
		if err := json.Unmarshal(a.body, &res); err != nil {
			rec.Err = "bad 201 body: " + errString(err)
		}
		rec.Seq, rec.LastSeq, rec.Deduped = res.Seq, res.LastSeq, res.Deduped
	case a.code == "producer_seq_conflict":
		if m := conflictRe.FindStringSubmatch(a.msg); m != nil {
			rec.Expected, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	w.h.Add(rec)
	w.stats.mu.Lock()
	w.stats.attempts++
	switch out {
	case history.OutcomeOK:
		if !probe {
			w.stats.acked++
		}
	case history.OutcomeAmbiguous:
		w.stats.ambiguous++
	case history.OutcomeUnavailable:
		w.stats.unav++
	case history.OutcomeUnsent:
		w.stats.unsent++
	}
	w.stats.mu.Unlock()
	return a, out, rec
}

// appendOne appends the producer's next event: retries until a definitive
// answer; once writes stop, until the drain deadline, after which an
// unresolved append is recorded as abandoned.
func (w *Workload) appendOne(r *rand.Rand, proc, session string, p *producerState) {
	if p.payload == nil {
		p.content(r)
	}
	for attempt := 0; ; attempt++ {
		if stopped(w.stopWrites) && time.Now().After(w.drainBy) {
			if p.tainted {
				w.h.Add(history.Record{Type: history.TypeAbandon, Proc: proc, Session: session,
					Producer: p.id, PSeq: p.next, Variant: p.variant, Payload: p.payload})
			}
			return
		}
		body := w.appendBody(p)
		a, out, _ := w.attempt(r, proc, session, p, body, false)
		switch out {
		case history.OutcomeOK:
			// Now and then, resend the acknowledged append on purpose: it
			// must dedupe to the same seq, wherever it lands.
			if r.IntN(10) == 0 {
				w.attempt(r, proc, session, p, body, true)
			}
			p.next++
			p.variant, p.tainted, p.payload = 0, false, nil
			return
		case history.OutcomeUnavailable, history.OutcomeUnsent:
			// Not written: the same content or, now and then, new content
			// under the same producer_seq, unless an earlier attempt with
			// this content may still commit.
			if !p.tainted && r.IntN(2) == 0 {
				p.variant++
				p.content(r)
			}
		case history.OutcomeAmbiguous:
			p.tainted = true
		case history.OutcomeRefused:
			if a.status == 404 {
				break // a lagging replica: retry the same content
			}
			// A conflict or a bad request: this producer's history is no
			// longer what it thinks. The checker judges it; carry on with a
			// fresh producer.
			p.gen++
			p.id = fmt.Sprintf("%s.%d", proc, p.gen)
			p.next, p.variant, p.tainted, p.payload = 1, 0, false, nil
			return
		}
		time.Sleep(backoff(r, attempt))
	}
}

// ---- tailers ----

// RunTailers starts the tailers.
func (w *Workload) RunTailers() {
	for i := 0; i < w.cfg.Tailers; i++ {
		w.tailers.Add(1)
		go func() {
			defer w.tailers.Done()
			w.tailer(i)
		}()
	}
}

func (w *Workload) target(session string) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.targets[session]
	return t, ok
}

func (w *Workload) tailer(id int) {
	r := w.rng(uint64(id) + 1<<20)
	proc := fmt.Sprintf("t%d", id)
	last := map[string]uint64{} // session → last seq received
	session := w.randomSession(r)
	for attempt := 0; ; attempt++ {
		if stopped(w.stopTails) {
			target, known := w.target(session)
			if !known || last[session] >= target || time.Now().After(w.tailsBy) {
				w.h.Add(history.Record{Type: history.TypeTailDone, Proc: proc, Session: session,
					Last: last[session], Target: target, CaughtUp: known && last[session] >= target})
				return
			}
		} else if r.IntN(5) == 0 {
			session = w.randomSession(r)
		}
		node := r.IntN(len(w.nodes))
		batch := []int{1, 1, 1, 4, 16}[r.IntN(5)]
		lifetime := time.Duration(3000+r.IntN(17000)) * time.Millisecond
		ok := w.tailOnce(proc, session, node, batch, lifetime, last)
		if !ok {
			time.Sleep(backoff(r, min(attempt, 5)))
		} else {
			attempt = 0
		}
	}
}

// tailOnce runs one tail connection from last[session]; it reports
// whether the upgrade succeeded.
func (w *Workload) tailOnce(proc, session string, node, batch int, lifetime time.Duration, last map[string]uint64) bool {
	w.mu.Lock()
	w.tailSeq++
	tid := int(w.tailSeq)
	w.mu.Unlock()
	cursor := last[session]
	u := strings.Replace(w.nodes[node].URL(), "http://", "ws://", 1) +
		fmt.Sprintf("/v1/sessions/%s/tail?cursor=%d&batch_size=%d", session, cursor, batch)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second,
		NetDialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	call := w.h.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	conn, res, err := d.DialContext(ctx, u, nil)
	cancel()
	open := history.Record{Type: history.TypeTailOpen, Proc: proc, Session: session, Node: node + 1, Tail: tid,
		Cursor: cursor, Batch: batch, Call: call, Ret: w.h.Now(), Err: errString(err)}
	if res != nil {
		open.Status = res.StatusCode
		if err != nil && res.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			var e struct{ Error string }
			json.Unmarshal(b, &e)
			open.Code = e.Error
		}
	}
	w.h.Add(open)
	if err != nil {
		return false
	}
	defer conn.Close()
	end := time.Now().Add(lifetime)
	const idle = 20 * time.Second
	closeRec := history.Record{Type: history.TypeTailClose, Proc: proc, Session: session, Node: node + 1, Tail: tid}
	for {
		target, known := w.target(session)
		if stopped(w.stopTails) && (!known || last[session] >= target || time.Now().After(w.tailsBy)) {
			closeRec.By, closeRec.Reason = "client", "stop"
			break
		}
		deadline := time.Now().Add(idle)
		if !stopped(w.stopTails) && end.Before(deadline) {
			deadline = end
		}
		conn.SetReadDeadline(deadline)
		typ, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				closeRec.By, closeRec.Close, closeRec.Reason = "server", ce.Code, ce.Text
			case errors.As(err, &ne) && ne.Timeout():
				closeRec.By, closeRec.Reason = "client", "lifetime"
				if time.Now().Before(end) || stopped(w.stopTails) {
					closeRec.Reason = "idle"
				}
			default:
				closeRec.By, closeRec.Err = "error", errString(err)
			}
			break
		}
		frame := history.Record{Type: history.TypeTailFrame, Proc: proc, Session: session, Tail: tid}
		if typ != websocket.TextMessage {
			frame.Err = fmt.Sprintf("frame type %d", typ)
			w.h.Add(frame)
			continue
		}
		var raws []json.RawMessage
		if batch > 1 {
			if err := json.Unmarshal(data, &raws); err != nil {
				frame.Err = "not an array: " + errString(err)
			}
		} else {
			raws = []json.RawMessage{data}
		}
		for _, raw := range raws {
			var ev struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(raw, &ev); err != nil {
				frame.Err = "bad event: " + errString(err)
				continue
			}
			frame.Seqs = append(frame.Seqs, ev.Seq)
			frame.Hashes = append(frame.Hashes, history.Hash(raw))
			last[session] = ev.Seq
		}
		w.h.Add(frame)
		w.stats.mu.Lock()
		w.stats.tailFrames++
		w.stats.mu.Unlock()
	}
	if closeRec.By == "client" {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
	}
	closeRec.Last = last[session]
	w.h.Add(closeRec)
	return true
}

// ---- the end of a run ----

// StopWrites stops the writers and the creator: each finishes the append
// in flight, for up to drain, and is waited for.
func (w *Workload) StopWrites(drain time.Duration) {
	w.drainBy = time.Now().Add(drain)
	close(w.stopWrites)
	w.creators.Wait()
	w.writers.Wait()
}

// SetTargets reads every session's final last_seq (a linearizable read)
// for the tailers to catch up to.
func (w *Workload) SetTargets(deadline time.Time) error {
	for _, s := range w.Sessions() {
		for n := 0; ; n = (n + 1) % len(w.nodes) {
			a := w.do(n, "GET", "/v1/sessions/"+s, nil)
			if a.err == nil && a.status == 200 {
				var v struct {
					LastSeq uint64 `json:"last_seq"`
				}
				json.Unmarshal(a.body, &v)
				w.mu.Lock()
				w.targets[s] = v.LastSeq
				w.mu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("last_seq of %s: %d %s %v", s, a.status, a.body, a.err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// StopTails lets every tailer catch up with its session's final last_seq,
// for up to wait, and waits for them.
func (w *Workload) StopTails(wait time.Duration) {
	w.tailsBy = time.Now().Add(wait)
	close(w.stopTails)
	w.tailers.Wait()
}

// FinalReads records every session's log as every node serves it.
func (w *Workload) FinalReads(deadline time.Time) {
	for _, s := range w.Sessions() {
		for n := range w.nodes {
			rec := history.Record{Type: history.TypeRead, Session: s, Node: n + 1}
			for {
				rec.Call = w.h.Now()
				evs, last, err := w.readAll(n, s)
				rec.Ret = w.h.Now()
				rec.Events, rec.LastSeq, rec.Err = evs, last, errString(err)
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			w.h.Add(rec)
		}
	}
}

func (w *Workload) readAll(node int, session string) ([]history.Event, uint64, error) {
	var all []history.Event
	cursor := uint64(0)
	for {
		a := w.do(node, "GET", fmt.Sprintf("/v1/sessions/%s/events?cursor=%d&limit=1000", session, cursor), nil)
		if a.err != nil {
			return nil, 0, a.err
		}
		if a.status != 200 {
			return nil, 0, fmt.Errorf("events from %d: %d %s", cursor, a.status, a.body)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor *uint64           `json:"next_cursor"`
			LastSeq    uint64            `json:"last_seq"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil {
			return nil, 0, err
		}
		for _, raw := range page.Events {
			var ev history.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				return nil, 0, err
			}
			ev.Hash = history.Hash(raw)
			all = append(all, ev)
		}
		if page.NextCursor == nil || *page.NextCursor >= page.LastSeq {
			return all, page.LastSeq, nil
		}
		cursor = *page.NextCursor
	}
}

// Summary is what the workload did, for the test log.
func (w *Workload) Summary() string {
	w.stats.mu.Lock()
	defer w.stats.mu.Unlock()
	return fmt.Sprintf("%d sessions, %d append attempts, %d acknowledged, %d ambiguous, %d raft_unavailable, %d refused connections, %d tail frames",
		len(w.Sessions()), w.stats.attempts, w.stats.acked, w.stats.ambiguous, w.stats.unav, w.stats.unsent, w.stats.tailFrames)
}
