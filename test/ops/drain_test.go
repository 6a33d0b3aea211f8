package ops

import (
	"testing"
	"time"

	"starcite/test/harness"
)

// TestDrain: a drained node stays usable (its requests are served by the
// other replicas), reports draining, closes its tails with 1012, keeps
// the mark across a restart, and serves again at once after undrain.
func TestDrain(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	waitAllReady(t, c)
	a, d, b := c.Nodes[0], c.Nodes[1], c.Nodes[2] // d is drained
	others := []*harness.Node{a, b}

	a.CreateSession("drain-s", nil)
	next := uint64(1)
	appendVia := func(n *harness.Node, count int) {
		t.Helper()
		for i := 0; i < count; i, next = i+1, next+1 {
			if st, _, body, err := n.Append("drain-s", "p", next, map[string]any{"n": next}); err != nil || st != 201 {
				t.Fatalf("append #%d via %s: %d %s %v", next, n.Name, st, body, err)
			}
		}
	}
	appendVia(a, 3)
	tail := d.Tail("drain-s", 0, 1)
	if _, err := tail.Collect(1, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	logs := streamLog(t, d, 600)

	// Drain d from another node: the mark reaches d over distribution.
	mustOps(t, a, "node "+d.Name+" marked draining", "drain", d.Name)
	code, reason, err := tail.CloseCode(30 * time.Second)
	if err != nil || code != 1012 || reason != "node_draining" {
		t.Fatalf("tail on the drained node: close %d %q %v, want 1012 node_draining", code, reason, err)
	}
	d.WaitFor(30*time.Second, "/health/ready to say draining", func() bool {
		st, r := health(d)
		return st == 503 && r == "draining"
	})
	mustOps(t, d, "local_drained=true", "wait-drained", "30000")
	if line, err := logs.waitFor("write node "+d.Name+" drained", 30*time.Second); err != nil {
		t.Errorf("shell log of %s: %v", d.Name, err)
	} else {
		t.Logf("shell log: %s", line)
	}
	if st := statusJSON(t, d); st["local_drained"] != true || st["local_ready"] != true {
		t.Errorf("status of the drained node: local_drained %v, local_ready %v", st["local_drained"], st["local_ready"])
	}
	for _, n := range others {
		st := statusJSON(t, n)
		row := st["observer"].(map[string]any)["node_statuses"].(map[string]any)[d.Name].(map[string]any)
		if row["status"] != "draining" || st["local_drained"] != false {
			t.Errorf("status of %s: %s is %v", n.Name, d.Name, row["status"])
		}
		mustOps(t, n, "ready_nodes="+readyWithout(c, d), "ready-nodes")
	}

	// Appends sent to d still succeed: the other replicas serve them.
	const n = 10
	before, mine := forwarded(others...), forwarded(d)
	appendVia(d, n)
	if got := forwarded(others...) - before; got < n {
		t.Errorf("the other nodes served %v forwarded proposals for %d appends sent to the drained node", got, n)
	}
	if got := forwarded(d) - mine; got != 0 {
		t.Errorf("the drained node served %v forwarded proposals", got)
	}

	// A new tail on d is accepted, then sent elsewhere.
	code, reason, err = d.Tail("drain-s", 0, 1).CloseCode(30 * time.Second)
	if err != nil || code != 1012 || reason != "node_draining" {
		t.Fatalf("new tail on the drained node: close %d %q %v, want 1012 node_draining", code, reason, err)
	}

	// The mark survives a restart: d adopts it from its peers.
	d.Kill()
	d.Start()
	mustOps(t, d, "local_ready=true", "wait-ready", "90000")
	d.WaitFor(60*time.Second, "/health/ready to say draining after the restart", func() bool {
		st, r := health(d)
		return st == 503 && r == "draining"
	})
	mustOps(t, d, "local_drained=true", "wait-drained", "30000")

	// Undrain restores routing at once: d serves its own requests again.
	mustOps(t, d, "node "+d.Name+" marked ready", "undrain")
	mustOps(t, d, "local_ready=true", "wait-ready")
	before = forwarded(others...)
	appendVia(d, n)
	if got := forwarded(others...) - before; got != 0 {
		t.Errorf("after undrain, %v appends sent to %s were still forwarded", got, d.Name)
	}
	d.WaitReady(30 * time.Second)
	waitAllReady(t, c)
	tail = d.Tail("drain-s", 0, 1)
	if _, err := tail.Collect(1, next-1, 30*time.Second); err != nil {
		t.Fatalf("tail on the undrained node: %v", err)
	}
}

// readyWithout is the ready-nodes list of the cluster without node x.
func readyWithout(c *harness.Cluster, x *harness.Node) string {
	s := ""
	for _, n := range c.Nodes {
		if n != x {
			if s != "" {
				s += ","
			}
			s += n.Name
		}
	}
	return s
}
