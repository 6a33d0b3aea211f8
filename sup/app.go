package sup

import (
	"errors"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
	"github.com/valyala/fasthttp"

	"starcite/actors"
	"starcite/archive"
	"starcite/dataplane"
)

// Deps are the long-lived objects the actors work on, built by the app
// before the node starts.
type Deps struct {
	Self       string
	Discovery  actors.DiscoveryConfig
	Raft       *dataplane.Raft
	Plane      *dataplane.Plane
	Archive    archive.Adapter
	FlushEvery time.Duration
	HTTP       *fasthttp.Server
	HTTPAddr   string
	Ops        actors.OpsConfig
}

// App is the starcite Ergo application.
type App struct {
	deps Deps
	node gen.Node
}

// NewApp returns the application over deps.
func NewApp(d Deps) *App { return &App{deps: d} }

func (a *App) Load(node gen.Node, args ...any) (gen.ApplicationSpec, error) {
	a.node = node
	return gen.ApplicationSpec{
		Name:        "starcite",
		Description: "durable session streams",
		Mode:        gen.ApplicationModePermanent,
		Group: []gen.ApplicationMemberSpec{
			{Name: "control_plane", Factory: func() gen.ProcessBehavior { return &controlPlane{deps: a.deps} }},
			{Name: "data_plane", Factory: func() gen.ProcessBehavior { return &dataPlane{deps: a.deps} }},
			{Name: "edge", Factory: func() gen.ProcessBehavior { return &edgeSup{deps: a.deps} }},
		},
	}, nil
}

func (a *App) Start(mode gen.ApplicationMode) {}

// Terminate stops the node when the tree gave up: like an Erlang release,
// the process exits instead of running without its actors.
func (a *App) Terminate(reason error) {
	if reason == nil || errors.Is(reason, gen.TerminateReasonNormal) || errors.Is(reason, gen.TerminateReasonShutdown) {
		return
	}
	a.node.Log().Error("application starcite stopped: %s; stopping the node", reason)
	go a.node.Stop()
}

// controlPlane knows the cluster: discovery makes peers routable, the
// observer tracks their liveness, ops answers operators (after the
// observer, which it asks). one_for_one: they do not share state.
type controlPlane struct {
	act.Supervisor
	deps Deps
}

func (s *controlPlane) Init(args ...any) (act.SupervisorSpec, error) {
	return act.SupervisorSpec{
		Type: act.SupervisorTypeOneForOne,
		Children: []act.SupervisorChildSpec{
			{Name: actors.DiscoveryName, Factory: actors.NewDiscovery(s.deps.Discovery)},
			{Name: actors.ObserverName, Factory: actors.NewObserver(s.deps.Plane, s.deps.Self)},
			{Name: actors.OpsName, Factory: actors.NewOps(s.deps.Plane, s.deps.Ops)},
		},
		Restart: act.SupervisorRestart{Strategy: act.SupervisorStrategyPermanent, Intensity: 5, Period: 10},
	}, nil
}

type dataPlane struct {
	act.Supervisor
	deps Deps
}

func (s *dataPlane) Init(args ...any) (act.SupervisorSpec, error) {
	return act.SupervisorSpec{
		Type: act.SupervisorTypeRestForOne,
		Children: []act.SupervisorChildSpec{
			{Name: actors.RaftName, Factory: actors.NewRaft(s.deps.Plane)},
			{Name: actors.RouterName, Factory: actors.NewRouter(s.deps.Plane, s.deps.Self)},
			{Name: actors.FanoutName, Factory: actors.NewFanout(s.deps.Plane, s.deps.Self)},
			{Name: actors.ArchiverName, Factory: actors.NewArchiver(s.deps.Plane, s.deps.Archive, s.deps.FlushEvery)},
		},
		Restart: act.SupervisorRestart{Strategy: act.SupervisorStrategyPermanent, Intensity: 5, Period: 10},
	}, nil
}

type edgeSup struct {
	act.Supervisor
	deps Deps
}

func (s *edgeSup) Init(args ...any) (act.SupervisorSpec, error) {
	return act.SupervisorSpec{
		Type: act.SupervisorTypeOneForOne,
		// tails and sockets before http: on shutdown children stop in
		// reverse order, so the listener closes first and then the
		// sockets say goodbye.
		Children: []act.SupervisorChildSpec{
			{Name: actors.TailsName, Factory: func() gen.ProcessBehavior { return &tailSup{plane: s.deps.Plane} }},
			{Name: actors.SocketsName, Factory: func() gen.ProcessBehavior { return &socketSup{plane: s.deps.Plane} }},
			{Name: actors.HTTPName, Factory: actors.NewHTTP(s.deps.HTTP, s.deps.HTTPAddr)},
		},
		Restart: act.SupervisorRestart{Strategy: act.SupervisorStrategyPermanent, Intensity: 5, Period: 10},
	}, nil
}

// tailSup starts one TailSocket per WebSocket. Temporary children: a
// socket is never restarted (its client reconnects) and one bad socket
// can never exhaust a restart intensity that would take every other
// socket down with the supervisor (docs/decisions.md#d39).
type tailSup struct {
	act.Supervisor
	plane *dataplane.Plane
}

func (s *tailSup) Init(args ...any) (act.SupervisorSpec, error) {
	return act.SupervisorSpec{
		Type:     act.SupervisorTypeSimpleOneForOne,
		Children: []act.SupervisorChildSpec{{Name: "tailsocket", Factory: actors.NewTailSocket(s.plane)}},
		Restart:  act.SupervisorRestart{Strategy: act.SupervisorStrategyTemporary},
	}, nil
}

// HandleCall starts a TailSocket for actors.StartTail; the new socket
// answers the caller with its PID itself.
func (s *tailSup) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	if st, ok := request.(actors.StartTail); ok {
		if err := s.StartChild("tailsocket", st, from, ref); err != nil {
			return err, nil
		}
		return nil, nil
	}
	return nil, nil
}

// socketSup starts one ChannelSocket per /v1/socket connection; each
// socket starts its channels (TailSocket, LifecycleChannel) as its own
// linked children. Temporary, for the reasons of tailSup.
type socketSup struct {
	act.Supervisor
	plane *dataplane.Plane
}

func (s *socketSup) Init(args ...any) (act.SupervisorSpec, error) {
	return act.SupervisorSpec{
		Type:     act.SupervisorTypeSimpleOneForOne,
		Children: []act.SupervisorChildSpec{{Name: "channelsocket", Factory: actors.NewChannelSocket(s.plane)}},
		Restart:  act.SupervisorRestart{Strategy: act.SupervisorStrategyTemporary},
	}, nil
}

// HandleCall starts a ChannelSocket for actors.StartSocket; the new socket
// answers the caller with its PID itself.
func (s *socketSup) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	if st, ok := request.(actors.StartSocket); ok {
		if err := s.StartChild("channelsocket", st, from, ref); err != nil {
			return err, nil
		}
	}
	return nil, nil
}
