// Package cluster tests a 3-node cluster of real processes: requests
// through any node, leader loss under load, loss of quorum, a full
// restart, and a network partition. Every acknowledged append must be
// present exactly once, in order, on every node afterwards.
package cluster

import (
	"fmt"
	"testing"
	"time"

	"starcite/test/harness"
)

const subnet = 10 // nodes on 127.0.10.x

// TestThroughEveryNode: any node answers any request; a tail on one node
// streams appends sent to another. Every cluster test runs with the
// inter-node TLS; this one also without it (loopback only).
func TestThroughEveryNode(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "plaintext"}[plain], func(t *testing.T) {
			throughEveryNode(t, harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, PlainText: plain}))
		})
	}
}

func throughEveryNode(t *testing.T, c *harness.Cluster) {
	a, b, cc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	for i, n := range c.Nodes {
		n.CreateSession(fmt.Sprintf("s%d", i), nil)
	}
	tail := a.Tail("s2", 0, 1)
	for i := uint64(1); i <= 30; i++ {
		n := c.Nodes[int(i)%3]
		if st, _, body, err := n.Append("s2", "w", i, map[string]any{"i": i}); err != nil || st != 201 {
			t.Fatalf("append via %s: %d %s %v", n.Name, st, body, err)
		}
	}
	if _, err := tail.Collect(1, 30, 30*time.Second); err != nil {
		t.Fatalf("tail on %s: %v", a.Name, err)
	}
	for _, n := range []*harness.Node{a, b, cc} {
		st, body := n.Do("GET", "/v1/sessions", nil, nil)
		if st != 200 || len(harness.JSON(t, body)["sessions"].([]any)) != 3 {
			t.Fatalf("list via %s: %d %s", n.Name, st, body)
		}
		evs, err := n.Events("s2")
		if err != nil || len(evs) != 30 {
			t.Fatalf("events via %s: %d %v", n.Name, len(evs), err)
		}
	}
}

// TestRouterNode: a node that holds no replica serves every route by
// forwarding to the write nodes, and its tails receive live events
// through another node's fan-out.
func TestRouterNode(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, Routers: 1})
	router := c.Nodes[3]
	if st, body, err := router.Probe("/health/ready"); err != nil || st != 200 || harness.JSON(t, body)["mode"] != "router_node" {
		t.Fatalf("router readiness: %d %s %v", st, body, err)
	}
	router.CreateSession("via-router", nil)
	tail := router.Tail("via-router", 0, 1)
	p := harness.NewProducer(t, "via-router", harness.RoundRobin(router, c.Nodes[1]))
	for i := 0; i < 40; i++ {
		if !p.AppendOne(time.Now().Add(30 * time.Second)) {
			t.Fatal("append failed")
		}
	}
	if _, err := tail.Collect(1, 40, 30*time.Second); err != nil {
		t.Fatalf("tail on the router node: %v", err)
	}
	if st, body := router.Do("GET", "/v1/sessions?limit=10", nil, nil); st != 200 ||
		len(harness.JSON(t, body)["sessions"].([]any)) != 1 {
		t.Fatalf("list via the router: %d %s", st, body)
	}
	p.Verify(router, c.Nodes[0], c.Nodes[1], c.Nodes[2])
	if n := router.Metric(`starcite_forwarded_requests_total{kind="propose"}`); n != 0 {
		t.Fatalf("the router node served %v forwarded proposals itself", n)
	}
}

// TestLeaderFailover: kill -9 the leader of a busy group; appends resume
// within seconds; the killed node catches up and serves the same log.
func TestLeaderFailover(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	c.Nodes[0].CreateSession("busy", nil)
	p := harness.NewProducer(t, "busy", harness.RoundRobin(c.Nodes...))
	for i := 0; i < 50; i++ {
		p.AppendOne(time.Now().Add(30 * time.Second))
	}
	var leader *harness.Node
	c.Nodes[0].WaitFor(30*time.Second, "a known leader", func() bool { leader = c.Leader(c.Group("busy")); return leader != nil })

	stop := make(chan struct{})
	done := p.Run(stop)
	survivor := c.Nodes[0]
	if survivor == leader {
		survivor = c.Nodes[1]
	}
	before := p.Count()
	killed := time.Now()
	leader.Kill()
	survivor.WaitFor(60*time.Second, "appends to resume", func() bool { return p.Count() > before+5 })
	t.Logf("failover: appends resumed %s after kill -9 of the leader %s", time.Since(killed).Round(time.Millisecond), leader.Name)
	leader.Start()
	leader.WaitReady(90 * time.Second)
	survivor.WaitFor(60*time.Second, "more appends", func() bool { return p.Count() > before+100 })
	close(stop)
	<-done
	_, errs := p.Errors()
	t.Logf("acknowledged %d appends; client-visible errors: %v", p.Count(), errs)
	p.Verify(c.Nodes...)
}

// TestLoseQuorum: with 2 of 3 nodes gone, appends answer 503 promptly;
// what the survivor holds can still be read; restarting both brings the
// service back with nothing lost.
func TestLoseQuorum(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	survivor := c.Nodes[0]
	survivor.CreateSession("q", nil)
	p := harness.NewProducer(t, "q", harness.RoundRobin(survivor))
	for i := 0; i < 20; i++ {
		p.AppendOne(time.Now().Add(30 * time.Second))
	}
	c.Nodes[1].Kill()
	c.Nodes[2].Kill()

	start := time.Now()
	st, _, body, err := survivor.Append("q", "prod", p.Next(), map[string]any{"n": p.Next()})
	if err != nil || st != 503 {
		t.Fatalf("append without quorum: %d %s %v", st, body, err)
	}
	if code := harness.JSON(t, body)["error"]; code != "raft_unavailable" && code != "raft_timeout" {
		t.Fatalf("append without quorum: %s", body)
	}
	t.Logf("append without quorum answered %d in %s", st, time.Since(start).Round(time.Millisecond))
	evs, err := survivor.Events("q")
	if err != nil || len(evs) != 20 {
		t.Fatalf("read on the survivor: %d events, %v", len(evs), err)
	}
	if _, err := survivor.Tail("q", 0, 1).Collect(1, 20, 30*time.Second); err != nil {
		t.Fatalf("tail replay on the survivor: %v", err)
	}

	c.Nodes[1].Start()
	c.Nodes[2].Start()
	for _, n := range c.Nodes {
		n.WaitReady(90 * time.Second)
	}
	for i := 0; i < 20; i++ {
		if !p.AppendOne(time.Now().Add(30 * time.Second)) {
			t.Fatal("appends did not resume")
		}
	}
	p.Verify(c.Nodes...)
}

// TestFullRestart: every node killed at once comes back with every
// acknowledged event.
func TestFullRestart(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	var ps []*harness.Producer
	for i := 0; i < 4; i++ {
		s := fmt.Sprintf("fr%d", i)
		c.Nodes[i%3].CreateSession(s, nil)
		p := harness.NewProducer(t, s, harness.RoundRobin(c.Nodes...))
		for j := 0; j < 40; j++ {
			p.AppendOne(time.Now().Add(30 * time.Second))
		}
		ps = append(ps, p)
	}
	for _, n := range c.Nodes {
		n.Kill()
	}
	for _, n := range c.Nodes {
		n.Start()
	}
	for _, n := range c.Nodes {
		n.WaitReady(90 * time.Second)
	}
	for _, p := range ps {
		p.Verify(c.Nodes...)
		if !p.AppendOne(time.Now().Add(30 * time.Second)) {
			t.Fatal("appends did not resume after the restart")
		}
	}
}

// TestPartition: a node cut off from the others refuses writes, the
// majority goes on, and after healing the isolated node converges.
func TestPartition(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, Isolated: true})
	major, minor := c.Nodes[0], c.Nodes[2]
	major.CreateSession("part", nil)
	p := harness.NewProducer(t, "part", harness.RoundRobin(major, c.Nodes[1]))
	for i := 0; i < 20; i++ {
		p.AppendOne(time.Now().Add(30 * time.Second))
	}
	c.Nodes[0].WaitFor(30*time.Second, "node 3 to have the session", func() bool {
		evs, err := minor.Events("part")
		return err == nil && len(evs) == 20
	})
	c.Partition(2)
	st, _, body, err := minor.Append("part", "other", 1, map[string]any{"from": "minority"})
	if err != nil || st != 503 {
		t.Fatalf("append on the minority: %d %s %v", st, body, err)
	}
	refusal := harness.JSON(t, body)["error"]
	for i := 0; i < 30; i++ {
		if !p.AppendOne(time.Now().Add(30 * time.Second)) {
			t.Fatal("the majority stopped taking appends")
		}
	}
	c.Heal(2)
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("the healed node last answered: %s", last)
		}
	}()
	major.WaitFor(60*time.Second, "the healed node to converge", func() bool {
		want, err := major.Events("part")
		if err != nil {
			return false
		}
		evs, err := minor.Events("part")
		last = fmt.Sprintf("%d events (the majority has %d), err %v", len(evs), len(want), err)
		return err == nil && len(evs) == len(want)
	})
	harness.CheckMinorityAppend(t, refusal, p.Verify(c.Nodes...))
}

// TestLeadersReturnToPreferred: after the elections of a fresh start,
// every node hands the groups it leads back to their preferred replica,
// so leadership ends up spread as placement spreads it — but only once a
// group is quiet: a transfer in a busy group fails in Dragonboat and
// stalls the group's writes, so a group taking appends keeps its leader
// until they stop.
func TestLeadersReturnToPreferred(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	name := func(n *harness.Node) string {
		if n == nil {
			return "no node"
		}
		return n.Name
	}
	misplaced := func() (n int) {
		for g := 0; g < c.Groups; g++ {
			if c.Leader(g) != c.Preferred(g) {
				n++
			}
		}
		return n
	}

	// A session whose group is led elsewhere than its preferred replica,
	// kept busy from before the first balancing round.
	busy, group := "", -1
	for i := 0; i < 1000 && group < 0; i++ {
		id := fmt.Sprintf("busy-%d", i)
		if g := c.Group(id); c.Leader(g) != nil && c.Leader(g) != c.Preferred(g) {
			busy, group = id, g
		}
	}
	if group < 0 {
		t.Fatalf("every group is already led by its preferred replica right after the start (%d groups)", c.Groups)
	}
	c.Nodes[0].CreateSession(busy, nil)
	p := harness.NewProducer(t, busy, harness.RoundRobin(c.Nodes...))
	stop := make(chan struct{})
	done := p.Run(stop)
	leader := c.Leader(group)

	// Every other group converges while the busy one keeps its leader.
	deadline := time.Now().Add(60 * time.Second)
	for misplaced() > 1 {
		if l := c.Leader(group); l != leader {
			t.Fatalf("group %d moved from %s to %s while it took appends", group, name(leader), name(l))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d groups still led by another replica than their preferred one after 60 s", misplaced(), c.Groups)
		}
		time.Sleep(200 * time.Millisecond) // polling /metrics for a state change
	}
	if l := c.Leader(group); l != leader || l == c.Preferred(group) {
		t.Fatalf("group %d: leader %s, want it kept at %s while busy", group, name(l), name(leader))
	}

	// Quiet again, it goes home too.
	close(stop)
	<-done
	deadline = time.Now().Add(60 * time.Second)
	for c.Leader(group) != c.Preferred(group) {
		if time.Now().After(deadline) {
			t.Fatalf("group %d still led by %s 60 s after its appends stopped, want %s", group, name(c.Leader(group)), c.Preferred(group).Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, kinds := p.Errors(); n > 0 {
		t.Fatalf("%d client-visible errors while leaders moved: %v", n, kinds)
	}
	p.Verify(c.Nodes...)
	t.Logf("%d appends to group %d while the other %d groups moved home", p.Count(), group, c.Groups-1)
}
