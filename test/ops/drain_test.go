package ops

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
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
	// node-status asked on d itself and, through a, of d.
	mustOps(t, d, "node_status=ready", "node-status")
	mustOps(t, a, "node_status=ready", "node-status", d.Name)
	if code, out := ops(t, a, "node-status", "starcite@127.0.11.99"); code != 1 ||
		!strings.HasPrefix(out, `unknown node "starcite@127.0.11.99" (known nodes: `) {
		t.Errorf("node-status of an unknown node: exit %d %q", code, out)
	}
	if code, out := ops(t, a, "drain-status", d.Name); code != 0 || !drainStatusRe.MatchString(out) {
		t.Errorf("drain-status of %s: exit %d %q", d.Name, code, out)
	}

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
	// Drained: it leads no group a ready replica could lead.
	mustOps(t, d, "node_status=drained", "node-status")
	mustOps(t, b, "node_status=drained", "node-status", d.Name)
	mustOps(t, a, "drain_status=led_groups=0,pending_transfers=0", "drain-status", d.Name)

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
	mustOps(t, a, "node_status=ready", "node-status", d.Name)
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

var drainStatusRe = regexp.MustCompile(`^drain_status=led_groups=\d+,pending_transfers=\d+\n$`)

// TestStopHandsOffLeaderships: a member of a cluster that gets SIGTERM
// stops serving, hands every group it leads to a ready replica, and only
// then closes its replicas (STARCITE_SHUTDOWN_DRAIN_TIMEOUT_MS).
func TestStopHandsOffLeaderships(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	waitAllReady(t, c)
	// The node that leads the most groups (leaders balance to their
	// preferred replicas, so every node leads some).
	var x *harness.Node
	led := map[*harness.Node][]int{}
	c.Nodes[0].WaitFor(60*time.Second, "a leader for every group", func() bool {
		clear(led)
		for g := 0; g < c.Groups; g++ {
			n := c.Leader(g)
			if n == nil {
				return false
			}
			led[n] = append(led[n], g)
		}
		return true
	})
	for n, gs := range led {
		if x == nil || len(gs) > len(led[x]) {
			x = n
		}
	}
	if len(led[x]) == 0 {
		t.Fatal("no node leads a group")
	}
	// Every group it leads has ready replicas to take it.
	var ledN, pending int
	if code, out := ops(t, x, "drain-status"); code != 0 ||
		func() bool {
			_, err := fmt.Sscanf(out, "drain_status=led_groups=%d,pending_transfers=%d\n", &ledN, &pending)
			return err != nil
		}() ||
		ledN == 0 || pending != ledN {
		t.Fatalf("drain-status of %s: exit %d %q", x.Name, code, out)
	}
	x.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(90 * time.Second); x.Running(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still running 90 s after SIGTERM", x.Name)
		}
	}
	log := x.Log()
	if !strings.Contains(log, "leaderships handed off before stopping") || !strings.Contains(log, "still_leading=0") {
		t.Fatalf("%s stopped without handing off its %d leaderships", x.Name, len(led[x]))
	}
	other := c.Nodes[0]
	if other == x {
		other = c.Nodes[1]
	}
	other.WaitFor(30*time.Second, "a leader for every group "+x.Name+" led", func() bool {
		for _, g := range led[x] {
			if n := c.Leader(g); n == nil || n == x {
				return false
			}
		}
		return true
	})
}
