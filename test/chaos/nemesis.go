package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"starcite/test/chaos/history"
	"starcite/test/harness"
)

// Nemesis injects one fault at a time, at random, and records when each
// starts and ends: a node killed with SIGKILL and restarted on its data, a
// group leader paused with SIGSTOP and resumed, a node cut off from the
// other two by iptables inside its network namespace, and the shared
// archive directory replaced by a plain file (every archive read and
// write fails). After each fault it waits until every node is ready
// again, then stays quiet for a moment.
//
// It runs on the test goroutine: the harness may fail the test from
// here.
type Nemesis struct {
	t        *testing.T
	c        *harness.Cluster
	h        *history.Writer
	r        *rand.Rand
	archive  string            // STARCITE_ARCHIVE_DIR of every node
	sessions func() []string   // sessions the workload uses, to find busy leaders
	Counts   map[string]int    // faults injected, by kind
	undo     map[string]func() // what to undo if the test stops mid-fault
}

func newNemesis(t *testing.T, c *harness.Cluster, h *history.Writer, seed uint64, archive string, sessions func() []string) *Nemesis {
	n := &Nemesis{t: t, c: c, h: h, r: rand.New(rand.NewPCG(seed, 1<<50)), archive: archive,
		sessions: sessions, Counts: map[string]int{}, undo: map[string]func(){}}
	// A failing test must not leave a node paused, cut off or without its
	// archive: cleanup would hang or the next run would find the mess.
	t.Cleanup(func() {
		for _, f := range n.undo {
			f()
		}
	})
	return n
}

func (n *Nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.r.Int64N(int64(hi-lo)))
}

func (n *Nemesis) record(kind, phase string, node int, detail string) {
	n.h.Add(history.Record{Type: history.TypeFault, Fault: kind, Phase: phase, Node: node, Detail: detail})
	n.t.Logf("nemesis: %s %s node=%d %s", kind, phase, node, detail)
}

// leader returns the index of the leader of a busy session's group, or a
// random node when none is known.
func (n *Nemesis) leader() (int, string) {
	ss := n.sessions()
	s := ss[n.r.IntN(len(ss))]
	g := n.c.Group(s)
	if l := n.c.Leader(g); l != nil {
		for i, node := range n.c.Nodes {
			if node == l {
				return i, fmt.Sprintf("leader of group %d (session %s)", g, s)
			}
		}
	}
	return n.r.IntN(len(n.c.Nodes)), "random node (no leader known)"
}

// target picks a node: a busy leader half of the time, else any node.
func (n *Nemesis) target() (int, string) {
	if n.r.IntN(2) == 0 {
		return n.leader()
	}
	return n.r.IntN(len(n.c.Nodes)), "random node"
}

// Run injects faults until the deadline; every fault is healed when it
// returns.
func (n *Nemesis) Run(until time.Time) {
	kinds := []string{history.FaultKill, history.FaultPause, history.FaultPartition, history.FaultArchive}
	for {
		time.Sleep(n.between(time.Second, 5*time.Second))
		if time.Now().After(until) {
			return
		}
		kind := kinds[n.r.IntN(len(kinds))]
		switch kind {
		case history.FaultKill:
			n.kill()
		case history.FaultPause:
			n.pause()
		case history.FaultPartition:
			n.partition()
		case history.FaultArchive:
			n.archiveOutage()
		}
		n.Counts[kind]++
		n.waitReady()
	}
}

func (n *Nemesis) waitReady() {
	for _, node := range n.c.Nodes {
		node.WaitReady(3 * time.Minute)
	}
}

func (n *Nemesis) kill() {
	i, why := n.target()
	node := n.c.Nodes[i]
	down := n.between(500*time.Millisecond, 5*time.Second)
	n.record(history.FaultKill, "start", i+1, fmt.Sprintf("SIGKILL %s, down for %s", why, down.Round(time.Millisecond)))
	node.Kill()
	time.Sleep(down)
	node.Start()
	node.WaitReady(3 * time.Minute)
	n.record(history.FaultKill, "end", i+1, "restarted and ready")
}

func (n *Nemesis) pause() {
	i, why := n.leader()
	node := n.c.Nodes[i]
	d := n.between(time.Second, 10*time.Second)
	n.record(history.FaultPause, "start", i+1, fmt.Sprintf("SIGSTOP %s for %s", why, d.Round(time.Millisecond)))
	n.undo["pause"] = func() { node.Signal(syscall.SIGCONT) }
	node.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	node.Signal(syscall.SIGCONT)
	delete(n.undo, "pause")
	n.record(history.FaultPause, "end", i+1, "SIGCONT")
}

func (n *Nemesis) partition() {
	i, why := n.target()
	d := n.between(2*time.Second, 10*time.Second)
	n.record(history.FaultPartition, "start", i+1, fmt.Sprintf("isolate %s for %s", why, d.Round(time.Millisecond)))
	n.undo["partition"] = func() { n.c.Heal(i) }
	n.c.Partition(i)
	time.Sleep(d)
	n.c.Heal(i)
	delete(n.undo, "partition")
	n.record(history.FaultPartition, "end", i+1, "healed")
}

// archiveOutage moves the archive directory away and puts a plain file in
// its place, as test/archive does: every read and write of the file
// adapter fails until it is moved back.
func (n *Nemesis) archiveOutage() {
	d := n.between(2*time.Second, 15*time.Second)
	off := n.archive + ".off"
	n.record(history.FaultArchive, "start", 0, fmt.Sprintf("archive directory replaced by a file for %s", d.Round(time.Millisecond)))
	restore := func() {
		if st, err := os.Stat(n.archive); err == nil && !st.IsDir() {
			os.Remove(n.archive)
		}
		if _, err := os.Stat(off); err == nil {
			if err := os.Rename(off, n.archive); err != nil {
				n.t.Errorf("restore the archive: %v", err)
			}
		}
	}
	n.undo["archive"] = restore
	if err := os.Rename(n.archive, off); err != nil {
		n.t.Fatalf("archive outage: %v", err)
	}
	if err := os.WriteFile(n.archive, []byte("archive outage\n"), 0o644); err != nil {
		n.t.Fatalf("archive outage: %v", err)
	}
	time.Sleep(d)
	restore()
	delete(n.undo, "archive")
	n.record(history.FaultArchive, "end", 0, "archive directory back")
}
