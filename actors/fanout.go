package actors

import (
	"strconv"
	"sync/atomic"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

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
// replay read after it cannot miss an event (spec §6.4.4).
type Subscribe struct {
	SessionID string
	PID       gen.PID
}

// committed carries the commits of one applied batch from the state
// machine to the fan-out actor.
type committed struct {
	group   uint64
	commits []fsm.Commit
}

// Notifier hands a replica's commits to the fan-out actor. It implements
// fsm.Notifier and runs on Dragonboat's apply goroutine, so it only sends
// one local message per applied batch.
type Notifier struct {
	node atomic.Pointer[gen.Node]
}

// SetNode connects the notifier once the Ergo node runs.
func (n *Notifier) SetNode(node gen.Node) { n.node.Store(&node) }

// Committed implements fsm.Notifier.
func (n *Notifier) Committed(group uint64, commits []fsm.Commit) {
	if node := n.node.Load(); node != nil {
		(*node).Send(FanoutName, committed{group: group, commits: commits})
	}
}

// Fanout delivers committed events to the TailSockets of their session on
// this node. Every replica applies every commit in log order, so a node
// holding a replica of the session's group sees each event exactly once
// and in order; local sends preserve that order up to the socket.
type Fanout struct {
	act.Actor
	subs      map[string]map[gen.PID]struct{}
	sessionOf map[gen.PID]string
	delivered uint64
}

// NewFanout returns the factory of the fan-out actor.
func NewFanout() gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Fanout{} }
}

func (a *Fanout) Init(args ...any) error {
	a.subs = map[string]map[gen.PID]struct{}{}
	a.sessionOf = map[gen.PID]string{}
	return nil
}

func (a *Fanout) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	if s, ok := request.(Subscribe); ok {
		if _, dup := a.sessionOf[s.PID]; !dup {
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
		return true, nil
	}
	return nil, nil
}

func (a *Fanout) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case committed:
		for _, c := range m.commits {
			set := a.subs[c.SessionID]
			if len(set) == 0 {
				continue
			}
			u := CursorUpdate{SessionID: c.SessionID, Seq: c.Event.Seq, LastSeq: c.LastSeq, Event: c.Event}
			for pid := range set {
				a.Send(pid, u)
			}
			a.delivered += uint64(len(set))
			cursorUpdates.Add(float64(len(set)))
		}
	case gen.MessageDownPID:
		if id, ok := a.sessionOf[m.PID]; ok {
			delete(a.sessionOf, m.PID)
			if set := a.subs[id]; set != nil {
				delete(set, m.PID)
				if len(set) == 0 {
					delete(a.subs, id)
				}
			}
			tailSubscriptions.Set(float64(len(a.sessionOf)))
		}
	}
	return nil
}

func (a *Fanout) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{
		"sessions":          strconv.Itoa(len(a.subs)),
		"sockets":           strconv.Itoa(len(a.sessionOf)),
		"updates_delivered": strconv.FormatUint(a.delivered, 10),
	}
}
