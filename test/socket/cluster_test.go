package socket

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

const subnet = 14 // cluster nodes on 127.0.14.x

// liveBound is the deadline for one live event to reach a tail channel
// after its append was acknowledged: the contract says within a second
// (docs/api.md#the-events-push); twice that absorbs a loaded machine,
// while a channel that only caught up by its 5 s polling would miss it.
const liveBound = 2 * time.Second

// TestCluster: the socket through every node of a 3-node cluster with
// replication factor 2, so that each node holds replicas of some
// sessions and none of others; in none and jwt mode. On every node a
// socket replays, streams live events appended through the other nodes
// (each within liveBound; the delays are reported), answers heartbeats,
// refuses and replaces joins, sends the gap, and closes with 1012 when
// its node is drained; a lifecycle channel on every node sees every
// create, in order, whichever node it went through.
func TestCluster(t *testing.T) {
	for _, jwt := range []bool{false, true} {
		name := map[bool]string{false: "none", true: "jwt"}[jwt]
		t.Run(name, func(t *testing.T) {
			vars := map[string]string{"STARCITE_WRITE_REPLICATION_FACTOR": "2"}
			if jwt {
				for k, v := range jwtVars(t) {
					vars[k] = v
				}
			}
			c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, Env: vars})
			// A lifecycle channel on every node sees every create, whichever
			// node it went through.
			var watchers []*harness.Phoenix
			for _, n := range c.Nodes {
				e := nodeEnv(n, jwt)
				w := e.socket(t, e.token("acme", "service:watcher", []string{"session:read"}))
				join(t, w, "lifecycle", map[string]any{})
				watchers = append(watchers, w)
			}
			var created []string
			var delays []time.Duration
			for i, n := range c.Nodes {
				e := nodeEnv(n, jwt)
				tok := e.token("acme", "user:u1", []string{"session:read"})
				for _, held := range []bool{true, false} {
					id := sessionOn(c, n, held, fmt.Sprintf("n%d-%s", i, name))
					other := nodeEnv(c.Nodes[(i+1)%3], jwt)
					other.create(t, id)
					created = append(created, id)
					other.appendN(t, id, 1, 3)
					t.Run(fmt.Sprintf("node %d, replica here %v", i, held), func(t *testing.T) {
						d := clusterFlows(t, c, e, tok, id)
						t.Logf("live delivery on %s (replica here: %v): %v", n.Name, held, d)
						delays = append(delays, d...)
					})
				}
			}
			for i, w := range watchers {
				for _, id := range created {
					for _, kind := range []string{"session.activated", "session.created"} {
						f := await(t, w, fmt.Sprintf("%s of %s on node %d", kind, id, i), func(f harness.PhxFrame) bool {
							return f.Event == "lifecycle"
						})
						if !strings.Contains(string(f.Payload), `"kind":"`+kind+`"`) || !strings.Contains(string(f.Payload), `"session_id":"`+id+`"`) {
							t.Fatalf("node %d: lifecycle event %s, want %s of %s", i, f, kind, id)
						}
					}
				}
			}
			slices.Sort(delays)
			t.Logf("live delivery through every node: %d events, median %v, max %v",
				len(delays), delays[len(delays)/2], delays[len(delays)-1])

			// A drained node closes its sockets with 1012: phoenix.js
			// reconnects, and the SDK rejoins from its cursor elsewhere.
			d := c.Nodes[2]
			s := d.Socket(nodeEnv(d, jwt).token("acme", "user:u1", []string{"session:read"}))
			ref, _ := s.Heartbeat()
			reply(t, s, ref)
			if code, out := harness.RunOnce(t, c.Nodes[0].CLIEnv(), time.Minute,
				"ops", "--node", c.Nodes[0].Name, "drain", d.Name); code != 0 {
				t.Fatalf("drain: %d %s", code, out)
			}
			if code, reason, err := s.CloseCode(wait); err != nil || code != 1012 || reason != "node_draining" {
				t.Fatalf("socket on the drained node: close %d %q %v, want 1012 node_draining", code, reason, err)
			}

			// No replica of a session's group reachable: the join is
			// refused with the REST code of the failure, not left hanging
			// past the client's 10 s join timeout.
			c.Nodes[1].Kill()
			c.Nodes[2].Kill()
			a := nodeEnv(c.Nodes[0], jwt)
			s = a.socket(t, a.token("acme", "user:u1", []string{"session:read"}))
			topic := "tail:" + sessionOn(c, c.Nodes[0], false, "unreachable")
			ref, _ = s.Join(topic, map[string]any{})
			sent := time.Now()
			f := reply(t, s, ref)
			if r := f.Reason(); r != "raft_unavailable" && r != "raft_timeout" {
				t.Fatalf("join with no replica reachable: %s", f)
			}
			t.Logf("join refused %q after %v", f.Reason(), time.Since(sent))
		})
	}
}

// clusterFlows runs the main flows on node e for session id (3 events
// already appended); it returns the live delivery delays it measured.
func clusterFlows(t *testing.T, c *harness.Cluster, e *env, tok, id string) []time.Duration {
	topic := "tail:" + id
	s := e.socket(t, tok)
	ref, _ := s.Heartbeat()
	reply(t, s, ref)
	joinError(t, s, "tail:"+id+"-missing", map[string]any{}, "session_not_found")
	s.SendRaw([]byte(`["1","1","room:1","phx_join",{}]`))
	wantFrame(t, reply(t, s, "1"), `[null,"1","room:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)

	j := join(t, s, topic, map[string]any{"batch_size": 2})
	if evs := collect(t, s, topic, 1, 3, 2); evs[0].Push != 2 || evs[2].Push != 1 {
		t.Fatalf("replay pushes of %d and %d events, want [1,2] then [3]", evs[0].Push, evs[2].Push)
	}
	var delays []time.Duration
	seq := lastSeqOf(t, e, id)
	for k := 0; k < 6; k++ {
		via := nodeEnv(c.Nodes[k%3], e.jwt)
		seq++
		sent := time.Now()
		via.appendOne(t, id, seq, map[string]any{"k": k})
		evs, err := s.CollectEvents(topic, seq, seq, 1, liveBound)
		if err != nil {
			t.Fatalf("live event %d (appended via %s) within %v of its ack: %v", seq, via.n.Name, liveBound, err)
		}
		// From the append request to the push: an upper bound of the
		// delay from commit to delivery (the push is read after the ack).
		delays = append(delays, evs[0].At.Sub(sent))
	}
	// a duplicate join replaces the channel
	j2, err := s.Join(topic, map[string]any{"cursor": seq})
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, await(t, s, "phx_close", func(f harness.PhxFrame) bool { return f.Event == "phx_close" }),
		fmt.Sprintf(`[%q,%q,%q,"phx_close",{}]`, j, j, topic))
	reply(t, s, j2)
	leave(t, s, topic, j2)
	// a cursor ahead of the session: the gap, then events after last_seq
	s2 := e.socket(t, tok)
	j3 := join(t, s2, topic, map[string]any{"cursor": seq + 10})
	f := await(t, s2, "gap", func(f harness.PhxFrame) bool { return f.Event == "gap" })
	wantFrame(t, f, fmt.Sprintf(`[%q,null,%q,"gap",{"type":"gap","reason":"resume_invalidated","from_cursor":%d,`+
		`"next_cursor":%d,"committed_cursor":0,"earliest_available_cursor":1}]`, j3, topic, seq+10, seq))
	return delays
}

// sessionOn returns a session id whose group node n holds (or not).
func sessionOn(c *harness.Cluster, n *harness.Node, held bool, prefix string) string {
	for k := 0; ; k++ {
		id := fmt.Sprintf("%s-%d", prefix, k)
		if c.Holds(n, id) == held {
			return id
		}
	}
}

func lastSeqOf(t *testing.T, e *env, id string) uint64 {
	t.Helper()
	return uint64(len(e.restEvents(t, id)))
}
