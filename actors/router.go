package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
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

// Router owns the routing view — the leader of every group as last
// reported, published as an immutable dataplane.Routes after each change
// so the request path never waits on this mailbox — and serves the
// requests other nodes forward here.
//
// It is an act.Pool: forwarded requests (normal priority) go round-robin
// to routerWorker actors that run them on the local replicas, so a slow
// commit never holds up the others; routing updates are sent with high
// priority and handled by the router itself.
type Router struct {
	act.Pool
	plane   *dataplane.Plane
	self    string
	leaders []dataplane.LeaderHint
	changes int
}

// routerWorkers bounds how many forwarded requests run at once.
const routerWorkers = 32

// NewRouter returns the factory of the router.
func NewRouter(p *dataplane.Plane, self string) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Router{plane: p, self: self} }
}

func (a *Router) Init(args ...any) (act.PoolOptions, error) {
	p := a.plane.Placement()
	a.leaders = make([]dataplane.LeaderHint, p.Groups())
	// Seed from what the local replicas already know (the router may
	// restart long after the leaders were elected).
	now := time.Now()
	for _, g := range a.plane.Raft().LocalGroups() {
		node, term, ok := a.plane.Raft().Leader(g)
		if ok {
			a.leaders[g] = dataplane.LeaderHint{Node: node, Term: term, Seen: now}
		}
		a.gauge(g, node)
	}
	a.publish()
	return act.PoolOptions{
		PoolSize:      routerWorkers,
		WorkerFactory: func() gen.ProcessBehavior { return &routerWorker{plane: a.plane} },
	}, nil
}

func (a *Router) HandleMessage(from gen.PID, message any) error {
	if m, ok := message.(LeaderChanged); ok {
		if m.Group < 0 || m.Group >= len(a.leaders) || m.Term < a.leaders[m.Group].Term {
			return nil
		}
		node, _ := a.plane.Placement().NodeOf(m.Leader)
		a.leaders[m.Group] = dataplane.LeaderHint{Node: node, Term: m.Term, Seen: time.Now()}
		a.changes++
		leaderChanges.Inc()
		a.gauge(m.Group, node)
		a.publish()
	}
	return nil
}

func (a *Router) gauge(group int, leader string) {
	v := 0.0
	if leader == a.self {
		v = 1
	}
	groupLeader.WithLabelValues(strconv.Itoa(group)).Set(v)
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
		"workers":        strconv.Itoa(routerWorkers),
	}
}

// rpcTimeout bounds one forwarded request
// (docs/operations.md#failures-and-timeouts: 5 s).
const rpcTimeout = 5 * time.Second

// routerWorker runs forwarded requests on the local replicas.
type routerWorker struct {
	act.Actor
	plane *dataplane.Plane
}

func (w *routerWorker) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout-500*time.Millisecond)
	defer cancel()
	switch r := request.(type) {
	case dataplane.ProposeRequest:
		forwardedRequests.WithLabelValues("propose").Inc()
		reply, err := w.plane.ServePropose(ctx, r)
		if err != nil {
			w.Log().Warning("refused a forwarded command from %s (group %d): %s", string(from.Node), r.Group, err)
		}
		return reply, nil
	case dataplane.ReadRequest:
		forwardedRequests.WithLabelValues("read").Inc()
		return w.plane.ServeRead(ctx, r), nil
	case dataplane.HeaderReadRequest:
		forwardedRequests.WithLabelValues("read").Inc()
		return w.plane.ServeHeaderRead(ctx, r), nil
	}
	return nil, nil
}

// Forwarder implements dataplane.Forwarder with calls to the router of
// another node.
type Forwarder struct {
	node atomic.Pointer[gen.Node]
}

// SetNode connects the forwarder to the running node.
func (f *Forwarder) SetNode(n gen.Node) { f.node.Store(&n) }

func (f *Forwarder) call(ctx context.Context, node string, req any) (any, error) {
	n := f.node.Load()
	if n == nil {
		return nil, errors.New("node not started")
	}
	secs := int(rpcTimeout / time.Second)
	if dl, ok := ctx.Deadline(); ok {
		secs = max(1, min(secs, int(time.Until(dl).Round(time.Second)/time.Second)))
	}
	v, err := (*n).CallWithTimeout(gen.ProcessID{Name: RouterName, Node: gen.Atom(node)}, req, secs)
	if errors.Is(err, gen.ErrNoRoute) || errors.Is(err, gen.ErrProcessUnknown) {
		err = fmt.Errorf("%w: %v", dataplane.ErrNotDelivered, err)
	}
	return v, err
}

// callFor calls node's router with req and expects a reply of type R.
func callFor[R any](f *Forwarder, ctx context.Context, node string, req any) (R, error) {
	var zero R
	v, err := f.call(ctx, node, req)
	if err != nil {
		return zero, err
	}
	r, ok := v.(R)
	if !ok {
		return zero, fmt.Errorf("unexpected reply %T from %s", v, node)
	}
	return r, nil
}

// Propose forwards a command to node.
func (f *Forwarder) Propose(ctx context.Context, node string, req dataplane.ProposeRequest) (dataplane.ProposeReply, error) {
	return callFor[dataplane.ProposeReply](f, ctx, node, req)
}

// Read forwards a read to node.
func (f *Forwarder) Read(ctx context.Context, node string, req dataplane.ReadRequest) (dataplane.ReadReply, error) {
	return callFor[dataplane.ReadReply](f, ctx, node, req)
}

// ReadHeaders forwards a read of whole session headers to node.
func (f *Forwarder) ReadHeaders(ctx context.Context, node string, req dataplane.HeaderReadRequest) (dataplane.HeaderReadReply, error) {
	return callFor[dataplane.HeaderReadReply](f, ctx, node, req)
}
