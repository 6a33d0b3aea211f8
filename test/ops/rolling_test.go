package ops

import (
	"fmt"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestRollingRestart restarts every node in turn with the runbook of the
// README (drain → wait-drained → stop → start → wait-ready → undrain →
// wait-ready) while producers append and followers tail through the
// nodes in rotation. Nothing acknowledged may be lost, duplicated or
// reordered, no tail may see a gap; the client-visible errors are logged.
func TestRollingRestart(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	waitAllReady(t, c)
	rot := newRotation(c.Nodes)
	targets := harness.Targets{Pick: rot.acquire, Release: rot.release}

	const sessions = 3
	var producers []*harness.Producer
	var followers []*harness.Follower
	stopP, stopF := make(chan struct{}), make(chan struct{})
	var doneP, doneF []<-chan struct{}
	for i := 0; i < sessions; i++ {
		s := fmt.Sprintf("roll-%d", i)
		c.Nodes[i%3].CreateSession(s, nil)
		p := harness.NewProducer(t, s, targets)
		f := harness.NewFollower(s, 1, targets)
		producers, followers = append(producers, p), append(followers, f)
		doneP, doneF = append(doneP, p.Run(stopP)), append(doneF, f.Run(stopF))
	}
	mark := func(what string) { t.Logf("%s %s", time.Now().Format("15:04:05.000"), what) }
	progress := func(what string, more int) {
		t.Helper()
		base := make([]int, sessions)
		for i, p := range producers {
			base[i] = p.Count()
		}
		waitUntil(t, 60*time.Second, what, func() bool {
			for i, p := range producers {
				if p.Count() < base[i]+more {
					return false
				}
			}
			return true
		})
	}
	progress("appends before the restarts", 20)

	for _, n := range c.Nodes {
		start := time.Now()
		mustOps(t, n, "node "+n.Name+" marked draining", "drain")
		mark("drained " + n.Name)
		mustOps(t, n, "local_drained=true", "wait-drained", "60000")
		progress("appends while "+n.Name+" is drained", 10)
		rot.remove(n) // what a load balancer does once /health/ready says draining
		waitUntil(t, 30*time.Second, "no client request left on "+n.Name, func() bool { return rot.idle(n) })
		n.Kill()
		mark("killed " + n.Name)
		progress("appends while "+n.Name+" is down", 10)
		n.Start()
		mark("started " + n.Name)
		mustOps(t, n, "local_ready=true", "wait-ready", "90000")
		mustOps(t, n, "node "+n.Name+" marked ready", "undrain")
		mark("undrained " + n.Name)
		mustOps(t, n, "local_ready=true", "wait-ready", "60000")
		n.WaitReady(60 * time.Second)
		waitAllReady(t, c)
		rot.add(n)
		t.Logf("%s restarted in %s", n.Name, time.Since(start).Round(time.Millisecond))
		progress("appends after "+n.Name+" is back", 10)
	}

	close(stopP)
	for _, d := range doneP {
		<-d
	}
	for i, f := range followers {
		final := uint64(producers[i].Count())
		waitUntil(t, 60*time.Second, "tail of "+f.Session+" to reach seq "+fmt.Sprint(final), func() bool {
			return f.Last() >= final
		})
	}
	close(stopF)
	for _, d := range doneF {
		<-d
	}

	total, visible := 0, 0
	byStatus := map[string]int{}
	for _, p := range producers {
		p.Verify(c.Nodes...)
		total += p.Count()
		n, errs := p.Errors()
		visible += n
		for k, v := range errs {
			byStatus[k] += v
		}
	}
	closes := map[string]int{}
	for _, f := range followers {
		if err := f.Err(); err != nil {
			t.Errorf("tail: %v", err)
		}
		for k, v := range f.Closes() {
			closes[k] += v
		}
	}
	t.Logf("rolling restart: %d appends acknowledged, none lost; client-visible append errors: %d %v", total, visible, byStatus)
	t.Logf("tail reconnects by cause: %v", closes)
}
