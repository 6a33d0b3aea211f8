package socket

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestTailJoin: the join's checks in their order, with the exact reasons,
// in both modes.
func TestTailJoin(t *testing.T) {
	for _, e := range []*env{noneEnv(t, nil), jwtEnv(t, nil)} {
		t.Run(e.name, func(t *testing.T) {
			e.create(t, "j1")
			c := e.socket(t, e.token("acme", "user:u1", []string{"session:read"}))
			tests := []struct {
				name   string
				topic  string
				params any
				reason string
			}{
				{"empty session id", "tail:", map[string]any{}, "unauthorized"},
				{"params not an object", "tail:j1", []any{}, "unauthorized"},
				{"params a string", "tail:j1", "x", "unauthorized"},
				{"cursor null", "tail:j1", map[string]any{"cursor": nil}, "invalid_cursor"},
				{"cursor a string", "tail:j1", map[string]any{"cursor": "1"}, "invalid_cursor"},
				{"cursor a float", "tail:j1", map[string]any{"cursor": 1.5}, "invalid_cursor"},
				{"cursor 1.0", "tail:j1", json.RawMessage(`{"cursor":1.0}`), "invalid_cursor"},
				{"cursor negative", "tail:j1", map[string]any{"cursor": -1}, "invalid_cursor"},
				{"cursor an object", "tail:j1", map[string]any{"cursor": map[string]any{"epoch": 0, "seq": 0}}, "invalid_cursor"},
				{"cursor beyond 2^63-1", "tail:j1", json.RawMessage(`{"cursor":9223372036854775808}`), "invalid_cursor"},
				{"batch_size null", "tail:j1", map[string]any{"batch_size": nil}, "invalid_tail_batch_size"},
				{"batch_size a string", "tail:j1", map[string]any{"batch_size": "2"}, "invalid_tail_batch_size"},
				{"batch_size 0", "tail:j1", map[string]any{"batch_size": 0}, "invalid_tail_batch_size"},
				{"batch_size 1001", "tail:j1", map[string]any{"batch_size": 1001}, "invalid_tail_batch_size"},
				{"batch_size a float", "tail:j1", map[string]any{"batch_size": 2.5}, "invalid_tail_batch_size"},
				{"cursor before batch_size", "tail:j1", map[string]any{"cursor": "x", "batch_size": 0}, "invalid_cursor"},
				{"params before session lookup", "tail:nope", map[string]any{"cursor": -1}, "invalid_cursor"},
				{"unknown session", "tail:nope", map[string]any{}, "session_not_found"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { joinError(t, c, tt.topic, tt.params, tt.reason) })
			}
			t.Run("valid joins", func(t *testing.T) {
				for _, p := range []any{
					map[string]any{},
					map[string]any{"cursor": 0, "batch_size": 1},
					map[string]any{"cursor": 5, "batch_size": 1000, "unknown": true},
					map[string]any{"live_only": true},
				} {
					leave(t, c, "tail:j1", join(t, c, "tail:j1", p))
				}
			})
			if !e.jwt {
				return
			}
			e.create(t, "j2")
			other := mintToken("umbrella", "service:x", allScopes)
			if st, b := e.n.Do("POST", "/v1/sessions", map[string]any{"id": "other-tenant"}, e.auth(other)); st != 201 {
				t.Fatalf("create: %d %s", st, b)
			}
			read := []string{"session:read"}
			auth := []struct {
				name   string
				token  string
				topic  string
				params any
				reason string
			}{
				{"no read scope", mintToken("acme", "user:u1", []string{"session:append"}), "tail:j1", map[string]any{}, "forbidden_scope"},
				{"scope before the session lookup", mintToken("acme", "user:u1", []string{"session:append"}), "tail:nope", map[string]any{}, "forbidden_scope"},
				{"cursor before scope", mintToken("acme", "user:u1", []string{"session:append"}), "tail:j1", map[string]any{"cursor": nil}, "invalid_cursor"},
				{"locked to another session", mintToken("acme", "user:u1", read, "session_id", "j2"), "tail:j1", map[string]any{}, "forbidden_session"},
				{"lock before the session lookup", mintToken("acme", "user:u1", read, "session_id", "j2"), "tail:nope", map[string]any{}, "forbidden_session"},
				{"scope before lock", mintToken("acme", "user:u1", []string{"session:append"}, "session_id", "j2"), "tail:j1", map[string]any{}, "forbidden_scope"},
				{"another tenant's session", mintToken("acme", "user:u1", read), "tail:other-tenant", map[string]any{}, "forbidden_tenant"},
			}
			for _, tt := range auth {
				t.Run(tt.name, func(t *testing.T) {
					joinError(t, e.socket(t, tt.token), tt.topic, tt.params, tt.reason)
				})
			}
			t.Run("locked to this session", func(t *testing.T) {
				join(t, e.socket(t, mintToken("acme", "agent:a", read, "session_id", "j1")), "tail:j1", map[string]any{})
			})
			t.Run("expired token: checked first", func(t *testing.T) {
				// inside the node's 5 s leeway: connects, then every join fails
				c := e.socket(t, mintToken("acme", "user:u1", read, "exp", time.Now().Unix()-1))
				joinError(t, c, "tail:j1", map[string]any{"cursor": -1}, "token_expired")
				joinError(t, c, "tail:nope", map[string]any{}, "token_expired")
				joinError(t, c, "tail:", map[string]any{}, "unauthorized")
			})
		})
	}
}

// TestTailEvents: replay then live, batches, cursors and the event
// object, in both modes (docs/api.md#the-events-push).
func TestTailEvents(t *testing.T) {
	for _, e := range []*env{noneEnv(t, nil), jwtEnv(t, nil)} {
		t.Run(e.name, func(t *testing.T) {
			tok := e.token("acme", "user:u1", []string{"session:read"})
			e.create(t, "ev")
			e.appendN(t, "ev", 1, 3)

			t.Run("join {} replays from 1, then live one-element pushes", func(t *testing.T) {
				c := e.socket(t, tok)
				j := join(t, c, "tail:ev", map[string]any{})
				evs := collect(t, c, "tail:ev", 1, 3, 1)
				stored := e.restEvents(t, "ev")
				for i, ev := range evs {
					checkEvent(t, ev)
					if !sameJSON(ev.Raw, stored[i]) {
						t.Fatalf("pushed %s\nstored %s", ev.Raw, stored[i])
					}
				}
				e.appendN(t, "ev", 4, 4)
				f, err := c.NextOn("tail:ev", wait)
				if err != nil {
					t.Fatal(err)
				}
				if *f.JoinRef != j || f.Ref != nil {
					t.Fatalf("push refs: %s", f)
				}
				live, err := f.Events()
				if err != nil || len(live) != 1 || live[0].Seq != 4 {
					t.Fatalf("live push %s %v", f, err)
				}
				checkEvent(t, live[0])
			})

			t.Run("batch_size 2 over three events: [1,2] then [3]", func(t *testing.T) {
				e.create(t, "b3")
				e.appendN(t, "b3", 1, 3)
				c := e.socket(t, tok)
				join(t, c, "tail:b3", map[string]any{"batch_size": 2})
				evs := collect(t, c, "tail:b3", 1, 3, 2)
				if evs[0].Push != 2 || evs[1].Push != 2 || evs[2].Push != 1 {
					t.Fatalf("push sizes %d %d %d, want 2 2 1", evs[0].Push, evs[1].Push, evs[2].Push)
				}
				e.appendN(t, "b3", 4, 4)
				if live := collect(t, c, "tail:b3", 4, 4, 1); live[0].Push != 1 {
					t.Fatalf("live push of %d events", live[0].Push)
				}
			})

			t.Run("cursor 1 over two events: [2]", func(t *testing.T) {
				e.create(t, "c2")
				e.appendN(t, "c2", 1, 2)
				c := e.socket(t, tok)
				join(t, c, "tail:c2", map[string]any{"cursor": 1})
				collect(t, c, "tail:c2", 2, 2, 1)
				quiet(t, c, "after [2]")
			})

			t.Run("live_only is ignored: replays from 1", func(t *testing.T) {
				c := e.socket(t, tok)
				join(t, c, "tail:ev", map[string]any{"live_only": true})
				collect(t, c, "tail:ev", 1, 4, 1)
			})

			t.Run("two tails on one socket, independently", func(t *testing.T) {
				e.create(t, "two-a")
				e.create(t, "two-b")
				e.appendN(t, "two-a", 1, 5)
				e.appendN(t, "two-b", 1, 2)
				c := e.socket(t, tok)
				ja := join(t, c, "tail:two-a", map[string]any{"cursor": 2, "batch_size": 3})
				join(t, c, "tail:two-b", map[string]any{})
				collect(t, c, "tail:two-a", 3, 5, 3)
				collect(t, c, "tail:two-b", 1, 2, 1)
				e.appendN(t, "two-b", 3, 3)
				e.appendN(t, "two-a", 6, 6)
				collect(t, c, "tail:two-b", 3, 3, 1)
				collect(t, c, "tail:two-a", 6, 6, 1)
				// leaving one leaves the other running
				leave(t, c, "tail:two-a", ja)
				e.appendN(t, "two-a", 7, 7)
				e.appendN(t, "two-b", 4, 4)
				collect(t, c, "tail:two-b", 4, 4, 1)
			})
		})
	}
}

// checkEvent: the event object of a push carries no epoch, no null the
// SDK rejects, and inserted_at in UTC with Z; its cursor is its seq.
func checkEvent(t testing.TB, ev harness.PhxEvent) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Raw, &m); err != nil {
		t.Fatal(err)
	}
	if c, ok := m["cursor"].(float64); !ok || uint64(c) != ev.Seq {
		t.Fatalf("cursor %v, seq %d: %s", m["cursor"], ev.Seq, ev.Raw)
	}
	if _, ok := m["epoch"]; ok {
		t.Fatalf("epoch on the wire: %s", ev.Raw)
	}
	for _, k := range []string{"source", "metadata", "refs", "inserted_at", "producer_id", "producer_seq"} {
		if v, ok := m[k]; ok && v == nil {
			t.Fatalf("%s is null: %s", k, ev.Raw)
		}
	}
	for _, k := range []string{"seq", "type", "payload", "actor", "producer_id", "producer_seq"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("no %s: %s", k, ev.Raw)
		}
	}
	if ts, _ := m["inserted_at"].(string); !strings.HasSuffix(ts, "Z") {
		t.Fatalf("inserted_at %q", m["inserted_at"])
	}
}

// TestTailLive: events appended while a channel replays arrive exactly
// once, in order, with no gap: replay, buffered live, then live.
func TestTailLive(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "race")
	e.appendN(t, "race", 1, 300)
	const total = 1200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.appendN(t, "race", 301, total)
	}()
	var socks []*harness.Phoenix
	for i := 0; i < 4; i++ {
		c := e.socket(t, "")
		join(t, c, "tail:race", map[string]any{"batch_size": []int{1, 7, 100, 1000}[i]})
		socks = append(socks, c)
	}
	for i, c := range socks {
		collect(t, c, "tail:race", 1, total, []int{1, 7, 100, 1000}[i])
	}
	wg.Wait()
	for _, c := range socks {
		quiet(t, c, "after the last event")
	}
}

// TestTailGap: a join whose cursor is ahead of the session gets one
// resume_invalidated gap and continues from last_seq; a repeat within
// 10 s on the same socket waits silently instead (the SDK's rejoin loop).
func TestTailGap(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "gap")
	e.appendN(t, "gap", 1, 5)
	c := e.socket(t, "")
	j := join(t, c, "tail:gap", map[string]any{"cursor": 12})
	f, err := c.NextOn("tail:gap", wait)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, f, fmt.Sprintf(`[%q,null,"tail:gap","gap",{"type":"gap","reason":"resume_invalidated","from_cursor":12,`+
		`"next_cursor":5,"committed_cursor":0,"earliest_available_cursor":1}]`, j))
	e.appendN(t, "gap", 6, 6)
	collect(t, c, "tail:gap", 6, 6, 1) // continues from next_cursor on the same channel

	// The SDK rejoins with its cursor (it never lowers it): leave, join.
	leave(t, c, "tail:gap", j)
	join(t, c, "tail:gap", map[string]any{"cursor": 12})
	quiet(t, c, "a second join ahead of the session within 10 s")
	e.appendN(t, "gap", 7, 13)
	collect(t, c, "tail:gap", 13, 13, 1) // waited until the session passed 12

	// another socket has its own window
	c2 := e.socket(t, "")
	join(t, c2, "tail:gap", map[string]any{"cursor": 20})
	f = await(t, c2, "gap", func(f harness.PhxFrame) bool { return f.Event == "gap" })
	if !strings.Contains(string(f.Payload), `"next_cursor":13`) {
		t.Fatalf("gap %s", f)
	}
	// a cursor equal to last_seq is no gap
	join(t, c2, "tail:gap", map[string]any{"cursor": 13})
	await(t, c2, "phx_close of the replaced channel", func(f harness.PhxFrame) bool { return f.Event == "phx_close" })
	quiet(t, c2, "a join at last_seq")
}

// TestTailTokenExpiry: at exp each channel gets token_expired then
// phx_close; the socket stays open and refuses later joins.
func TestTailTokenExpiry(t *testing.T) {
	e := jwtEnv(t, nil)
	e.create(t, "te")
	e.create(t, "te2")
	exp := time.Now().Unix() + 3
	c := e.socket(t, mintToken("acme", "user:u1", []string{"session:read"}, "exp", exp))
	j1 := join(t, c, "tail:te", map[string]any{})
	j2 := join(t, c, "tail:te2", map[string]any{})
	e.appendN(t, "te", 1, 1)
	collect(t, c, "tail:te", 1, 1, 1)
	for _, ch := range []struct{ topic, j string }{{"tail:te", j1}, {"tail:te2", j2}} {
		f, err := c.NextOn(ch.topic, wait)
		if err != nil {
			t.Fatal(err)
		}
		wantFrame(t, f, fmt.Sprintf(`[%q,null,%q,"token_expired",{"reason":"token_expired"}]`, ch.j, ch.topic))
		if now := time.Now().Unix(); now < exp {
			t.Fatalf("token_expired at %d, before exp %d", now, exp)
		}
		f, err = c.NextOn(ch.topic, wait)
		if err != nil {
			t.Fatal(err)
		}
		wantFrame(t, f, fmt.Sprintf(`[%q,%q,%q,"phx_close",{}]`, ch.j, ch.j, ch.topic))
	}
	quiet(t, c, "the socket after expiry")
	joinError(t, c, "tail:te", map[string]any{"cursor": 1}, "token_expired")
}

// TestHeartbeatDuringReplay: a channel replaying a large session does not
// hold up the socket: a heartbeat sent while the replay streams is
// answered before the replay ends (the delay is reported), and the replay
// is still complete and in order.
func TestHeartbeatDuringReplay(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "long")
	blob := strings.Repeat("r", 16<<10)
	const total = 1500 // 24 MB: far more than a socket queues at once
	for i := uint64(1); i <= total; i++ {
		e.appendOne(t, "long", i, map[string]any{"blob": blob})
	}
	c := e.socket(t, "")
	join(t, c, "tail:long", map[string]any{})
	collect(t, c, "tail:long", 1, 50, 1) // the replay is streaming
	ref, _ := c.Heartbeat()
	sent := time.Now()
	f := reply(t, c, ref)
	delay := f.At.Sub(sent)
	before := 50 + countEvents(t, c.Kept())
	t.Logf("heartbeat answered after %v, %d events into a replay of %d", delay, before, total)
	if before >= total {
		t.Fatalf("the heartbeat reply came after the whole replay (%d events)", before)
	}
	collect(t, c, "tail:long", 51, total, 1)
}

func countEvents(t *testing.T, fs []harness.PhxFrame) int {
	n := 0
	for _, f := range fs {
		evs, err := f.Events()
		if err != nil {
			t.Fatal(err)
		}
		n += len(evs)
	}
	return n
}

// TestChannelSlowConsumer: a client that stops reading while live events
// flood its socket gets phx_error on that channel once the socket's queue
// is full (and no frame is lost before it); it rejoins from its cursor and
// receives the rest. Another socket of the session is unaffected.
func TestChannelSlowConsumer(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "flood")
	stuck := e.socket(t, "")
	good := e.socket(t, "")
	js := join(t, stuck, "tail:flood", map[string]any{})
	join(t, good, "tail:flood", map[string]any{})
	// 60 MB, past the 32 MB queue limit and every socket buffer, from six
	// producers at once: the queue must fill before the writer gives up on
	// a client that reads nothing (a 10 s write timeout, which drops the
	// connection instead).
	big := strings.Repeat("x", 1<<20)
	const producers, each = 6, 10
	const total = producers * each
	done := make(chan error, 1)
	go func() {
		_, err := good.CollectEvents("tail:flood", 1, total, 1, 2*time.Minute)
		done <- err
	}()
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		go func() {
			for i := uint64(1); i <= each; i++ {
				if err := e.tryAppend("flood", fmt.Sprintf("p%d", p), i, map[string]any{"blob": big}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	// Read as soon as the channel overflowed: a client that reads nothing
	// for 10 s is dropped by the writer's timeout instead.
	e.n.WaitFor(wait, "phx_error for the stuck channel", func() bool {
		return e.n.Metric(`starcite_channel_ends_total{reason="slow_consumer"}`) >= 1
	})
	// The stuck client reads now: a gap-free run from 1, then phx_error.
	var last uint64
	for {
		f, err := stuck.NextOn("tail:flood", wait)
		if err != nil {
			t.Fatalf("after seq %d: %v", last, err)
		}
		if f.Event == "phx_error" {
			wantFrame(t, f, fmt.Sprintf(`[%q,%q,"tail:flood","phx_error",{}]`, js, js))
			break
		}
		evs, err := f.Events()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Seq != last+1 {
				t.Fatalf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
		}
	}
	for p := 0; p < producers; p++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the reading socket: %v", err)
	}
	if last >= total {
		t.Fatalf("all %d events arrived before phx_error", last)
	}
	t.Logf("phx_error after %d of %d events", last, total)
	join(t, stuck, "tail:flood", map[string]any{"cursor": last})
	collect(t, stuck, "tail:flood", last+1, total, 1)
}

// TestShutdown: stopping the node closes sockets with 1012, so that
// phoenix.js reconnects (to another node).
func TestShutdown(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "sd")
	c := e.socket(t, "")
	join(t, c, "tail:sd", map[string]any{})
	e.n.Signal(syscall.SIGTERM)
	code, _, err := c.CloseCode(wait)
	if err != nil || code != 1012 {
		t.Fatalf("close %d %v, want 1012", code, err)
	}
}
