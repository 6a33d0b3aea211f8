package actors

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/dataplane"
)

// ObserverName is the registered name of the observer.
const ObserverName gen.Atom = "observer"

// Observer timings (docs/operations.md#liveness-and-readiness,
// docs/decisions.md#d13).
const (
	observerTick  = time.Second
	suspectToLost = 120 * time.Second
	watchEvery    = time.Second
	missesToDrop  = 3 // unanswered pings before a silent peer is disconnected
)

// Node states of the observer.
const (
	StateReady    = "ready"
	StateSuspect  = "suspect"
	StateLost     = "lost"
	StateDraining = "draining"
)

// ping and pong are the observers' heartbeat: Ergo has no heartbeat of its
// own, so a silent partition would otherwise go unnoticed
// (docs/decisions.md#d41). The pong carries what the peer knows: its
// consensus readiness and every drain mark, so a restarted observer adopts
// the cluster's drain decisions.
type (
	ping struct{}
	pong struct {
		Node  string
		Ready bool
		Marks []DrainMark
	}
)

// DrainMark is an operator's drain or undrain of a node. The newest
// (highest Version) wins everywhere, so marks converge whatever order
// they arrive in.
type DrainMark struct {
	Node     string
	Draining bool
	Version  int64 // Unix nanoseconds of the operator's action
}

// Drain asks the observer to drain (or undrain) a write node cluster-wide.
type Drain struct {
	Node     string
	Draining bool
}

// NodeStatus is one write node as the observer sees it.
type NodeStatus struct {
	Node      string
	Status    string
	ChangedAt time.Time
	Visible   bool
	RaftReady bool
}

// StatusRequest asks the observer for its table (an ObserverStatus).
type StatusRequest struct{}

// ObserverStatus is the observer's table, for ops and the shell.
type ObserverStatus struct {
	Nodes      []NodeStatus
	ReadyNodes []string
}

type (
	observerTickMsg struct{}
	peerUp          struct{ peer string }
	peerDown        struct{ peer string }
	peerPong        struct {
		peer string
		p    pong
	}
	watchTick struct{}
)

type nodeState struct {
	status    string
	changed   time.Time
	visible   bool
	raftReady bool
	headers   bool // last seen running a build that applies header commands
}

// ObserverPlane is what the observer reads and publishes: package
// dataplane's *Plane in a node, a fake in a test.
type ObserverPlane interface {
	Placement() *dataplane.Placement
	// Consensus is this node's consensus readiness (its replicas' leaders).
	Consensus() dataplane.Readiness
	// PublishView hands the routing and readiness view to the request path.
	PublishView(v *dataplane.View)
}

// Observer tracks the liveness of the write nodes: ready → suspect (down
// or silent) → lost (after 120 s); draining is sticky until an operator
// undrains. It publishes the ready set (observer-ready and
// consensus-ready) that routing and readiness use. One peerWatcher per
// peer does the dialing and pinging, so a slow peer never blocks this
// mailbox.
type Observer struct {
	act.Actor
	plane ObserverPlane
	self  string
	nodes map[string]*nodeState
	marks map[string]DrainMark
}

// NewObserver returns the factory of the observer.
func NewObserver(p ObserverPlane, self string) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Observer{plane: p, self: self} }
}

func (o *Observer) Init(args ...any) error {
	o.nodes = map[string]*nodeState{}
	o.marks = map[string]DrainMark{}
	now := time.Now()
	for _, n := range o.plane.Placement().Nodes() {
		if n == o.self {
			o.nodes[n] = &nodeState{status: StateReady, changed: now, visible: true}
			continue
		}
		// Not seen yet: suspect until its watcher reaches it.
		o.nodes[n] = &nodeState{status: StateSuspect, changed: now}
		opts := gen.ProcessOptions{LinkParent: true}
		if _, err := o.Spawn(func() gen.ProcessBehavior { return &peerWatcher{} }, opts, gen.Atom(n)); err != nil {
			return fmt.Errorf("watch %s: %w", n, err)
		}
	}
	o.refreshSelf()
	o.publish()
	_, err := o.SendAfter(o.PID(), observerTickMsg{}, observerTick)
	return err
}

func (o *Observer) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case observerTickMsg:
		o.SendAfter(o.PID(), observerTickMsg{}, observerTick)
		o.refreshSelf()
		now := time.Now()
		for _, st := range o.nodes {
			if st.status == StateSuspect && now.Sub(st.changed) >= suspectToLost {
				o.set(st, StateLost)
			}
		}
	case peerUp:
		if st := o.nodes[m.peer]; st != nil {
			st.visible = true
			o.settle(m.peer, st)
		}
	case peerDown:
		if st := o.nodes[m.peer]; st != nil {
			st.visible, st.raftReady = false, false
			o.settle(m.peer, st)
			o.Log().Warning("write node %s is down", m.peer)
		}
	case peerPong:
		if st := o.nodes[m.peer]; st != nil {
			st.visible, st.raftReady = true, m.p.Ready
			if rn, err := o.Node().Network().Node(gen.Atom(m.peer)); err == nil {
				st.headers = rn.Version().Name == nodeVersionName
			}
			for _, mk := range m.p.Marks {
				o.adopt(mk)
			}
			o.settle(m.peer, st)
		}
	case DrainMark:
		o.adopt(m)
	default:
		return nil
	}
	o.publish()
	return nil
}

func (o *Observer) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	switch r := request.(type) {
	case ping:
		return pong{Node: o.self, Ready: o.plane.Consensus().Probe.Ready, Marks: o.markList()}, nil
	case Drain:
		if _, ok := o.nodes[r.Node]; !ok {
			return fmt.Errorf("unknown node %q (known nodes: %s)", r.Node, strings.Join(o.plane.Placement().Nodes(), ", ")), nil
		}
		mk := DrainMark{Node: r.Node, Draining: r.Draining, Version: time.Now().UnixNano()}
		o.adopt(mk)
		for n := range o.nodes {
			if n != o.self {
				// Best effort: a peer that misses it adopts it from a pong.
				o.Send(gen.ProcessID{Name: ObserverName, Node: gen.Atom(n)}, mk)
			}
		}
		o.publish()
		return true, nil
	case StatusRequest:
		return o.status(), nil
	}
	return nil, nil
}

// refreshSelf updates this node's own row: always visible, consensus
// readiness from the local probe.
func (o *Observer) refreshSelf() {
	if st := o.nodes[o.self]; st != nil {
		st.raftReady = o.plane.Consensus().Probe.Ready
	}
}

// adopt takes a drain mark when it is newer than the one known.
func (o *Observer) adopt(mk DrainMark) {
	st := o.nodes[mk.Node]
	if st == nil || mk.Version <= o.marks[mk.Node].Version {
		return
	}
	o.marks[mk.Node] = mk
	verb := "undrained"
	if mk.Draining {
		verb = "drained"
	}
	o.Log().Info("write node %s %s", mk.Node, verb)
	o.settle(mk.Node, st)
}

// settle derives a node's status from its visibility and drain mark.
func (o *Observer) settle(node string, st *nodeState) {
	switch {
	case o.marks[node].Draining:
		o.set(st, StateDraining)
	case st.visible:
		o.set(st, StateReady)
	case st.status == StateReady || st.status == StateDraining:
		o.set(st, StateSuspect) // an already suspect or lost node keeps its clock
	}
}

func (o *Observer) set(st *nodeState, status string) {
	if st.status != status {
		st.status, st.changed = status, time.Now()
	}
}

func (o *Observer) markList() []DrainMark {
	out := make([]DrainMark, 0, len(o.marks))
	for _, mk := range o.marks {
		out = append(out, mk)
	}
	return out
}

func (o *Observer) publish() {
	v := &dataplane.View{Ready: map[string]bool{}, Draining: map[string]bool{}, Headers: map[string]bool{}}
	for n, st := range o.nodes {
		v.Ready[n] = st.status == StateReady && st.raftReady
		v.Draining[n] = o.marks[n].Draining
		v.Headers[n] = n == o.self || st.headers
	}
	o.plane.PublishView(v)
}

func (o *Observer) status() ObserverStatus {
	var s ObserverStatus
	for n, st := range o.nodes {
		s.Nodes = append(s.Nodes, NodeStatus{Node: n, Status: st.status, ChangedAt: st.changed,
			Visible: st.visible, RaftReady: st.raftReady})
		if st.status == StateReady && st.raftReady {
			s.ReadyNodes = append(s.ReadyNodes, n)
		}
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Node < s.Nodes[j].Node })
	sort.Strings(s.ReadyNodes)
	return s
}

func (o *Observer) HandleInspect(from gen.PID, item ...string) map[string]string {
	out := map[string]string{}
	for _, n := range o.status().Nodes {
		out[n.Node] = fmt.Sprintf("%s since %s (visible=%v raft_ready=%v)", n.Status,
			n.ChangedAt.UTC().Format(time.RFC3339), n.Visible, n.RaftReady)
	}
	return out
}

// peerWatcher connects to one peer, monitors it, and pings its observer
// every second; after three unanswered pings it disconnects, so a silent
// partition is reported like a crash.
type peerWatcher struct {
	act.Actor
	peer   gen.Atom
	up     bool
	misses int
}

func (w *peerWatcher) Init(args ...any) error {
	w.peer = args[0].(gen.Atom)
	return w.Send(w.PID(), watchTick{})
}

func (w *peerWatcher) HandleMessage(from gen.PID, message any) error {
	switch message.(type) {
	case watchTick:
		defer w.SendAfter(w.PID(), watchTick{}, watchEvery)
		if !w.up {
			if err := w.MonitorNode(w.peer); err != nil {
				return nil // unreachable: try again next tick
			}
			w.up, w.misses = true, 0
			w.Send(w.Parent(), peerUp{peer: string(w.peer)})
			return nil
		}
		v, err := w.CallWithTimeout(gen.ProcessID{Name: ObserverName, Node: w.peer}, ping{}, 1)
		if p, ok := v.(pong); err == nil && ok {
			w.misses = 0
			w.Send(w.Parent(), peerPong{peer: string(w.peer), p: p})
			return nil
		}
		if errors.Is(err, gen.ErrTimeout) {
			if w.misses++; w.misses >= missesToDrop {
				if rn, err := w.Node().Network().Node(w.peer); err == nil {
					rn.Disconnect() // → MessageDownNode
				}
			}
		}
	case gen.MessageDownNode:
		w.up = false
		w.Send(w.Parent(), peerDown{peer: string(w.peer)})
	}
	return nil
}
