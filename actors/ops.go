package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/dataplane"
	"starcite/fsm"
)

// OpsName is the registered name of the ops actor, which `starcite ops`
// and `starcite shell` call from their hidden node.
const OpsName gen.Atom = "ops"

// Ops timings (docs/operations.md#starcite-ops,
// docs/operations.md#timings).
const (
	opsPollEvery   = 200 * time.Millisecond // wait-ready / wait-drained poll
	opsWaitDefault = 30 * time.Second
	drainWatch     = 200 * time.Millisecond // how soon a drain closes this node's tails
	handoffRetry   = time.Second            // between leadership transfers of one group
)

// OpsPlane is what the ops actor reads and does: package dataplane's
// *Plane in a node, a fake in a test.
type OpsPlane interface {
	Self() string
	Placement() *dataplane.Placement
	View() *dataplane.View
	Routes() *dataplane.Routes
	Draining() bool
	LocalGroups() []int
	IsLeader(group int) bool
	TransferLeader(group int, node string) error
	Health(writeNode bool) (notReady string, rd dataplane.Readiness)
	LocalReady(writeNode bool, maxAge time.Duration) bool
	GroupStatus(group int) (dataplane.GroupStatus, error)
	GroupSessions(group, limit int) ([]fsm.SessionStat, fsm.GroupTotals, error)
	HotBytes() int64
	HotEvents() int64
}

// OpsConfig is what the ops actor reports beyond the data plane.
type OpsConfig struct {
	WriteNode bool   // this node is in STARCITE_WRITE_NODE_IDS
	DataDir   string // STARCITE_RAFT_DATA_DIR
	RaftDir   string // Dragonboat's NodeHost directory: Raft logs and snapshots
	Version   string
}

// OpsRequest is one command of `starcite ops`
// (docs/operations.md#starcite-ops) or of `starcite shell`, with its
// arguments as typed.
type OpsRequest struct {
	Command string
	Args    []string
}

// OpsReply answers an OpsRequest. The ops actor renders both forms, so a
// CLI of another version prints what this node means.
type OpsReply struct {
	Err     string // the one-line message of a failed command; "" on success
	Timeout bool   // a wait command ran out of time (Err says so)
	Text    string // for people: the documented line, or tables
	JSON    []byte // for programs (nil for the shell's inspection commands)
}

// drainTails tells a raw-route TailSocket or a ChannelSocket that this
// node was drained: it closes with 1012 node_draining so that its client
// reconnects elsewhere (a tail channel leaves that to its socket).
type drainTails struct{}

type opsTick struct{}

// Ops answers the operator commands. Every request runs in a short-lived
// worker that replies to the caller itself, so a wait, a slow inspection
// or a peer that does not answer never holds up this mailbox.
//
// Between requests it watches this node's drain mark (set by any node's
// observer): when the node becomes drained it closes the node's tails
// and, while drained, hands the leadership of its groups to ready
// replicas, so stopping the node costs no election.
type Ops struct {
	act.Actor
	plane    OpsPlane
	cfg      OpsConfig
	draining bool
	handoff  map[int]time.Time // group → last leadership transfer asked
	closed   int               // tails closed by drains
	requests int
}

// NewOps returns the factory of the ops actor.
func NewOps(p OpsPlane, cfg OpsConfig) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Ops{plane: p, cfg: cfg} }
}

func (o *Ops) Init(args ...any) error {
	o.handoff = map[int]time.Time{}
	_, err := o.SendAfter(o.PID(), opsTick{}, drainWatch)
	return err
}

func (o *Ops) HandleMessage(from gen.PID, message any) error {
	if _, ok := message.(opsTick); ok {
		o.SendAfter(o.PID(), opsTick{}, drainWatch)
		o.watchDrain()
	}
	return nil
}

func (o *Ops) HandleCall(from gen.PID, ref gen.Ref, request any) (any, error) {
	req, ok := request.(OpsRequest)
	if !ok {
		return OpsReply{Err: fmt.Sprintf("unsupported request %T", request)}, nil
	}
	o.requests++
	job := opsJob{from: from, ref: ref, req: req}
	factory := func() gen.ProcessBehavior { return &opsWorker{plane: o.plane, cfg: o.cfg} }
	if _, err := o.Spawn(factory, gen.ProcessOptions{LinkParent: true}, job); err != nil {
		return OpsReply{Err: "ops worker: " + err.Error()}, nil
	}
	return nil, nil // the worker answers
}

func (o *Ops) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{
		"draining":     strconv.FormatBool(o.draining),
		"tails_closed": strconv.Itoa(o.closed),
		"handoffs":     strconv.Itoa(len(o.handoff)),
		"requests":     strconv.Itoa(o.requests),
	}
}

// watchDrain acts on this node's drain mark, wherever it was set.
func (o *Ops) watchDrain() {
	d := o.plane.Draining()
	if d && !o.draining {
		n := o.closeTails()
		o.closed += n
		o.Log().Info("node drained: closing %d tail sockets (1012 node_draining), handing off leaderships", n)
	}
	o.draining = d
	if !d {
		clear(o.handoff)
		return
	}
	o.handOff()
}

// closeTails asks every tail and channel socket of this node to close.
// Sockets that start later close themselves (they check the mark on start).
func (o *Ops) closeTails() int {
	n := 0
	eachProcess(o.Node(), func(p gen.ProcessShortInfo) {
		if isSocket(p) && o.Send(p.PID, drainTails{}) == nil {
			n++
		}
	})
	return n
}

// handOff asks every local replica that leads to transfer leadership to a
// ready replica.
func (o *Ops) handOff() {
	handOffLeaders(o.plane, o.handoff, func(g int, err error) {
		o.Log().Warning("hand off leadership of group %d: %s", g, err)
	})
}

// handOffLeaders asks every local replica that leads, and that a ready
// replica could take over from, to transfer its leadership there. A group
// is asked again after handoffRetry (asked records when) while this node
// still leads it: a transfer can be refused (the target lagging) or undone
// by an election. It returns how many groups are still to hand off.
func handOffLeaders(p OpsPlane, asked map[int]time.Time, failed func(group int, err error)) int {
	v := p.View()
	self := p.Self()
	now := time.Now()
	pending := 0
	for _, g := range p.LocalGroups() {
		if !p.IsLeader(g) {
			continue
		}
		targets := readyPeers(v, p.Placement().Replicas(g), self)
		if len(targets) == 0 {
			continue // nobody to hand it to: stopping this node will cost an election
		}
		pending++
		if now.Sub(asked[g]) < handoffRetry {
			continue
		}
		asked[g] = now
		if err := p.TransferLeader(g, targets[g%len(targets)]); err != nil {
			failed(g, err)
		}
	}
	return pending
}

// leadership counts the groups this node leads and, of those, the ones a
// ready replica could take over (what a drain or a stop hands off).
func leadership(p OpsPlane) (led, transferable int) {
	v := p.View()
	for _, g := range p.LocalGroups() {
		if !p.IsLeader(g) {
			continue
		}
		led++
		if len(readyPeers(v, p.Placement().Replicas(g), p.Self())) > 0 {
			transferable++
		}
	}
	return led, transferable
}

// HandOffLeaderships hands this node's leaderships to ready replicas and
// returns once none is left to hand off, or when ctx ends. A member of a
// cluster runs it when it stops, after it stopped serving clients and
// before its replicas close (STARCITE_SHUTDOWN_DRAIN_TIMEOUT_MS), so that
// its groups keep a leader without an election.
func HandOffLeaderships(ctx context.Context, p OpsPlane, log *slog.Logger) {
	asked := map[int]time.Time{}
	for {
		pending := handOffLeaders(p, asked, func(g int, err error) {
			log.Warn("hand off leadership before stopping", "group", g, "err", err)
		})
		if pending == 0 {
			log.Info("leaderships handed off before stopping", "groups_asked", len(asked), "still_leading", 0)
			return
		}
		select {
		case <-ctx.Done():
			log.Warn("stopping while still leading groups a ready replica could lead", "groups_asked", len(asked),
				"still_leading", pending)
			return
		case <-time.After(opsPollEvery):
		}
	}
}

// readyPeers are the replicas other than self that the observer lists as
// ready.
func readyPeers(v *dataplane.View, replicas []string, self string) []string {
	var out []string
	for _, n := range replicas {
		if n != self && v != nil && v.Ready[n] {
			out = append(out, n)
		}
	}
	return out
}

var (
	tailBehavior   = fmt.Sprintf("%T", TailSocket{})
	socketBehavior = fmt.Sprintf("%T", ChannelSocket{})
)

// isSocket reports whether p serves a client connection: a TailSocket
// (of a raw tail, or a channel that ends with its socket) or a
// ChannelSocket.
func isSocket(p gen.ProcessShortInfo) bool {
	return p.Behavior == tailBehavior || p.Behavior == socketBehavior
}

// eachProcess calls f for every process of the node, in PID order.
func eachProcess(node gen.Node, f func(gen.ProcessShortInfo)) error {
	const page = 1000
	start := 1000 // Ergo numbers user processes from 1001
	for {
		ps, err := node.ProcessListShortInfo(start, page)
		if err != nil {
			return err
		}
		for _, p := range ps {
			f(p)
		}
		if len(ps) < page {
			return nil
		}
		start = int(ps[len(ps)-1].PID.ID) + 1
	}
}

// ParseTimeout reads the optional [timeout_ms] of wait-ready and
// wait-drained (docs/operations.md#starcite-ops).
func ParseTimeout(args []string) (time.Duration, error) {
	if len(args) == 0 {
		return opsWaitDefault, nil
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("invalid timeout %q (expected positive integer ms)", args[0])
	}
	return time.Duration(n) * time.Millisecond, nil
}

// TimeoutMessage is the error of a wait that ran out of time.
func TimeoutMessage(what string, timeout time.Duration) string {
	return fmt.Sprintf("timeout waiting for %s after %dms", what, timeout.Milliseconds())
}

// opsJob is one request handed to a worker.
type opsJob struct {
	from gen.PID
	ref  gen.Ref
	req  OpsRequest
}

type (
	opsRun  struct{}
	opsPoll struct{}
)

// opsWait is a wait command in progress.
type opsWait struct {
	what     string // local_ready or local_drained
	timeout  time.Duration
	deadline time.Time
	check    func() bool
}

// opsWorker runs one request and answers it. Waits poll every 200 ms
// with timer messages; the worker exits with its answer.
type opsWorker struct {
	act.Actor
	plane OpsPlane
	cfg   OpsConfig
	job   opsJob
	wait  *opsWait
}

func (w *opsWorker) Init(args ...any) error {
	w.job = args[0].(opsJob)
	// Spawn runs Init in the ops actor: the work starts after it.
	return w.Send(w.PID(), opsRun{})
}

func (w *opsWorker) HandleMessage(from gen.PID, message any) error {
	switch message.(type) {
	case opsRun:
		reply, wait := w.exec(w.job.req)
		if wait != nil {
			w.wait = wait
			if w.job.from.Node != w.Node().Name() {
				// A CLI that goes away (Ctrl-C) ends its wait here too.
				w.MonitorNode(w.job.from.Node)
			}
			return w.poll()
		}
		return w.answer(reply)
	case opsPoll:
		return w.poll()
	case gen.MessageDownNode:
		return gen.TerminateReasonNormal
	}
	return nil
}

func (w *opsWorker) poll() error {
	wt := w.wait
	if wt.check() {
		text := wt.what + "=true"
		return w.answer(OpsReply{Text: text, JSON: mustJSON(map[string]bool{wt.what: true})})
	}
	if !time.Now().Before(wt.deadline) {
		return w.answer(OpsReply{Err: TimeoutMessage(wt.what, wt.timeout), Timeout: true})
	}
	w.SendAfter(w.PID(), opsPoll{}, min(opsPollEvery, time.Until(wt.deadline)))
	return nil
}

func (w *opsWorker) answer(r OpsReply) error {
	if err := w.SendResponse(w.job.from, w.job.ref, r); err != nil {
		w.Log().Warning("ops %s: answering %s: %s", w.job.req.Command, w.job.from, err)
	}
	return gen.TerminateReasonNormal
}

func (w *opsWorker) HandleInspect(from gen.PID, item ...string) map[string]string {
	out := map[string]string{"command": strings.TrimSpace(w.job.req.Command + " " + strings.Join(w.job.req.Args, " ")),
		"caller": w.job.from.String()}
	if w.wait != nil {
		out["waiting_for"] = w.wait.what
		out["deadline"] = w.wait.deadline.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func failf(format string, args ...any) OpsReply {
	return OpsReply{Err: fmt.Sprintf(format, args...)}
}

// exec runs a command: at once, or as a wait to poll.
func (w *opsWorker) exec(req OpsRequest) (OpsReply, *opsWait) {
	args := req.Args
	switch req.Command {
	case "status":
		return w.status(), nil
	case "ready-nodes":
		st, err := w.observer()
		if err != nil {
			return failf("observer unavailable: %s", err), nil
		}
		return OpsReply{Text: "ready_nodes=" + strings.Join(st.ReadyNodes, ","),
			JSON: mustJSON(map[string][]string{"ready_nodes": nonNil(st.ReadyNodes)})}, nil
	case "drain", "undrain":
		return w.drain(req.Command == "drain", args), nil
	case "node-status", "drain-status":
		return w.nodeReport(req.Command, args), nil
	case "group-replicas":
		arg := ""
		if len(args) > 0 {
			arg = args[0]
		}
		g, err := strconv.Atoi(arg)
		if err != nil || g < 0 || g >= w.plane.Placement().Groups() || len(args) > 1 {
			return failf("invalid group id %q (expected configured group range)", strings.Join(args, " ")), nil
		}
		reps := w.plane.Placement().Replicas(g)
		return OpsReply{Text: fmt.Sprintf("group_%d_replicas=%s", g, strings.Join(reps, ",")),
			JSON: mustJSON(map[string]any{"group": g, "replicas": reps})}, nil
	case "wait-ready", "wait-drained":
		timeout, err := ParseTimeout(args)
		if err != nil {
			return OpsReply{Err: err.Error()}, nil
		}
		wt := &opsWait{what: "local_ready", timeout: timeout, deadline: time.Now().Add(timeout),
			check: func() bool { return w.plane.LocalReady(w.cfg.WriteNode, 0) }}
		if req.Command == "wait-drained" {
			wt.what, wt.check = "local_drained", w.drained
		}
		return OpsReply{}, wt
	case "processes":
		return w.processes(args), nil
	case "tree":
		return w.tree(), nil
	case "inspect":
		if len(args) != 1 {
			return failf("usage: inspect <name|pid>"), nil
		}
		return w.inspect(args[0]), nil
	case "sessions":
		return w.sessions(args), nil
	}
	return failf("unknown command %q", req.Command), nil
}

// drain marks a write node draining (or ready) through the local
// observer, which tells every other node.
func (w *opsWorker) drain(draining bool, args []string) OpsReply {
	if len(args) > 1 {
		return failf("usage: drain|undrain [node]")
	}
	node := w.plane.Self()
	if len(args) == 1 {
		node = args[0]
	}
	v, err := w.CallWithTimeout(ObserverName, Drain{Node: node, Draining: draining}, 1)
	if err != nil {
		return failf("observer unavailable: %s", err)
	}
	if e, ok := v.(error); ok {
		return OpsReply{Err: e.Error()}
	}
	status := StateReady
	if draining {
		status = StateDraining
	}
	return OpsReply{Text: fmt.Sprintf("node %s marked %s", node, status),
		JSON: mustJSON(map[string]string{"node": node, "status": status})}
}

// nodeReport answers node-status and drain-status for this node or, with
// a node argument, asks that node's ops actor (its own view of its
// leaderships is the one that counts).
func (w *opsWorker) nodeReport(cmd string, args []string) OpsReply {
	if len(args) > 1 {
		return failf("usage: %s [node]", cmd)
	}
	self := w.plane.Self()
	if len(args) == 0 || args[0] == self {
		if cmd == "drain-status" {
			return w.drainStatus()
		}
		return w.nodeStatus()
	}
	node := args[0]
	st, err := w.observer()
	if err != nil {
		return failf("observer unavailable: %s", err)
	}
	if statusOf(st, node) == "" {
		known := make([]string, 0, len(st.Nodes))
		for _, n := range st.Nodes {
			known = append(known, n.Node)
		}
		return failf("unknown node %q (known nodes: %s)", node, strings.Join(known, ", "))
	}
	// Blocks this worker only.
	r, err := w.CallWithTimeout(gen.ProcessID{Name: OpsName, Node: gen.Atom(node)}, OpsRequest{Command: cmd}, 5)
	reply, ok := r.(OpsReply)
	switch {
	case err == nil && ok:
		return reply
	case cmd == "drain-status":
		if err == nil {
			err = fmt.Errorf("unexpected reply %T", r)
		}
		return failf("failed to fetch drain status for %s: %s", node, err)
	}
	// Unreachable: what this node's observer knows of it.
	status := statusOf(st, node)
	if status != StateSuspect && status != StateLost {
		status = "unknown"
	}
	return nodeStatusReply(node, status)
}

// nodeStatus is this node's node-status: ready, draining, drained (the
// conditions wait-drained waits for), or what the observer says.
func (w *opsWorker) nodeStatus() OpsReply {
	self := w.plane.Self()
	st, err := w.observer()
	if err != nil {
		return failf("observer unavailable: %s", err)
	}
	status := statusOf(st, self)
	switch {
	case status == "":
		status = "unknown" // not a write node: the observer tracks write nodes
	case status == StateDraining && w.drained():
		status = "drained"
	}
	return nodeStatusReply(self, status)
}

func nodeStatusReply(node, status string) OpsReply {
	return OpsReply{Text: "node_status=" + status, JSON: mustJSON(map[string]string{"node": node, "node_status": status})}
}

// drainStatus counts this node's leaderships and those still to hand off
// to a ready replica (while draining, the ops actor is transferring them).
func (w *opsWorker) drainStatus() OpsReply {
	led, pending := leadership(w.plane)
	return OpsReply{Text: fmt.Sprintf("drain_status=led_groups=%d,pending_transfers=%d", led, pending),
		JSON: mustJSON(map[string]any{"node": w.plane.Self(), "led_groups": led, "pending_transfers": pending})}
}

// observer asks the local observer for its table
// (docs/operations.md#liveness-and-readiness: internal status calls time
// out after 1 s).
func (w *opsWorker) observer() (ObserverStatus, error) {
	v, err := w.CallWithTimeout(ObserverName, StatusRequest{}, 1)
	if err != nil {
		return ObserverStatus{}, err
	}
	st, ok := v.(ObserverStatus)
	if !ok {
		return ObserverStatus{}, fmt.Errorf("unexpected reply %T", v)
	}
	return st, nil
}

// drained reports the wait-drained conditions of
// docs/operations.md#starcite-ops — a write node, marked draining here, not
// in the ready set, and seen draining by the observer of every visible node
// — and two more, so that stopping the node disturbs no client: its tails
// are gone, and it leads no group that another ready replica could lead (no
// election when it stops).
func (w *opsWorker) drained() bool {
	self := w.plane.Self()
	v := w.plane.View()
	if !w.cfg.WriteNode || v == nil || !v.Draining[self] || v.Ready[self] {
		return false
	}
	if _, transferable := leadership(w.plane); transferable > 0 {
		return false
	}
	tails := 0
	eachProcess(w.Node(), func(p gen.ProcessShortInfo) {
		if isSocket(p) {
			tails++
		}
	})
	if tails > 0 {
		return false
	}
	st, err := w.observer()
	if err != nil {
		return false
	}
	for _, n := range st.Nodes {
		if n.Node == self || !n.Visible {
			continue
		}
		// Blocks this worker only, at most a second per peer.
		r, err := w.CallWithTimeout(gen.ProcessID{Name: ObserverName, Node: gen.Atom(n.Node)}, StatusRequest{}, 1)
		peer, ok := r.(ObserverStatus)
		if err != nil || !ok || statusOf(peer, self) != StateDraining {
			return false
		}
	}
	return true
}

func statusOf(st ObserverStatus, node string) string {
	for _, n := range st.Nodes {
		if n.Node == node {
			return n.Status
		}
	}
	return ""
}

// resolvePID finds a local process by registered name, by PID as printed
// (<CRC.0.1005>) or by its number alone (1005).
func resolvePID(node gen.Node, arg string) (gen.PID, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(arg, "<"), ">")
	if i := strings.LastIndexByte(s, '.'); i >= 0 && strings.HasPrefix(arg, "<") {
		s = s[i+1:]
	}
	if id, err := strconv.ParseUint(s, 10, 32); err == nil {
		return gen.PID{Node: node.Name(), ID: id, Creation: node.Creation()}, nil
	}
	pid, err := node.ProcessPID(gen.Atom(arg))
	if errors.Is(err, gen.ErrProcessUnknown) {
		return pid, fmt.Errorf("no process %q on %s", arg, string(node.Name()))
	}
	return pid, err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
