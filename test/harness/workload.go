package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Targets chooses the node for each request of a Producer or Follower.
// Release, when set, is called once the request is over (a test that
// restarts nodes uses it to wait until no request is in flight on one).
type Targets struct {
	Pick    func() *Node
	Release func(*Node)
}

// RoundRobin uses the nodes in turn.
func RoundRobin(nodes ...*Node) Targets {
	var mu sync.Mutex
	turn := 0
	return Targets{Pick: func() *Node {
		mu.Lock()
		defer mu.Unlock()
		turn++
		return nodes[(turn-1)%len(nodes)]
	}}
}

func (ts Targets) release(n *Node) {
	if ts.Release != nil {
		ts.Release(n)
	}
}

// Producer appends to one session the way the API asks a careful client
// to: the next producer_seq, and after an ambiguous outcome (no answer, a
// 5xx) the same producer_seq and content again, through the next target —
// an append that did commit comes back as a dedupe, never twice.
type Producer struct {
	t       testing.TB
	Session string
	ID      string // producer_id
	targets Targets

	mu    sync.Mutex
	acked map[uint64]uint64 // producer_seq → seq
	next  uint64
	errs  map[string]int // "transport" or "<status> <code>" → count
}

// NewProducer returns a producer "prod" of session.
func NewProducer(t testing.TB, session string, targets Targets) *Producer {
	return &Producer{t: t, Session: session, ID: "prod", targets: targets, acked: map[uint64]uint64{}, next: 1,
		errs: map[string]int{}}
}

// AppendOne appends the next event, retrying until it is acknowledged or
// the deadline passes; false on the deadline or a definitive refusal (a
// test error).
func (p *Producer) AppendOne(deadline time.Time) bool {
	for time.Now().Before(deadline) {
		n := p.targets.Pick()
		st, r, body, err := n.Append(p.Session, p.ID, p.next, map[string]any{"n": p.next})
		p.targets.release(n)
		p.mu.Lock()
		switch {
		case err == nil && st == 201:
			p.acked[p.next] = r.Seq
			p.next++
			p.mu.Unlock()
			return true
		case err != nil:
			p.errs["transport"]++
		default:
			var e struct{ Error string }
			json.Unmarshal(body, &e)
			p.errs[fmt.Sprintf("%d %s", st, e.Error)]++
		}
		p.mu.Unlock()
		if st >= 400 && st < 500 {
			p.t.Errorf("%s: append #%d via %s: definitive %d %s", p.Session, p.next, n.Name, st, body)
			return false
		}
		if err != nil && !n.Running() {
			time.Sleep(20 * time.Millisecond) // that node is gone: let the rotation move on
		}
	}
	return false
}

// Run appends until stop is closed; the returned channel closes when it
// has stopped.
func (p *Producer) Run(stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !p.AppendOne(time.Now().Add(60 * time.Second)) {
				p.t.Errorf("%s: append #%d not acknowledged within 60s", p.Session, p.next)
				return
			}
		}
	}()
	return done
}

// Next is the producer_seq the next append will carry.
func (p *Producer) Next() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

// Count is the number of acknowledged appends.
func (p *Producer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// LastSeq is the highest acknowledged seq.
func (p *Producer) LastSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var m uint64
	for _, s := range p.acked {
		m = max(m, s)
	}
	return m
}

// Errors returns the client-visible errors: their total and their kinds.
func (p *Producer) Errors() (int, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.errs {
		n += v
	}
	return n, maps.Clone(p.errs)
}

// Verify checks the session's log on every given node: seqs run 1..n
// without a gap, every node holds the same bytes, and the producer's
// events are exactly the acknowledged ones, each at its acknowledged seq.
// It returns how many events other producers wrote.
func (p *Producer) Verify(nodes ...*Node) int {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var first []json.RawMessage
	others := 0
	for _, n := range nodes {
		evs, err := n.Events(p.Session)
		if err != nil {
			p.t.Fatalf("%s: %v", n.Name, err)
		}
		mine := 0
		for i, raw := range evs {
			var ev struct {
				Seq         uint64 `json:"seq"`
				ProducerID  string `json:"producer_id"`
				ProducerSeq uint64 `json:"producer_seq"`
			}
			if err := json.Unmarshal(raw, &ev); err != nil {
				p.t.Fatalf("%s: event %d: %v", n.Name, i+1, err)
			}
			if ev.Seq != uint64(i+1) {
				p.t.Fatalf("%s: event %d of %s has seq %d", n.Name, i+1, p.Session, ev.Seq)
			}
			if first != nil && (len(first) != len(evs) || !bytes.Equal(first[i], raw)) {
				p.t.Fatalf("%s: event %d of %s differs from %s's copy", n.Name, i+1, p.Session, nodes[0].Name)
			}
			if ev.ProducerID != p.ID {
				continue
			}
			mine++
			if p.acked[ev.ProducerSeq] != ev.Seq {
				p.t.Fatalf("%s: producer_seq %d of %s is at seq %d; acknowledged at %d",
					n.Name, ev.ProducerSeq, p.Session, ev.Seq, p.acked[ev.ProducerSeq])
			}
		}
		if mine != len(p.acked) {
			p.t.Fatalf("%s holds %d events of the producer of %s, %d were acknowledged", n.Name, mine, p.Session, len(p.acked))
		}
		if first == nil {
			first = evs
		}
		others = len(evs) - mine
	}
	return others
}

// Follower tails one session from seq 1 for as long as it runs, moving to
// the next target and resuming from its cursor whenever a socket ends,
// and records any gap or duplicate.
type Follower struct {
	Session string
	batch   int
	targets Targets

	mu     sync.Mutex
	last   uint64
	closes map[string]int // close code and reason (or dial failure) → count
	bad    error
}

// NewFollower returns a follower reading frames of up to batch events.
func NewFollower(session string, batch int, targets Targets) *Follower {
	return &Follower{Session: session, batch: batch, targets: targets, closes: map[string]int{}}
}

// Run follows until stop is closed; the returned channel closes when it
// has stopped.
func (f *Follower) Run(stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := f.targets.Pick()
			tc, st, body, err := n.DialTail(f.Session, fmt.Sprintf("cursor=%d&batch_size=%d", f.Last(), f.batch), nil)
			f.targets.release(n)
			if err != nil {
				f.note(fmt.Sprintf("dial %d %s", st, bytes.TrimSpace(body)))
				time.Sleep(50 * time.Millisecond)
				continue
			}
			f.read(tc, stop)
			tc.Conn.Close()
		}
	}()
	return done
}

func (f *Follower) read(tc *TailClient, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		evs, err := tc.Next(2 * time.Second)
		var ne net.Error
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return // a quiet session: a timed-out socket cannot be read again, reconnect
		case errors.As(err, &ce):
			f.note(fmt.Sprintf("%d %s", ce.Code, ce.Text))
			return
		case err != nil:
			f.note("error")
			return
		}
		f.mu.Lock()
		for _, ev := range evs {
			if ev.Seq != f.last+1 && f.bad == nil {
				f.bad = fmt.Errorf("%s: tail got seq %d after %d (gap or duplicate)", f.Session, ev.Seq, f.last)
			}
			f.last = max(f.last, ev.Seq)
		}
		f.mu.Unlock()
	}
}

func (f *Follower) note(what string) {
	f.mu.Lock()
	f.closes[what]++
	f.mu.Unlock()
}

// Last is the last seq received.
func (f *Follower) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Err is the first gap or duplicate seen, if any.
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bad
}

// Closes counts why sockets ended (close code and reason, or dial failures).
func (f *Follower) Closes() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.closes)
}

// CheckMinorityAppend judges the append a partitioned minority refused
// with refusal, given how often it is in the log after healing (others,
// from Producer.Verify): raft_unavailable promises it was not written;
// raft_timeout leaves it open (the minority may have forwarded it before
// the cut), but never more than once.
func CheckMinorityAppend(t testing.TB, refusal any, others int) {
	t.Helper()
	switch {
	case refusal == "raft_unavailable" && others != 0:
		t.Fatalf("the minority refused with raft_unavailable, yet its append is in the log")
	case refusal == "raft_timeout" && others > 1:
		t.Fatalf("the minority's ambiguous append is in the log %d times", others)
	case refusal != "raft_unavailable" && refusal != "raft_timeout":
		t.Fatalf("the minority refused with %v", refusal)
	default:
		t.Logf("the minority refused with %s; its append committed %d time(s) after healing", refusal, others)
	}
}
