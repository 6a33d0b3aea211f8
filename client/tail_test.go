package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// tailConnInfo is what a fake tail server learns from one handshake.
type tailConnInfo struct {
	n      int // 0-based connection number
	cursor uint64
	batch  int
	auth   string
}

// fakeTail serves the raw tail route; script runs each accepted
// connection (after the handshake, which reject may refuse).
type fakeTail struct {
	mu     sync.Mutex
	conns  []tailConnInfo
	reject func(info tailConnInfo) (status int, body string)
	script func(ctx context.Context, ws *websocket.Conn, info tailConnInfo)
}

func (f *fakeTail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cursor, _ := strconv.ParseUint(r.URL.Query().Get("cursor"), 10, 64)
	batch, _ := strconv.Atoi(r.URL.Query().Get("batch_size"))
	f.mu.Lock()
	info := tailConnInfo{n: len(f.conns), cursor: cursor, batch: batch, auth: r.Header.Get("Authorization")}
	f.conns = append(f.conns, info)
	f.mu.Unlock()
	if f.reject != nil {
		if st, body := f.reject(info); st != 0 {
			w.WriteHeader(st)
			fmt.Fprint(w, body)
			return
		}
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx := ws.CloseRead(r.Context()) // answers pings; ctx ends with the connection
	f.script(ctx, ws, info)
}

func (f *fakeTail) connections() []tailConnInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tailConnInfo(nil), f.conns...)
}

func event(seq uint64) string {
	return fmt.Sprintf(`{"seq":%d,"type":"t","payload":{"i":%d},"actor":"service:service","producer_id":"p","producer_seq":%d,`+
		`"source":null,"metadata":{},"refs":{},"idempotency_key":null,"inserted_at":"2026-03-01T12:00:01.123456Z","tenant_id":"service"}`, seq, seq, seq)
}

// send writes events from..to as frames of batch events (batch 1: bare
// objects, like the server).
func send(ctx context.Context, ws *websocket.Conn, batch int, from, to uint64) {
	for s := from; s <= to; {
		var frame string
		if batch <= 1 {
			frame = event(s)
			s++
		} else {
			var evs []string
			for ; s <= to && len(evs) < batch; s++ {
				evs = append(evs, event(s))
			}
			frame = "[" + strings.Join(evs, ",") + "]"
		}
		if ws.Write(ctx, websocket.MessageText, []byte(frame)) != nil {
			return
		}
	}
}

func startFakeTail(t *testing.T, f *fakeTail) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// collect runs a tail until it has n events or ends; it returns the
// seqs and the error that ended it (nil when n events came).
func collect(t *testing.T, c *Client, cursor uint64, n int, opts ...TailOption) ([]uint64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var seqs []uint64
	for e, err := range c.Tail(ctx, "s", cursor, opts...) {
		if err != nil {
			return seqs, err
		}
		seqs = append(seqs, e.Seq)
		if len(seqs) == n {
			break
		}
	}
	return seqs, nil
}

func wantRun(t *testing.T, seqs []uint64, from, to uint64) {
	t.Helper()
	if len(seqs) != int(to-from+1) {
		t.Fatalf("got seqs %v, want %d..%d", seqs, from, to)
	}
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("got seqs %v, want %d..%d", seqs, from, to)
		}
	}
}

// TestTailResumes: after a dropped connection the tail reconnects from
// the last seq it delivered; batch frames are split into events; events
// the server sends again are not delivered twice.
func TestTailResumes(t *testing.T) {
	f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
		switch info.n {
		case 0: // 5 events, then the connection dies without a close frame
			send(ctx, ws, info.batch, info.cursor+1, info.cursor+5)
		case 1: // replays two already delivered events, then goes on
			send(ctx, ws, info.batch, info.cursor-1, info.cursor+3)
			ws.Close(websocket.StatusServiceRestart, "draining")
		default:
			send(ctx, ws, info.batch, info.cursor+1, 100)
			<-ctx.Done()
		}
	}}
	c := newClient(t, startFakeTail(t, f))
	seqs, err := collect(t, c, 10, 20, BatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 11, 30)
	conns := f.connections()
	if len(conns) != 3 || conns[0].cursor != 10 || conns[1].cursor != 15 || conns[2].cursor != 18 || conns[2].batch != 3 {
		t.Fatalf("connections %+v", conns)
	}
}

// TestTailFailsOver: with the first node down the tail connects to the
// next one.
func TestTailFailsOver(t *testing.T) {
	f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
		send(ctx, ws, 1, info.cursor+1, info.cursor+3)
		<-ctx.Done()
	}}
	c := newClient(t, deadURL(t), WithNodes(startFakeTail(t, f)))
	seqs, err := collect(t, c, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 3)
}

// TestTailCloses: how each way a tail can end surfaces.
func TestTailCloses(t *testing.T) {
	closeWith := func(code websocket.StatusCode, reason string) func(context.Context, *websocket.Conn, tailConnInfo) {
		return func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
			send(ctx, ws, 1, info.cursor+1, info.cursor+2)
			ws.Close(code, reason)
		}
	}
	t.Run("1011 is ErrTailUnavailable", func(t *testing.T) {
		f := &fakeTail{script: closeWith(websocket.StatusInternalError, "replay_unavailable")}
		seqs, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 10)
		var ce *CloseError
		if !errors.Is(err, ErrTailUnavailable) || !errors.As(err, &ce) || ce.Reason != "replay_unavailable" {
			t.Fatalf("err %v", err)
		}
		wantRun(t, seqs, 1, 2)
		if n := len(f.connections()); n != 1 {
			t.Fatalf("%d connections after a 1011", n)
		}
	})
	t.Run("1011 of a node that cannot run the socket is retried", func(t *testing.T) {
		f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
			send(ctx, ws, 1, info.cursor+1, info.cursor+2)
			if info.n == 0 {
				ws.Close(websocket.StatusInternalError, "writer_unavailable")
			}
			<-ctx.Done()
		}}
		seqs, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 4)
		if err != nil {
			t.Fatal(err)
		}
		wantRun(t, seqs, 1, 4)
	})
	t.Run("4001 without refresh is ErrTokenExpired", func(t *testing.T) {
		f := &fakeTail{script: closeWith(4001, "token_expired")}
		_, err := collect(t, newClient(t, startFakeTail(t, f), WithToken("t")), 0, 10)
		if !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("1000 ends the stream", func(t *testing.T) {
		f := &fakeTail{script: closeWith(websocket.StatusNormalClosure, "")}
		seqs, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 10)
		if err != nil {
			t.Fatalf("err %v", err)
		}
		wantRun(t, seqs, 1, 2)
	})
	t.Run("policy close is a CloseError", func(t *testing.T) {
		f := &fakeTail{script: closeWith(websocket.StatusPolicyViolation, "no")}
		_, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 10)
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != 1008 {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("refused handshake is an APIError, not retried", func(t *testing.T) {
		f := &fakeTail{reject: func(tailConnInfo) (int, string) {
			return 404, `{"error":"session_not_found","message":"Session was not found"}`
		}}
		_, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 10)
		if !errors.Is(err, ErrSessionNotFound) || len(f.connections()) != 1 {
			t.Fatalf("err %v after %d handshakes", err, len(f.connections()))
		}
	})
	t.Run("no node reachable wraps ErrUnreachable", func(t *testing.T) {
		_, err := collect(t, newClient(t, deadURL(t)), 0, 10)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("a server dropping at once runs out of attempts", func(t *testing.T) {
		f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, _ tailConnInfo) {}}
		_, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 10)
		if !errors.Is(err, ErrUnreachable) || len(f.connections()) != fastRetry.Attempts {
			t.Fatalf("err %v after %d connections", err, len(f.connections()))
		}
	})
}

// TestTailRefreshesToken: a 4001 close and a 401 handshake fetch a new
// token and the tail goes on from its cursor with it.
func TestTailRefreshesToken(t *testing.T) {
	f := &fakeTail{
		reject: func(info tailConnInfo) (int, string) {
			if info.auth == "Bearer t2" {
				return 401, `{"error":"unauthorized","message":"Unauthorized"}`
			}
			return 0, ""
		},
		script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
			send(ctx, ws, 1, info.cursor+1, info.cursor+2)
			if info.auth != "Bearer t3" {
				ws.Close(4001, "token_expired")
				return
			}
			<-ctx.Done()
		},
	}
	var mu sync.Mutex
	issued := 0
	c := newClient(t, startFakeTail(t, f), WithTokenRefresh(func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		issued++
		return "t" + strconv.Itoa(issued), nil
	}))
	seqs, err := collect(t, c, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 4)
	var auths []string
	for _, cn := range f.connections() {
		auths = append(auths, fmt.Sprintf("%s@%d", cn.auth, cn.cursor))
	}
	if got := strings.Join(auths, " "); got != "Bearer t1@0 Bearer t2@2 Bearer t3@2" {
		t.Fatalf("handshakes %s", got)
	}
}

// TestTailGap: a server that skips a seq is reconnected to from the
// cursor; one that keeps skipping is ErrGap.
func TestTailGap(t *testing.T) {
	f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
		if info.n == 0 {
			send(ctx, ws, 1, 1, 2)
			send(ctx, ws, 1, 4, 5) // 3 is missing
		} else {
			send(ctx, ws, 1, info.cursor+1, 6)
		}
		<-ctx.Done()
	}}
	seqs, err := collect(t, newClient(t, startFakeTail(t, f)), 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 6)

	f = &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
		send(ctx, ws, 1, info.cursor+2, info.cursor+3)
		<-ctx.Done()
	}}
	_, err = collect(t, newClient(t, startFakeTail(t, f)), 0, 6)
	if !errors.Is(err, ErrGap) || len(f.connections()) != maxGaps {
		t.Fatalf("err %v after %d connections", err, len(f.connections()))
	}
}

// TestTailDropsSilentPeer: a connection whose peer stops answering pings
// is dropped and the tail reconnects.
func TestTailDropsSilentPeer(t *testing.T) {
	f := &fakeTail{script: func(ctx context.Context, ws *websocket.Conn, info tailConnInfo) {
		send(ctx, ws, 1, info.cursor+1, info.cursor+1)
		<-ctx.Done()
	}}
	stop := make(chan struct{})
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !first {
			f.ServeHTTP(w, r)
			return
		}
		// The first connection is wedged: it sends one event, then keeps
		// the TCP connection and answers nothing (it never reads, so
		// pings go unanswered).
		first = false
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		send(r.Context(), ws, 1, 1, 1)
		<-stop
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	ping := func(r *tailRequest) { r.pingEvery = 50 * time.Millisecond }
	seqs, err := collect(t, newClient(t, srv.URL), 0, 2, ping)
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, seqs, 1, 2)
	if conns := f.connections(); len(conns) != 1 || conns[0].cursor != 1 {
		t.Fatalf("reconnections %+v", conns)
	}
}
