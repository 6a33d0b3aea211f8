package dataplane

import "time"

// A node's readiness, in one place: the consensus probe of its replicas,
// the reason /health/ready and `starcite ops status` give for a node that
// is not ready, and the local readiness `starcite ops wait-ready` waits
// for.

// ReadinessMaxAge is how long a consensus probe is reused by whoever asks
// for readiness (the health endpoint, the raft, observer and ops actors).
const ReadinessMaxAge = 3 * time.Second

// Probe is a readiness check of the local replicas.
type Probe struct {
	Ready         bool
	CheckedGroups int
	FailingGroup  int // -1 when none
	Result        string
}

// Readiness is the consensus readiness of this node.
type Readiness struct {
	Started bool // bootstrap has started every local replica
	Probe   Probe
	At      time.Time // when Probe ran
}

// Reasons a node is not ready, as /health/ready reports them.
const (
	NotReadyDraining     = "draining"      // an operator drained this write node
	NotReadyRaftSync     = "raft_sync"     // a local group has no known leader
	NotReadyObserverSync = "observer_sync" // the observer does not list this write node as ready
	NotReadyRouterSync   = "router_sync"   // some group has no ready replica to route to
)

// Health is this node's readiness by the rule of /health/ready
// (docs/api.md#readiness): notReady is "" when the node is ready, else the
// reason; rd is the consensus probe behind it (ReadinessMaxAge old at
// most). A write node is ready when an operator has not drained it, every
// local group has a leader, and its observer lists it as ready; a router
// node when every group has a ready replica to route to.
func (p *Plane) Health(writeNode bool) (notReady string, rd Readiness) {
	rd = p.Consensus()
	if !writeNode {
		if !p.Reachable() {
			return NotReadyRouterSync, rd
		}
		return "", rd
	}
	self := p.Self()
	v := p.View()
	switch {
	case v != nil && v.Draining[self]:
		return NotReadyDraining, rd
	case !rd.Probe.Ready:
		return NotReadyRaftSync, rd
	case v == nil || !v.Ready[self]:
		return NotReadyObserverSync, rd
	}
	return "", rd
}

// Consensus is the consensus readiness of the local replicas, from a
// probe at most ReadinessMaxAge old.
func (p *Plane) Consensus() Readiness { return p.raft.Readiness(ReadinessMaxAge) }

// LocalReady is the local readiness of docs/operations.md#starcite-ops: a
// write node's consensus probe (maxAge 0 forces a fresh one), a router
// node's reach of every group. An operator's drain does not change it, so
// a drained node can be waited for after a restart, before it is
// undrained.
func (p *Plane) LocalReady(writeNode bool, maxAge time.Duration) bool {
	if !writeNode {
		return p.Reachable()
	}
	rd := p.raft.Readiness(maxAge)
	return rd.Started && rd.Probe.Ready
}

// MarkStarted records that bootstrap started every local replica.
func (r *Raft) MarkStarted() { r.started.Store(true) }

// Probe checks that every local group has a known leader.
func (r *Raft) Probe() Probe {
	for i, g := range r.local {
		if _, _, ok := r.Leader(g); !ok {
			res := "leader_unknown"
			if _, err := r.nh.GetNodeUser(shardID(g)); err != nil {
				res = "local_group_down"
			}
			return Probe{CheckedGroups: i, FailingGroup: g, Result: res}
		}
	}
	return Probe{Ready: true, CheckedGroups: len(r.local), FailingGroup: -1, Result: "ok"}
}

// Readiness returns the last probe when it is younger than maxAge, else
// runs a fresh one (cheap: one leader lookup per local group).
func (r *Raft) Readiness(maxAge time.Duration) Readiness {
	if !r.started.Load() {
		return Readiness{Probe: Probe{FailingGroup: -1, Result: "startup_sync"}}
	}
	if last := r.probe.Load(); last != nil && time.Since(last.At) < maxAge {
		return *last
	}
	rd := &Readiness{Started: true, Probe: r.Probe(), At: time.Now()}
	r.probe.Store(rd)
	return *rd
}

// InvalidateReadiness drops the cached probe (a leader changed).
func (r *Raft) InvalidateReadiness() { r.probe.Store(nil) }
