package actors

import (
	"strconv"
	"sync/atomic"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/dataplane"
	"starcite/fsm"
)

// FanoutName is the registered name of the cursor fan-out actor.
const FanoutName gen.Atom = "fanout"

// CursorUpdate tells a TailSocket that its session committed an event:
// the message that replaces a PubSub topic (one per committed event).
type CursorUpdate struct {
	SessionID string
	Seq       uint64
	LastSeq   uint64
	Event     fsm.Event
}

// Subscribe registers a TailSocket for its session's cursor updates. It is
// a Call: once it returns, every later commit reaches the socket, so a
// replay read after it cannot miss an event (docs/api.md#replay-then-live).
type Subscribe struct {
	SessionID string
	PID       gen.PID
}

// Across nodes: a node without a replica of a session's group subscribes
// through the fan-out of a node that has one. Sends between two fan-out
// actors are process-to-process, which Ergo keeps in order.
type (
	remoteSubscribe struct {
		SessionID string
		Node      string // the subscribing node
	}
	remoteUnsubscribe struct {
		SessionID string
		Node      string
	}
	remoteCursor struct {
		Update CursorUpdate
	}
)

// resync tells a TailSocket that updates may have been lost (the node it
// received them through went down): it re-reads from its cursor.
type resync struct{}

// committed carries the commits and header changes of one applied batch
// from the state machine to the fan-out actor.
type committed struct {
	group   uint64
	commits []fsm.Commit
	changes []fsm.Change
}

// Notifier hands a replica's commits and changes to the fan-out actor. It implements
// fsm.Notifier and runs on Dragonboat's apply goroutine, so it only sends
// one local message per applied batch.
type Notifier struct {
	node atomic.Pointer[gen.Node]
}

// SetNode connects the notifier once the Ergo node runs.
func (n *Notifier) SetNode(node gen.Node) { n.node.Store(&node) }

// Committed implements fsm.Notifier.
func (n *Notifier) Committed(group uint64, out fsm.Output) {
	if node := n.node.Load(); node != nil {
		(*node).Send(FanoutName, committed{group: group, commits: out.Commits, changes: out.Changes})
	}
}

// FanoutPlane is what the fan-out actor needs to know about placement:
// package dataplane's *Plane in a node, a fake in a test.
type FanoutPlane interface {
	Placement() *dataplane.Placement
	IsLocal(group int) bool
	// Candidates are the other replicas of group, best first.
	Candidates(group int) []string
}

// Fanout delivers committed events to the TailSockets of their session on
// this node, and committed header changes to lifecycle subscribers
// (lifecycle_feed.go). Every replica applies every commit in log order, so a node
// holding a replica of the session's group sees each event exactly once
// and in order; local sends preserve that order up to the socket. A node
// without such a replica subscribes through a node with one and receives
// the updates from its fan-out.
type Fanout struct {
	act.Actor
	plane     FanoutPlane
	self      string
	subs      map[string]map[gen.PID]struct{}
	sessionOf map[gen.PID]string
	via       map[string]string              // session → node whose fan-out feeds us
	remote    map[string]map[string]struct{} // session → nodes fed by us
	monitored map[string]bool
	delivered uint64

	lifecycle     map[gen.PID]string          // lifecycle subscriber → tenant ("" = all)
	lifeVia       map[int]string              // group → node whose fan-out feeds us its changes
	lifeOut       map[int]map[string]struct{} // group → nodes we feed its changes
	since         int64                       // start (Unix µs): older changes are re-applied ones
	refeedPending bool
}

// NewFanout returns the factory of the fan-out actor.
func NewFanout(p FanoutPlane, self string) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Fanout{plane: p, self: self} }
}

func (a *Fanout) Init(args ...any) error {
	a.subs = map[string]map[gen.PID]struct{}{}
	a.sessionOf = map[gen.PID]string{}
	a.via = map[string]string{}
	a.remote = map[string]map[string]struct{}{}
	a.monitored = map[string]bool{}
	a.lifecycle = map[gen.PID]string{}
	a.lifeVia = map[int]string{}
	a.lifeOut = map[int]map[string]struct{}{}
	a.since = time.Now().UnixMicro()
	return nil
}

// feed makes sure updates of a session reach this node: directly when it
// holds a replica of the session's group, else through another node.
func (a *Fanout) feed(session string) {
	if a.via[session] != "" || a.plane.IsLocal(a.plane.Placement().Group(session)) {
		return
	}
	for _, node := range a.plane.Candidates(a.plane.Placement().Group(session)) {
		if !a.monitor(node) {
			continue
		}
		if err := a.Send(gen.ProcessID{Name: FanoutName, Node: gen.Atom(node)},
			remoteSubscribe{SessionID: session, Node: a.self}); err == nil {
			a.via[session] = node
			return
		}
	}
	a.Log().Warning("no replica reachable to feed tails of %q; they catch up by polling", session)
}

func (a *Fanout) monitor(node string) bool {
	if a.monitored[node] {
		return true
	}
	if err := a.MonitorNode(gen.Atom(node)); err != nil {
		return false
	}
	a.monitored[node] = true
	return true
}

func (a *Fanout) deliver(u CursorUpdate) {
	set := a.subs[u.SessionID]
	for pid := range set {
		a.Send(pid, u)
	}
	a.delivered += uint64(len(set))
	cursorUpdates.Add(float64(len(set)))
}

func (a *Fanout) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	if s, ok := request.(SubscribeLifecycle); ok {
		if err := a.subscribeLifecycle(s); err != nil {
			return err, nil
		}
		return true, nil
	}
	if s, ok := request.(Subscribe); ok {
		if !a.monitoring(s.PID) {
			// A monitor unsubscribes the socket however it ends.
			if err := a.MonitorPID(s.PID); err != nil {
				return err, nil
			}
		}
		set := a.subs[s.SessionID]
		if set == nil {
			set = map[gen.PID]struct{}{}
			a.subs[s.SessionID] = set
		}
		set[s.PID] = struct{}{}
		a.sessionOf[s.PID] = s.SessionID
		tailSubscriptions.Set(float64(len(a.sessionOf)))
		a.feed(s.SessionID)
		return true, nil
	}
	return nil, nil
}

func (a *Fanout) HandleMessage(from gen.PID, message any) error {
	if a.handleLifecycle(message) {
		return nil
	}
	switch m := message.(type) {
	case committed:
		for _, c := range m.commits {
			u := CursorUpdate{SessionID: c.SessionID, Seq: c.Event.Seq, LastSeq: c.LastSeq, Event: c.Event}
			if len(a.subs[c.SessionID]) > 0 {
				a.deliver(u)
			}
			for node := range a.remote[c.SessionID] {
				a.Send(gen.ProcessID{Name: FanoutName, Node: gen.Atom(node)}, remoteCursor{Update: u})
			}
		}
		a.publishChanges(m.group, m.changes)
	case remoteCursor:
		a.deliver(m.Update)
	case remoteSubscribe:
		if a.monitor(m.Node) {
			set := a.remote[m.SessionID]
			if set == nil {
				set = map[string]struct{}{}
				a.remote[m.SessionID] = set
			}
			set[m.Node] = struct{}{}
		}
	case remoteUnsubscribe:
		if set := a.remote[m.SessionID]; set != nil {
			delete(set, m.Node)
			if len(set) == 0 {
				delete(a.remote, m.SessionID)
			}
		}
	case gen.MessageDownPID:
		delete(a.lifecycle, m.PID)
		if id, ok := a.sessionOf[m.PID]; ok {
			delete(a.sessionOf, m.PID)
			if set := a.subs[id]; set != nil {
				delete(set, m.PID)
				if len(set) == 0 {
					delete(a.subs, id)
					if node := a.via[id]; node != "" {
						delete(a.via, id)
						a.Send(gen.ProcessID{Name: FanoutName, Node: gen.Atom(node)},
							remoteUnsubscribe{SessionID: id, Node: a.self})
					}
				}
			}
			tailSubscriptions.Set(float64(len(a.sessionOf)))
		}
	case gen.MessageDownNode:
		node := string(m.Name)
		delete(a.monitored, node)
		a.lifecycleNodeDown(node)
		for id, set := range a.remote {
			delete(set, node)
			if len(set) == 0 {
				delete(a.remote, id)
			}
		}
		for id, via := range a.via {
			if via != node {
				continue
			}
			// Updates may have been lost on the way: feed the session
			// through another node and have its sockets re-read.
			delete(a.via, id)
			a.feed(id)
			for pid := range a.subs[id] {
				a.Send(pid, resync{})
			}
		}
	}
	return nil
}

func (a *Fanout) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{
		"lifecycle_subscribers": strconv.Itoa(len(a.lifecycle)),
		"lifecycle_feeds_in":    strconv.Itoa(len(a.lifeVia)),
		"lifecycle_feeds_out":   strconv.Itoa(len(a.lifeOut)),
		"remote_feeds_in":       strconv.Itoa(len(a.via)),
		"remote_feeds_out":      strconv.Itoa(len(a.remote)),
		"sessions":              strconv.Itoa(len(a.subs)),
		"sockets":               strconv.Itoa(len(a.sessionOf)),
		"updates_delivered":     strconv.FormatUint(a.delivered, 10),
	}
}
