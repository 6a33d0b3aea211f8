// Package tail tests WebSocket tails against a real node with real
// WebSocket clients: replay, live, cursors, batches, reconnects, slow
// consumers, many sockets, and the upgrade's error responses.
package tail

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/test/harness"
)

const wait = 30 * time.Second

func appendN(t *testing.T, n *harness.Node, session, producer string, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if st, _, b, err := n.Append(session, producer, i, map[string]any{"i": i}); err != nil || st != 201 {
			t.Fatalf("append %s %s#%d: %d %s %v", session, producer, i, st, b, err)
		}
	}
}

func TestTail(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})

	t.Run("replay from 0 then live, frames equal the stored events", func(t *testing.T) {
		n.CreateSession("rl", nil)
		appendN(t, n, "rl", "w", 1, 10)
		c := n.Tail("rl", 0, 1)
		got, err := c.Collect(1, 10, wait)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, n, "rl", "w", 11, 15)
		live, err := c.Collect(11, 15, wait)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := n.Events("rl")
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range append(got, live...) {
			if ev.Kind != "object" || !bytes.Equal(ev.Raw, stored[i]) {
				t.Fatalf("frame %d (%s) %s\nstored %s", i+1, ev.Kind, ev.Raw, stored[i])
			}
		}
	})

	t.Run("replay from the middle", func(t *testing.T) {
		n.CreateSession("mid", nil)
		appendN(t, n, "mid", "w", 1, 9)
		if _, err := n.Tail("mid", 4, 1).Collect(5, 9, wait); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cursor beyond last_seq suppresses events up to it", func(t *testing.T) {
		n.CreateSession("ahead", nil)
		appendN(t, n, "ahead", "w", 1, 3)
		c := n.Tail("ahead", 6, 1)
		appendN(t, n, "ahead", "w", 4, 8)
		if _, err := c.Collect(7, 8, wait); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("batch frames", func(t *testing.T) {
		n.CreateSession("batch", nil)
		appendN(t, n, "batch", "w", 1, 12)
		c := n.Tail("batch", 0, 5)
		var sizes []int
		for c.Last < 12 {
			evs, err := c.Next(wait)
			if err != nil {
				t.Fatal(err)
			}
			if evs[0].Kind != "array" {
				t.Fatalf("batch_size 5 sent an %s frame", evs[0].Kind)
			}
			sizes = append(sizes, len(evs))
		}
		if fmt.Sprint(sizes) != "[5 5 2]" {
			t.Fatalf("replay frame sizes %v, want [5 5 2]", sizes)
		}
		appendN(t, n, "batch", "w", 13, 13)
		evs, err := c.Next(wait)
		if err != nil || len(evs) != 1 || evs[0].Kind != "array" || evs[0].Seq != 13 {
			t.Fatalf("live event with batch_size 5: %+v %v", evs, err)
		}
	})

	t.Run("reconnect from the last seq loses and repeats nothing", func(t *testing.T) {
		n.CreateSession("re", nil)
		appendN(t, n, "re", "w", 1, 20)
		c := n.Tail("re", 0, 1)
		if _, err := c.Collect(1, 7, wait); err != nil {
			t.Fatal(err)
		}
		c.Conn.Close()
		appendN(t, n, "re", "w", 21, 30)
		c2 := n.Tail("re", c.Last, 1)
		appendN(t, n, "re", "w", 31, 35)
		if _, err := c2.Collect(8, 35, wait); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("8 producers, 20 sockets: every socket gets 1..N in order", func(t *testing.T) {
		n.CreateSession("fan", nil)
		const producers, each, sockets = 8, 50, 20
		clients := make([]*harness.TailClient, sockets)
		for i := range clients {
			clients[i] = n.Tail("fan", 0, 1+i%3)
		}
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := uint64(1); i <= each; i++ {
					if st, _, b, err := n.Append("fan", fmt.Sprintf("p%d", p), i, map[string]any{"p": p}); err != nil || st != 201 {
						t.Errorf("append: %d %s %v", st, b, err)
						return
					}
				}
			}()
		}
		errs := make(chan error, sockets)
		for _, c := range clients {
			go func() {
				_, err := c.Collect(1, producers*each, wait)
				errs <- err
			}()
		}
		wg.Wait()
		for range clients {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestThousandSockets: 1,000 concurrent sockets on one session all
// receive every event.
func TestThousandSockets(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("crowd", nil)
	const sockets, events = 1000, 20
	clients := make([]*harness.TailClient, sockets)
	for i := range clients {
		clients[i] = n.Tail("crowd", 0, 1)
	}
	if got := n.Metric("starcite_tail_subscriptions"); got < sockets {
		n.WaitFor(wait, "1000 subscriptions", func() bool { return n.Metric("starcite_tail_subscriptions") >= sockets })
	}
	errs := make(chan error, sockets)
	for _, c := range clients {
		go func() {
			_, err := c.Collect(1, events, wait)
			errs <- err
		}()
	}
	appendN(t, n, "crowd", "w", 1, events)
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSocketActorsAreReleased: every TailSocket actor ends with its
// connection, whoever closes it.
func TestSocketActorsAreReleased(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("rel", nil)
	base := n.Metric("starcite_tail_sockets")
	var clients []*harness.TailClient
	for i := 0; i < 50; i++ {
		clients = append(clients, n.Tail("rel", 0, 1))
	}
	n.WaitFor(wait, "50 more tail sockets", func() bool { return n.Metric("starcite_tail_sockets") == base+50 })
	for i, c := range clients {
		if i%2 == 0 {
			c.Conn.Close() // abrupt
		} else {
			c.Conn.WriteControl(8, []byte{0x03, 0xe8}, time.Now().Add(time.Second)) // close 1000
		}
	}
	n.WaitFor(wait, "tail sockets back to the baseline", func() bool { return n.Metric("starcite_tail_sockets") == base })
	n.WaitFor(wait, "subscriptions released", func() bool { return n.Metric("starcite_tail_subscriptions") == base })
}

// TestSlowConsumer: a client that never reads is cut off once its queue
// passes the limit; other sockets of the session are unaffected.
func TestSlowConsumer(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("slow", nil)
	base := n.Metric("starcite_tail_sockets")
	stuck := n.Tail("slow", 0, 1) // never read
	good := n.Tail("slow", 0, 1)
	big := strings.Repeat("x", 100<<10)
	const events = 600 // 60 MB: past the 32 MB queue limit and every socket buffer
	done := make(chan error, 1)
	go func() {
		_, err := good.Collect(1, events, 2*time.Minute)
		done <- err
	}()
	for i := uint64(1); i <= events; i++ {
		if st, _, b, err := n.Append("slow", "w", i, map[string]any{"blob": big}); err != nil || st != 201 {
			t.Fatalf("append %d: %d %s %v", i, st, b, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the reading socket: %v", err)
	}
	n.WaitFor(wait, "the stuck socket closed", func() bool { return n.Metric(`starcite_tail_closes_total{code="1013"}`) >= 1 })
	n.WaitFor(wait, "only the reading socket left", func() bool { return n.Metric("starcite_tail_sockets") == base+1 })
	// Whatever the stuck client reads now ends in the 1013 close, or in an
	// abrupt end when no close frame fit into its full connection — never
	// in more waiting.
	code, _, err := stuck.CloseCode(wait)
	if err != nil || code != 1013 && code != 1006 {
		t.Fatalf("stuck socket: close %d %v, want 1013, or 1006 for a dropped connection", code, err)
	}
}

// TestUpgradeErrors: rejections before the upgrade are plain HTTP responses
// with the API's error shape, in the order of docs/api.md#tail-upgrade.
func TestUpgradeErrors(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("up", nil)
	ws := harness.Header{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	without := func(h harness.Header, keys ...string) harness.Header {
		out := harness.Header{}
		for k, v := range h {
			out[k] = v
		}
		for _, k := range keys {
			out[k] = ""
		}
		return out
	}
	tests := []struct {
		name   string
		path   string
		h      harness.Header
		status int
		code   string
	}{
		{"no upgrade header", "/v1/sessions/up/tail", nil, 400, "invalid_websocket_upgrade"},
		{"upgrade checked before cursor", "/v1/sessions/up/tail?cursor=bad", nil, 400, "invalid_websocket_upgrade"},
		{"upgrade to something else", "/v1/sessions/up/tail", harness.Header{"Upgrade": "h2c", "Connection": "Upgrade"}, 400, "invalid_websocket_upgrade"},
		{"bad cursor", "/v1/sessions/up/tail?cursor=-1", ws, 400, "invalid_cursor"},
		{"huge cursor", "/v1/sessions/up/tail?cursor=9223372036854775808", ws, 400, "invalid_cursor"},
		{"bad batch size", "/v1/sessions/up/tail?batch_size=1001", ws, 400, "invalid_tail_batch_size"},
		{"cursor checked before batch size", "/v1/sessions/up/tail?cursor=x&batch_size=0", ws, 400, "invalid_cursor"},
		{"unknown session", "/v1/sessions/nope/tail", ws, 404, "session_not_found"},
		{"missing key", "/v1/sessions/up/tail", without(ws, "Sec-WebSocket-Key"), 400, "invalid_websocket_upgrade"},
		{"missing version", "/v1/sessions/up/tail", without(ws, "Sec-WebSocket-Version"), 400, "invalid_websocket_upgrade"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := n.Do("GET", tt.path, nil, tt.h)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %s", st, tt.status, body)
			}
			if got := harness.JSON(t, body)["error"]; got != tt.code {
				t.Fatalf("error %v, want %s: %s", got, tt.code, body)
			}
		})
	}
	// And a good one upgrades.
	if _, st, body, err := n.DialTail("up", "cursor=0", http.Header{}); err != nil {
		t.Fatalf("upgrade: %d %s %v", st, body, err)
	}
}

// TestReplayPacesLargeBatches: a replay larger than the socket's queue
// limit, in batch frames, to a client that stops reading for a while, is
// paced by the server (frames capped in bytes, replay waiting for the
// writer) instead of being cut off as a slow consumer.
func TestReplayPacesLargeBatches(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	n.CreateSession("big", nil)
	blob := strings.Repeat("y", 100<<10)
	const events = 400 // 40 MB: more than the 32 MB a socket may queue
	for i := uint64(1); i <= events; i++ {
		if st, _, b, err := n.Append("big", "w", i, map[string]any{"blob": blob}); err != nil || st != 201 {
			t.Fatalf("append %d: %d %s %v", i, st, b, err)
		}
	}
	c := n.Tail("big", 0, 1000)
	// The client is busy elsewhere; the server must not queue 40 MB for it.
	time.Sleep(2 * time.Second)
	var sizes []int
	for c.Last < events {
		evs, err := c.Next(wait)
		if err != nil {
			t.Fatalf("after %d events: %v", c.Last, err)
		}
		if len(evs) > 1000 {
			t.Fatalf("frame of %d events", len(evs))
		}
		sizes = append(sizes, len(evs))
	}
	if len(sizes) < 2 {
		t.Fatalf("40 MB of events came in %d frame(s); frames must be capped in bytes", len(sizes))
	}
	if got := n.Metric(`starcite_tail_closes_total{code="1013"}`); got != 0 {
		t.Fatalf("%v slow-consumer closes", got)
	}
}
