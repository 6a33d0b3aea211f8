package actors

import (
	"strconv"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/dataplane"
)

// Timings of the raft actor (docs/operations.md#liveness-and-readiness).
const (
	reconcileInterval = 5 * time.Second // restart local replicas that stopped
	probeInterval     = time.Second     // refresh readiness between requests
	// leaderMovesPerRound bounds leader transfers per reconcile round: a
	// transfer pauses the group for about one Raft round trip.
	leaderMovesPerRound = 16
)

type (
	bootstrap struct{}
	reconcile struct{}
	probeTick struct{}
)

// Raft starts this node's replicas and keeps their readiness current. It
// turns Dragonboat's leader callbacks into messages for the router.
type Raft struct {
	act.Actor
	plane   *dataplane.Plane
	raft    *dataplane.Raft
	started bool
	ready   bool           // last probe result, to log transitions
	failing int            // consecutive failed bootstrap or reconcile rounds
	logSeen map[int]uint64 // last log index per group at the previous balancing round
}

// NewRaft returns the factory of the raft actor.
func NewRaft(p *dataplane.Plane) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Raft{plane: p, raft: p.Raft(), logSeen: map[int]uint64{}} }
}

func (a *Raft) Init(args ...any) error {
	// Starting 256 replicas takes about a second: do it after Init so the
	// supervisor is not held up.
	return a.Send(a.PID(), bootstrap{})
}

func (a *Raft) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case bootstrap, reconcile:
		start := time.Now()
		if err := a.raft.StartGroups(); err != nil {
			a.failing++
			if a.failing == 1 || a.failing%60 == 0 {
				a.Log().Error("starting local replicas failed (attempt %d): %s", a.failing, err)
			}
			a.SendAfter(a.PID(), reconcile{}, time.Second)
			return nil
		}
		if a.failing > 0 {
			a.Log().Info("local replicas running again after %d failed attempts", a.failing)
			a.failing = 0
		}
		if !a.started {
			a.started = true
			a.raft.MarkStarted()
			a.Log().Info("started %d local replicas in %s", len(a.raft.LocalGroups()), time.Since(start).Round(time.Millisecond))
			a.Send(a.PID(), probeTick{})
		}
		// Balance leadership: a few quiet groups per round back to their
		// preferred (placement-balanced) leader.
		for g, node := range a.plane.LeadershipMoves(leaderMovesPerRound, a.logSeen) {
			if err := a.raft.TransferLeader(g, node); err != nil {
				a.Log().Debug("leader transfer of group %d to %s: %s", g, node, err)
			}
		}
		a.SendAfter(a.PID(), reconcile{}, reconcileInterval)
	case probeTick:
		rd := a.raft.Readiness(0)
		if rd.Probe.Ready != a.ready {
			a.ready = rd.Probe.Ready
			if a.ready {
				a.Log().Info("consensus ready: every local group has a leader")
			} else {
				a.Log().Warning("consensus not ready: group %d %s", rd.Probe.FailingGroup, rd.Probe.Result)
			}
		}
		a.SendAfter(a.PID(), probeTick{}, probeInterval)
	case LeaderChanged:
		a.raft.InvalidateReadiness()
		// High priority: the router is a pool that hands normal messages
		// to its workers; routing updates are for the router itself.
		a.SendWithPriority(RouterName, m, gen.MessagePriorityHigh)
	}
	return nil
}

func (a *Raft) HandleInspect(from gen.PID, item ...string) map[string]string {
	rd := a.raft.Readiness(dataplane.ReadinessMaxAge)
	return map[string]string{
		"local_groups":  strconv.Itoa(len(a.raft.LocalGroups())),
		"started":       strconv.FormatBool(rd.Started),
		"ready":         strconv.FormatBool(rd.Probe.Ready),
		"probe_result":  rd.Probe.Result,
		"failing_group": strconv.Itoa(rd.Probe.FailingGroup),
		"hot_bytes":     strconv.FormatInt(a.raft.HotBytes(), 10),
	}
}
