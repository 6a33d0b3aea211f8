package actors

import (
	"strconv"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/dataplane"
)

// Registered names of the actors other code addresses.
const (
	RaftName   gen.Atom = "raft"
	RouterName gen.Atom = "router"
	HTTPName   gen.Atom = "http"
)

// Router owns the routing view: the leader of every group as last
// reported, published as an immutable dataplane.Routes after each change so
// the request path never waits on this mailbox.
type Router struct {
	act.Actor
	plane   *dataplane.Plane
	leaders []dataplane.LeaderHint
	changes int
}

// NewRouter returns the factory of the router actor.
func NewRouter(p *dataplane.Plane) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Router{plane: p} }
}

func (a *Router) Init(args ...any) error {
	p := a.plane.Placement()
	a.leaders = make([]dataplane.LeaderHint, p.Groups())
	// Seed from what the local replicas already know (the router may
	// restart long after the leaders were elected).
	now := time.Now()
	for _, g := range a.plane.Raft().LocalGroups() {
		if node, term, ok := a.plane.Raft().Leader(g); ok {
			a.leaders[g] = dataplane.LeaderHint{Node: node, Term: term, Seen: now}
		}
	}
	a.publish()
	return nil
}

func (a *Router) HandleMessage(from gen.PID, message any) error {
	if m, ok := message.(LeaderChanged); ok {
		if m.Group < 0 || m.Group >= len(a.leaders) || m.Term < a.leaders[m.Group].Term {
			return nil
		}
		node, _ := a.plane.Placement().NodeOf(m.Leader)
		a.leaders[m.Group] = dataplane.LeaderHint{Node: node, Term: m.Term, Seen: time.Now()}
		a.changes++
		a.publish()
	}
	return nil
}

func (a *Router) publish() {
	a.plane.PublishRoutes(&dataplane.Routes{Leaders: append([]dataplane.LeaderHint(nil), a.leaders...)})
}

func (a *Router) HandleInspect(from gen.PID, item ...string) map[string]string {
	known := 0
	for _, h := range a.leaders {
		if h.Node != "" {
			known++
		}
	}
	return map[string]string{
		"groups":         strconv.Itoa(len(a.leaders)),
		"leaders_known":  strconv.Itoa(known),
		"leader_changes": strconv.Itoa(a.changes),
	}
}
