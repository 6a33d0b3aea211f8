package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// phxConn is what a fake socket learns from one connection and its join.
type phxConn struct {
	n      int
	token  string
	topic  string
	cursor uint64
	batch  int
}

// fakePhoenix serves /v1/socket/websocket with one tail channel per
// socket: refuse may refuse the connect (403), joinError the join (its
// reason), then script pushes on the channel. Heartbeats are answered
// unless silent says otherwise.
type fakePhoenix struct {
	mu        sync.Mutex
	conns     []phxConn
	refuse    func(token string) bool
	joinError func(c phxConn) string
	silent    func(c phxConn) bool
	script    func(ctx context.Context, push func(event string, payload any), c phxConn)
}

func (f *fakePhoenix) connections() []phxConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]phxConn(nil), f.conns...)
}

func (f *fakePhoenix) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/v1/socket/websocket" || q.Get("vsn") != "2.0.0" || (f.refuse != nil && f.refuse(q.Get("token"))) {
		w.WriteHeader(403)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		return
	}
	var join []json.RawMessage
	json.Unmarshal(b, &join)
	var params struct {
		Cursor uint64 `json:"cursor"`
		Batch  int    `json:"batch_size"`
	}
	c := phxConn{token: q.Get("token")}
	json.Unmarshal(join[2], &c.topic)
	json.Unmarshal(join[4], &params)
	c.cursor, c.batch = params.Cursor, params.Batch
	f.mu.Lock()
	c.n = len(f.conns)
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	write := func(frame ...any) {
		out, _ := json.Marshal(frame)
		ws.Write(ctx, websocket.MessageText, out)
	}
	if f.joinError != nil {
		if reason := f.joinError(c); reason != "" {
			write("1", "1", c.topic, "phx_reply", map[string]any{"status": "error", "response": map[string]any{"reason": reason}})
			<-ctx.Done()
			return
		}
	}
	write("1", "1", c.topic, "phx_reply", map[string]any{"status": "ok", "response": map[string]any{}})
	go func() { // heartbeats
		defer cancel()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var fr []json.RawMessage
			json.Unmarshal(b, &fr)
			var ref string
			json.Unmarshal(fr[1], &ref)
			if string(fr[3]) == `"heartbeat"` && (f.silent == nil || !f.silent(c)) {
				write(nil, ref, "phoenix", "phx_reply", map[string]any{"status": "ok", "response": map[string]any{}})
			}
		}
	}()
	f.script(ctx, func(event string, payload any) { write("1", nil, c.topic, event, payload) }, c)
	<-ctx.Done()
}

// pushEvents pushes events from..to in pushes of up to batch.
func pushEvents(push func(string, any), batch int, from, to uint64) {
	for s := from; s <= to; {
		var evs []json.RawMessage
		for ; s <= to && len(evs) < max(batch, 1); s++ {
			evs = append(evs, json.RawMessage(event(s)))
		}
		push("events", map[string]any{"events": evs})
	}
}

func startFakePhoenix(t *testing.T, f *fakePhoenix) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPhoenixTail: events pushes are split into events; a phx_error is
// a rejoin from the cursor; events again and the gap push are dropped.
func TestPhoenixTail(t *testing.T) {
	f := &fakePhoenix{script: func(ctx context.Context, push func(string, any), c phxConn) {
		switch c.n {
		case 0:
			pushEvents(push, c.batch, c.cursor+1, c.cursor+5)
			push("phx_error", map[string]any{})
		default:
			pushEvents(push, c.batch, c.cursor-1, c.cursor+2) // two again
			push("gap", map[string]any{"type": "gap", "reason": "resume_invalidated"})
			pushEvents(push, c.batch, c.cursor+3, 100)
		}
	}}
	c := newClient(t, startFakePhoenix(t, f))
	seqs, err := collect(t, c, 3, 20, BatchSize(4), PhoenixSocket())
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 4, 23)
	conns := f.connections()
	if len(conns) != 2 || conns[0].cursor != 3 || conns[1].cursor != 8 || conns[1].batch != 4 || conns[1].topic != "tail:s" {
		t.Fatalf("joins %+v", conns)
	}
}

// TestPhoenixRefusals: join errors are the API's errors, not retried; a
// channel that keeps failing is ErrTailUnavailable in the end.
func TestPhoenixRefusals(t *testing.T) {
	for reason, want := range map[string]*APIError{"session_not_found": ErrSessionNotFound,
		"forbidden_scope": ErrForbiddenScope, "invalid_cursor": ErrInvalidCursor} {
		f := &fakePhoenix{joinError: func(phxConn) string { return reason }, script: func(context.Context, func(string, any), phxConn) {}}
		_, err := collect(t, newClient(t, startFakePhoenix(t, f)), 0, 1, PhoenixSocket())
		var e *APIError
		if !errors.Is(err, want) || !errors.As(err, &e) || e.Status != want.Status || len(f.connections()) != 1 {
			t.Fatalf("%s: err %v after %d joins", reason, err, len(f.connections()))
		}
	}
	f := &fakePhoenix{script: func(ctx context.Context, push func(string, any), c phxConn) {
		push("phx_error", map[string]any{})
	}}
	_, err := collect(t, newClient(t, startFakePhoenix(t, f)), 0, 1, PhoenixSocket())
	if !errors.Is(err, ErrTailUnavailable) || len(f.connections()) != fastRetry.Attempts {
		t.Fatalf("err %v after %d joins", err, len(f.connections()))
	}
}

// TestPhoenixTokens: a refused connect (403), a token_expired push and a
// join refused with token_expired each fetch a new token, and the tail
// goes on from its cursor; without a refresh function the expiry is
// ErrTokenExpired.
func TestPhoenixTokens(t *testing.T) {
	f := &fakePhoenix{
		refuse: func(token string) bool { return token == "t2" },
		joinError: func(c phxConn) string {
			if c.token == "t3" {
				return "token_expired"
			}
			return ""
		},
		script: func(ctx context.Context, push func(string, any), c phxConn) {
			pushEvents(push, 1, c.cursor+1, c.cursor+2)
			if c.token != "t4" {
				push("token_expired", map[string]any{"reason": "token_expired"})
				push("phx_close", map[string]any{})
			}
		},
	}
	var mu sync.Mutex
	issued := 0
	c := newClient(t, startFakePhoenix(t, f), WithTokenRefresh(func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		issued++
		return "t" + strconv.Itoa(issued), nil
	}))
	seqs, err := collect(t, c, 0, 4, PhoenixSocket())
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 4)
	var joins []string
	for _, cn := range f.connections() {
		joins = append(joins, cn.token+"@"+strconv.FormatUint(cn.cursor, 10))
	}
	// t2's connect is refused before any join.
	if got := strings.Join(joins, " "); got != "t1@0 t3@2 t4@2" {
		t.Fatalf("joins %s", got)
	}

	_, err = collect(t, newClient(t, startFakePhoenix(t, f), WithToken("t1")), 0, 10, PhoenixSocket())
	if !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("without refresh: %v", err)
	}
}

// TestPhoenixHeartbeats: a socket that stops answering heartbeats is
// dropped and the tail rejoins from its cursor.
func TestPhoenixHeartbeats(t *testing.T) {
	f := &fakePhoenix{
		silent: func(c phxConn) bool { return c.n == 0 },
		script: func(ctx context.Context, push func(string, any), c phxConn) {
			pushEvents(push, 1, c.cursor+1, c.cursor+1)
		},
	}
	ping := func(r *tailRequest) { r.pingEvery = 50 * time.Millisecond }
	seqs, err := collect(t, newClient(t, startFakePhoenix(t, f)), 0, 2, PhoenixSocket(), ping)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 2)
	if conns := f.connections(); len(conns) != 2 || conns[1].cursor != 1 {
		t.Fatalf("joins %+v", conns)
	}
}
