package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fault is what the fake log does to one append request.
type fault int

const (
	serve            fault = iota
	dropBefore             // the connection drops before the event is written
	dropAfter              // written, then the connection drops (no answer)
	timeoutAfter           // written, then 503 raft_timeout
	unavailable            // 503 raft_unavailable, nothing written
	refuseInvalid          // 400 invalid_event, nothing written
	conflictExpected       // 409 expected_seq_conflict, nothing written
	hangAfter              // written, then no answer until the client gives up
)

// fakeLog is the producer rules of one session
// (docs/api.md#producer-sequencing) in memory, with a script of faults per
// request.
type fakeLog struct {
	t      *testing.T
	mu     sync.Mutex
	faults []fault // by request number; serve beyond the script
	calls  int
	log    []map[string]any // the events, seq = index+1
	last   map[string]uint64
	body   map[string]string // the body of each producer's last event
	bodies []string          // every request body, in order
}

func newFakeLog(t *testing.T, faults ...fault) (*fakeLog, *httptest.Server) {
	f := &fakeLog{t: t, faults: faults, last: map[string]uint64{}, body: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, string(raw))
	ft := serve
	if f.calls < len(f.faults) {
		ft = f.faults[f.calls]
	}
	f.calls++
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		f.t.Errorf("body %s: %v", raw, err)
	}
	reply := func(status int, body string) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	switch ft {
	case dropBefore:
		hangUp(w)
		return
	case unavailable:
		reply(503, `{"error":"raft_unavailable","message":"No available replicas"}`)
		return
	case refuseInvalid:
		reply(400, `{"error":"invalid_event","message":"Invalid event payload"}`)
		return
	case conflictExpected:
		reply(409, `{"error":"expected_seq_conflict","message":"Expected seq 0, current seq is 1"}`)
		return
	}
	p := ev["producer_id"].(string)
	seq := uint64(ev["producer_seq"].(float64))
	var status int
	var answer string
	switch {
	case seq == f.last[p]+1:
		f.log = append(f.log, ev)
		f.last[p], f.body[p] = seq, string(raw)
		status, answer = 201, fmt.Sprintf(`{"seq":%d,"last_seq":%d,"deduped":false}`, len(f.log), len(f.log))
	case seq == f.last[p] && f.body[p] == string(raw):
		orig := 0
		for i, e := range f.log {
			if e["producer_id"] == p && uint64(e["producer_seq"].(float64)) == seq {
				orig = i + 1
			}
		}
		status, answer = 201, fmt.Sprintf(`{"seq":%d,"last_seq":%d,"deduped":true}`, orig, len(f.log))
	case seq == f.last[p]:
		status, answer = 409, `{"error":"producer_replay_conflict","message":"Producer sequence was already used with different event content"}`
	default:
		status, answer = 409, fmt.Sprintf(`{"error":"producer_seq_conflict","message":"Producer %s expected seq %d, got %d"}`, p, f.last[p]+1, seq)
	}
	switch ft {
	case hangAfter:
		f.mu.Unlock()
		<-r.Context().Done()
		f.mu.Lock()
	case dropAfter:
		hangUp(w)
	case timeoutAfter:
		reply(503, `{"error":"raft_timeout","message":"Cluster request timed out"}`)
	default:
		reply(status, answer)
	}
}

func hangUp(w http.ResponseWriter) {
	conn, _, _ := w.(http.Hijacker).Hijack()
	conn.Close()
}

// texts returns the "text" payloads of the log, in seq order.
func (f *fakeLog) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.log {
		out = append(out, e["payload"].(map[string]any)["text"].(string))
	}
	return out
}

func text(s string) map[string]any { return map[string]any{"text": s} }

func TestProducer(t *testing.T) {
	cases := []struct {
		name        string
		faults      []fault
		wantDeduped bool
		wantTries   int
	}{
		{"first attempt answered", nil, false, 1},
		{"connection refused mid-way, then written", []fault{dropBefore}, false, 2},
		{"written, answer lost", []fault{dropAfter}, true, 2},
		{"written, raft_timeout", []fault{timeoutAfter}, true, 2},
		{"raft_unavailable twice", []fault{unavailable, unavailable}, false, 3},
		{"answer lost twice", []fault{dropAfter, dropAfter}, true, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeLog(t, append([]fault{serve}, tc.faults...)...)
			p := newClient(t, srv.URL).Producer("s", "w")
			ctx := context.Background()
			if _, err := p.Append(ctx, "token", text("a")); err != nil {
				t.Fatal(err)
			}
			r, err := p.Append(ctx, "token", text("b"))
			if err != nil {
				t.Fatal(err)
			}
			if r.Seq != 2 || r.LastSeq != 2 || r.ProducerSeq != 2 || r.Deduped != tc.wantDeduped || r.Attempts != tc.wantTries {
				t.Fatalf("result %+v", r)
			}
			if got := fmt.Sprint(f.texts()); got != "[a b]" {
				t.Fatalf("log %s", got)
			}
			// Every attempt of one append sent the same bytes.
			for _, b := range f.bodies[2:] {
				if b != f.bodies[1] {
					t.Fatalf("retry sent %s, first attempt %s", b, f.bodies[1])
				}
			}
			if p.LastSeq() != 2 {
				t.Fatalf("LastSeq %d", p.LastSeq())
			}
		})
	}
}

// TestProducerRefusal: a refused append leaves its producer_seq free for
// the next one and is not retried.
func TestProducerRefusal(t *testing.T) {
	for _, ft := range []fault{refuseInvalid, conflictExpected} {
		f, srv := newFakeLog(t, ft)
		p := newClient(t, srv.URL).Producer("s", "w")
		_, err := p.Append(context.Background(), "t", text("bad"), ExpectedSeq(0))
		var e *APIError
		if !errors.As(err, &e) || e.Status/100 != 4 || f.calls != 1 {
			t.Fatalf("fault %d: err %v after %d calls", ft, err, f.calls)
		}
		r, err := p.Append(context.Background(), "t", text("ok"))
		if err != nil || r.ProducerSeq != 1 || r.Seq != 1 {
			t.Fatalf("next append %+v, %v", r, err)
		}
	}
}

// TestProducerUnsure: an append that ends without an answer may be in
// the log. The next append finds out: when the earlier one was written
// its producer_seq answers producer_replay_conflict and the new event
// takes the next one; when it was not, the new event takes it.
func TestProducerUnsure(t *testing.T) {
	lost := []fault{dropAfter, dropAfter, dropAfter, dropAfter} // written, then every answer lost
	f, srv := newFakeLog(t, lost...)
	p := newClient(t, srv.URL).Producer("s", "w")
	if _, err := p.Append(context.Background(), "t", text("a")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
	r, err := p.Append(context.Background(), "t", text("b"))
	if err != nil || r.ProducerSeq != 2 || r.Seq != 2 || r.Deduped {
		t.Fatalf("after a lost append: %+v, %v", r, err)
	}
	if got := fmt.Sprint(f.texts()); got != "[a b]" {
		t.Fatalf("log %s", got)
	}

	never := []fault{dropBefore, dropBefore, dropBefore, dropBefore} // nothing written, no answer
	f, srv = newFakeLog(t, never...)
	p = newClient(t, srv.URL).Producer("s", "w")
	if _, err := p.Append(context.Background(), "t", text("a")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
	r, err = p.Append(context.Background(), "t", text("b"))
	if err != nil || r.ProducerSeq != 1 || r.Seq != 1 || fmt.Sprint(f.texts()) != "[b]" {
		t.Fatalf("after an unsent append: %+v, %v, log %v", r, err, f.texts())
	}
	// An append cancelled while it waits for its answer is unsure too.
	f, srv = newFakeLog(t, hangAfter)
	p = newClient(t, srv.URL).Producer("s", "w")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Append(ctx, "t", text("a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	r, err = p.Append(context.Background(), "t", text("b"))
	if err != nil || r.ProducerSeq != 2 || fmt.Sprint(f.texts()) != "[a b]" {
		t.Fatalf("after a cancelled append: %+v, %v, log %v", r, err, f.texts())
	}
	// Retrying the very same event after an unsure failure is deduped.
	f, srv = newFakeLog(t, lost...)
	p = newClient(t, srv.URL).Producer("s", "w")
	p.Append(context.Background(), "t", text("a"))
	r, err = p.Append(context.Background(), "t", text("a"))
	if err != nil || !r.Deduped || r.Seq != 1 || fmt.Sprint(f.texts()) != "[a]" {
		t.Fatalf("same event again: %+v, %v, log %v", r, err, f.texts())
	}
}

// TestProducerResume: a producer resumed after a stored producer_seq
// continues there; resuming from a wrong one is the server's conflict.
func TestProducerResume(t *testing.T) {
	f, srv := newFakeLog(t)
	c := newClient(t, srv.URL)
	a := c.Producer("s", "w")
	for _, s := range []string{"a", "b", "c"} {
		if _, err := a.Append(context.Background(), "t", text(s)); err != nil {
			t.Fatal(err)
		}
	}
	b := c.Producer("s", "w", ResumeAfter(a.LastSeq()))
	if r, err := b.Append(context.Background(), "t", text("d")); err != nil || r.ProducerSeq != 4 || r.Seq != 4 {
		t.Fatalf("resumed: %+v, %v", r, err)
	}
	stale := c.Producer("s", "w", ResumeAfter(1))
	if _, err := stale.Append(context.Background(), "t", text("x")); !errors.Is(err, ErrProducerSeqConflict) {
		t.Fatalf("stale resume: %v", err)
	}
	if got := fmt.Sprint(f.texts()); got != "[a b c d]" {
		t.Fatalf("log %s", got)
	}
}

// TestAppendOptions: the optional fields are sent as given.
func TestAppendOptions(t *testing.T) {
	f, srv := newFakeLog(t)
	p := newClient(t, srv.URL).Producer("s", "w")
	_, err := p.Append(context.Background(), "t", json.RawMessage(`{"text":"x"}`), ExpectedSeq(0), Source("agent"),
		Metadata(map[string]any{"m": 1}), Refs(map[string]any{"to_seq": 3}), IdempotencyKey("k"), Actor("service:service"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal([]byte(f.bodies[0]), &got)
	want := `map[actor:service:service expected_seq:0 idempotency_key:k metadata:map[m:1] payload:map[text:x] ` +
		`producer_id:w producer_seq:1 refs:map[to_seq:3] source:agent type:t]`
	if fmt.Sprint(got) != want {
		t.Fatalf("body %v\nwant %s", got, want)
	}
}
