package socket

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"starcite/test/harness"
)

// TestControl: the socket-level protocol, frame by frame: heartbeat,
// unmatched topics, leave, duplicate join, frames of a channel already
// replaced, ignored client events and binary frames.
func TestControl(t *testing.T) {
	e := noneEnv(t, nil)
	e.create(t, "ctl")

	t.Run("heartbeat", func(t *testing.T) {
		c := e.socket(t, "")
		c.SendRaw([]byte(`[null,"7","phoenix","heartbeat",{}]`))
		wantFrame(t, reply(t, c, "7"), `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	})

	t.Run("unmatched topics", func(t *testing.T) {
		c := e.socket(t, "")
		for _, topic := range []string{"room:1", "lifecycle:x", "phoenix", "tails:x", "", "TAIL:ctl"} {
			c.SendRaw([]byte(fmt.Sprintf(`["9","9",%q,"phx_join",{}]`, topic)))
			wantFrame(t, reply(t, c, "9"),
				fmt.Sprintf(`[null,"9",%q,"phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, topic))
		}
		// any other event on a topic not joined
		c.SendRaw([]byte(`["3","4","tail:ctl","ping",{}]`))
		wantFrame(t, reply(t, c, "4"),
			`[null,"4","tail:ctl","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		c.SendRaw([]byte(`[null,"5","phoenix","ping",{}]`))
		wantFrame(t, reply(t, c, "5"),
			`[null,"5","phoenix","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})

	t.Run("leave a topic not joined", func(t *testing.T) {
		c := e.socket(t, "")
		c.SendRaw([]byte(`["1","2","tail:ctl","phx_leave",{}]`))
		wantFrame(t, reply(t, c, "2"), `["1","2","tail:ctl","phx_reply",{"status":"ok","response":{}}]`)
	})

	t.Run("leave a joined topic: reply, then phx_close", func(t *testing.T) {
		c := e.socket(t, "")
		j := join(t, c, "tail:ctl", map[string]any{})
		ref, _ := c.Leave("tail:ctl", j)
		wantFrame(t, reply(t, c, ref), fmt.Sprintf(`[%q,%q,"tail:ctl","phx_reply",{"status":"ok","response":{}}]`, j, ref))
		f, err := c.NextOn("tail:ctl", wait)
		if err != nil {
			t.Fatal(err)
		}
		wantFrame(t, f, fmt.Sprintf(`[%q,%q,"tail:ctl","phx_close",{}]`, j, j))
		// The channel is gone: events reach nobody, the topic is unjoined.
		e.appendN(t, "ctl", 1, 1)
		c.SendRaw([]byte(`["1","50","tail:ctl","x",{}]`))
		wantFrame(t, reply(t, c, "50"),
			`[null,"50","tail:ctl","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})

	t.Run("client events on a joined topic get no reply", func(t *testing.T) {
		e.create(t, "ctl-quiet")
		c := e.socket(t, "")
		j := join(t, c, "tail:ctl-quiet", map[string]any{})
		c.Send(&j, harness.Ptr("60"), "tail:ctl-quiet", "new_msg", map[string]any{"x": 1})
		c.Send(&j, harness.Ptr("61"), "tail:ctl-quiet", "heartbeat", map[string]any{})
		quiet(t, c, "after client events on a joined channel")
	})

	t.Run("a frame for a replaced channel is ignored", func(t *testing.T) {
		c := e.socket(t, "")
		old := join(t, c, "tail:ctl-quiet", map[string]any{})
		cur := join(t, c, "tail:ctl-quiet", map[string]any{})
		await(t, c, "phx_close of the old channel", func(f harness.PhxFrame) bool { return f.Event == "phx_close" })
		c.Send(&old, harness.Ptr("70"), "tail:ctl-quiet", "phx_leave", map[string]any{})
		quiet(t, c, "after a leave with the old join_ref")
		// the current channel still works
		leave(t, c, "tail:ctl-quiet", cur)
	})

	t.Run("duplicate join: old channel closed, newest wins", func(t *testing.T) {
		e.create(t, "dup")
		e.appendN(t, "dup", 1, 3)
		c := e.socket(t, "")
		first := join(t, c, "tail:dup", map[string]any{"cursor": 3})
		second, err := c.Join("tail:dup", map[string]any{"cursor": 1})
		if err != nil {
			t.Fatal(err)
		}
		// The old channel's phx_close and the new join's reply may come
		// in either order; the new channel's events only after its reply.
		var closed, replied bool
		var evs []harness.PhxEvent
		for !closed || len(evs) < 2 {
			f, err := c.NextOn("tail:dup", wait)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case f.Event == "phx_close" && !closed:
				wantFrame(t, f, fmt.Sprintf(`[%q,%q,"tail:dup","phx_close",{}]`, first, first))
				closed = true
			case f.Event == "phx_reply" && !replied:
				wantFrame(t, f, fmt.Sprintf(`[%q,%q,"tail:dup","phx_reply",{"status":"ok","response":{}}]`, second, second))
				replied = true
			case f.Event == "events" && replied && *f.JoinRef == second:
				got, err := f.Events()
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, got...)
			default:
				t.Fatalf("unexpected (replied %v, closed %v): %s", replied, closed, f)
			}
		}
		if len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 {
			t.Fatalf("replay of the new channel: %v", evs)
		}
		e.appendN(t, "dup", 4, 4)
		f, err := c.NextOn("tail:dup", wait)
		if err != nil || *f.JoinRef != second {
			t.Fatalf("live event %s %v, want it on join_ref %s only", f, err, second)
		}
		quiet(t, c, "after the live event (the old channel must not deliver it)")
	})

	t.Run("binary frames are ignored", func(t *testing.T) {
		c := e.socket(t, "")
		c.Conn.WriteMessage(websocket.BinaryMessage, []byte(`[null,"1","phoenix","heartbeat",{}]`))
		c.Conn.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
		quiet(t, c, "after binary frames")
	})

	t.Run("undecodable frames close 1007", func(t *testing.T) {
		for _, raw := range []string{
			`not json`,
			`{"topic":"phoenix"}`,
			`[null,"1","phoenix","heartbeat"]`,
			`[null,"1","phoenix","heartbeat",{},{}]`,
			`[null,1,"phoenix","heartbeat",{}]`,
			`[1,"1","phoenix","heartbeat",{}]`,
			`[null,"1",7,"heartbeat",{}]`,
			`[null,"1","phoenix",null,{}]`,
			"[null,\"1\",\"phoe\xffnix\",\"heartbeat\",{}]",
			``,
		} {
			c := e.socket(t, "")
			c.SendRaw([]byte(raw))
			code, _, err := c.CloseCode(wait)
			if err != nil || code != 1007 {
				t.Fatalf("%q: close %d %v, want 1007", raw, code, err)
			}
		}
	})

	t.Run("a frame over 1 MiB closes 1009", func(t *testing.T) {
		c := e.socket(t, "")
		big := `[null,"1","phoenix","heartbeat",{"x":"` + strings.Repeat("x", 1<<20) + `"}]`
		c.SendRaw([]byte(big))
		code, _, err := c.CloseCode(wait)
		if err != nil || code != 1009 {
			t.Fatalf("close %d %v, want 1009", code, err)
		}
		// just under the limit is fine
		c = e.socket(t, "")
		pad := (1 << 20) - len(`[null,"1","phoenix","heartbeat",{"x":""}]`)
		c.SendRaw([]byte(`[null,"1","phoenix","heartbeat",{"x":"` + strings.Repeat("x", pad) + `"}]`))
		reply(t, c, "1")
	})
}

// TestIdle: a socket that receives nothing for 60 s is closed with 1001
// (not 1000, after which phoenix.js would not reconnect); heartbeats,
// and pings alone, keep a socket open.
func TestIdle(t *testing.T) {
	t.Parallel() // a minute of waiting: overlap it with the other tests
	e := noneEnv(t, nil)
	silent := e.socket(t, "")
	beating := e.socket(t, "")
	pinging := e.socket(t, "")
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for time.Since(start) < 75*time.Second {
			pinging.Conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
			time.Sleep(20 * time.Second)
		}
	}()
	for time.Since(start) < 75*time.Second {
		ref, _ := beating.Heartbeat()
		reply(t, beating, ref)
		time.Sleep(20 * time.Second)
	}
	<-done
	code, _, err := silent.CloseCode(wait)
	if err != nil || code != 1001 {
		t.Fatalf("silent socket: close %d %v, want 1001", code, err)
	}
	quiet(t, beating, "heartbeating socket")
	quiet(t, pinging, "pinging socket")
}
