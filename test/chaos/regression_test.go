package chaos

import (
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestLaggingReplicaIsNotDefinitive pins a bug the chaos run found: a
// node that was cut off (or had just restarted) when a session was
// created elsewhere answered 404 session_not_found for it, a definitive
// answer a client acts on, because a read it could not confirm with the
// quorum fell back to its own stale replica, which did not know the
// session yet. Such a node must answer 503 until it has caught up.
func TestLaggingReplicaIsNotDefinitive(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, Isolated: true})
	major, minor := c.Nodes[0], c.Nodes[2]
	c.Partition(2)
	defer c.Heal(2)
	major.WaitFor(60*time.Second, "the majority to create the session", func() bool {
		st, _, err := major.TryDo("POST", "/v1/sessions", map[string]any{"id": "late"}, nil)
		return err == nil && (st == 201 || st == 409)
	})

	for _, r := range []struct{ method, path string }{
		{"POST", "/v1/sessions/late/append"},
		{"GET", "/v1/sessions/late/events"},
		{"GET", "/v1/sessions/late"},
	} {
		var body any
		if r.method == "POST" {
			body = map[string]any{"type": "msg", "payload": map[string]any{}, "producer_id": "p", "producer_seq": 1}
		}
		st, b, err := minor.TryDo(r.method, r.path, body, nil)
		if err != nil {
			t.Fatalf("%s %s on the cut-off node: %v", r.method, r.path, err)
		}
		if st == 404 || (st != 503 && strings.Contains(string(b), "session_not_found")) {
			t.Errorf("%s %s on the cut-off node: %d %s, want 503: it cannot know the session is missing", r.method, r.path, st, b)
		} else {
			t.Logf("%s %s on the cut-off node: %d %s", r.method, r.path, st, b)
		}
	}
	// A tail may upgrade (the archive catalogue vouches for the session)
	// and wait; it must not be refused as missing.
	tc, st, b, err := minor.DialTail("late", "cursor=0", nil)
	if st == 404 {
		t.Errorf("tail on the cut-off node: %d %s %v", st, b, err)
	}
	if err == nil {
		tc.Conn.Close()
	}

	c.Heal(2)
	minor.WaitFor(90*time.Second, "the healed node to serve the session", func() bool {
		st, _, _, err := minor.Append("late", "p", 1, map[string]any{})
		return err == nil && st == 201
	})
}
