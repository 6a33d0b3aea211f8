package actors

import (
	"time"

	"ergo.services/ergo/gen"

	"starcite/fsm"
)

// The lifecycle feed: committed session header changes (create, update,
// archive, unarchive) delivered to subscribers on every node, in commit
// order per session, once per change (docs/api.md#the-lifecycle-topic).
//
// To subscribe, a process Calls the fan-out actor (FanoutName) on its own
// node with SubscribeLifecycle; once the Call returns, the process receives
// a SessionChanged message for every later change of its tenant. It stays
// subscribed until it terminates (the fan-out monitors it).
//
// Every replica applies every command of its group, so a node holding a
// replica of a group sees that group's changes directly, in log order. For
// the other groups the fan-out subscribes, once it has a lifecycle
// subscriber, to the fan-out of one node holding a replica (a node feed per
// group, kept for the node's life; changes are rare). A feeding node that
// goes down is replaced; changes committed meanwhile are not delivered
// (best effort, as the feed has no history).
//
// A replica restarting re-applies the log since its last snapshot, which
// would publish old changes again: the fan-out publishes only changes whose
// updated_at is not older than its own start (every change stamps
// updated_at, a create with created_at).

// SubscribeLifecycle is a Call to the fan-out actor of the caller's node:
// register PID for the committed header changes of TenantID ("" for every
// tenant, none mode).
type SubscribeLifecycle struct {
	TenantID string
	PID      gen.PID
}

// SessionChanged is one committed header change, sent to lifecycle
// subscribers. Header is the session's header after the change.
type SessionChanged struct {
	Kind   fsm.ChangeKind
	Header fsm.Header
}

// Across nodes (process-to-process sends between fan-out actors, which
// Ergo keeps in order). The header travels in the state machine's own
// encoding: the wire types hold no pointers.
type (
	remoteLifecycleSubscribe struct {
		Groups []int
		Node   string // the subscribing node
	}
	remoteChange struct {
		Group  int
		Kind   uint8
		Header []byte // fsm.AppendHeader
	}
	// refeedLifecycle retries feeds that found no replica reachable.
	refeedLifecycle struct{}
)

// refeedAfter is how long the fan-out waits before asking again for a feed
// of groups no replica of which was reachable.
const refeedAfter = time.Second

func (a *Fanout) subscribeLifecycle(s SubscribeLifecycle) error {
	if !a.monitoring(s.PID) {
		if err := a.MonitorPID(s.PID); err != nil {
			return err
		}
	}
	a.lifecycle[s.PID] = s.TenantID
	a.feedLifecycle()
	return nil
}

// monitoring reports whether the fan-out already monitors pid (as a tail
// or a lifecycle subscriber).
func (a *Fanout) monitoring(pid gen.PID) bool {
	_, tail := a.sessionOf[pid]
	_, life := a.lifecycle[pid]
	return tail || life
}

// feedLifecycle makes sure the changes of every group reach this node:
// directly for local groups, else through a node with a replica.
func (a *Fanout) feedLifecycle() {
	byNode := map[string][]int{}
	missing := false
	for g := 0; g < a.plane.Placement().Groups(); g++ {
		if a.lifeVia[g] != "" || a.plane.IsLocal(g) {
			continue
		}
		fed := false
		for _, node := range a.plane.Candidates(g) {
			if a.monitor(node) {
				byNode[node] = append(byNode[node], g)
				fed = true
				break
			}
		}
		missing = missing || !fed
	}
	for node, groups := range byNode {
		if err := a.Send(gen.ProcessID{Name: FanoutName, Node: gen.Atom(node)},
			remoteLifecycleSubscribe{Groups: groups, Node: a.self}); err != nil {
			missing = true
			continue
		}
		for _, g := range groups {
			a.lifeVia[g] = node
		}
	}
	if missing && !a.refeedPending {
		a.Log().Warning("no replica reachable to feed lifecycle events of some groups; retrying")
		a.refeedPending = true
		a.SendAfter(a.PID(), refeedLifecycle{}, refeedAfter)
	}
}

// publishChanges delivers the changes a local replica of group committed
// to this node's subscribers and to the nodes this node feeds.
func (a *Fanout) publishChanges(group uint64, changes []fsm.Change) {
	for i := range changes {
		c := &changes[i]
		if c.Header.UpdatedAt < a.since {
			continue // re-applied after a restart: published before it
		}
		a.deliverChange(SessionChanged{Kind: c.Kind, Header: c.Header})
		var enc []byte
		for node := range a.lifeOut[int(group)] {
			if enc == nil {
				enc = fsm.AppendHeader(nil, &c.Header)
			}
			a.Send(gen.ProcessID{Name: FanoutName, Node: gen.Atom(node)},
				remoteChange{Group: int(group), Kind: uint8(c.Kind), Header: enc})
		}
	}
}

func (a *Fanout) deliverChange(m SessionChanged) {
	for pid, tenant := range a.lifecycle {
		if tenant == "" || tenant == m.Header.TenantID {
			a.Send(pid, m)
		}
	}
}

// handleLifecycle handles the lifecycle messages; false when m is none.
func (a *Fanout) handleLifecycle(m any) bool {
	switch m := m.(type) {
	case remoteChange:
		h, err := fsm.ParseHeader(m.Header)
		if err != nil {
			a.Log().Error("undecodable lifecycle change from a peer: %s", err)
			return true
		}
		a.deliverChange(SessionChanged{Kind: fsm.ChangeKind(m.Kind), Header: h})
	case remoteLifecycleSubscribe:
		if !a.monitor(m.Node) {
			return true
		}
		for _, g := range m.Groups {
			set := a.lifeOut[g]
			if set == nil {
				set = map[string]struct{}{}
				a.lifeOut[g] = set
			}
			set[m.Node] = struct{}{}
		}
	case refeedLifecycle:
		a.refeedPending = false
		a.feedLifecycle()
	default:
		return false
	}
	return true
}

// lifecycleNodeDown forgets a node that went down: it is fed no more, and
// the groups it fed are fed through another node.
func (a *Fanout) lifecycleNodeDown(node string) {
	for g, set := range a.lifeOut {
		delete(set, node)
		if len(set) == 0 {
			delete(a.lifeOut, g)
		}
	}
	lost := false
	for g, via := range a.lifeVia {
		if via == node {
			delete(a.lifeVia, g)
			lost = true
		}
	}
	if lost && len(a.lifecycle) > 0 {
		a.feedLifecycle()
	}
}
