package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sort"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"starcite/fsm"
)

// View is the observer's published view of the write nodes: which are
// ready to serve (observer-ready and consensus-ready) and which an
// operator drained. Immutable once published.
type View struct {
	Ready    map[string]bool
	Draining map[string]bool
	// Headers: the node was last seen running a build that applies
	// session header commands (docs/decisions.md#d48).
	Headers map[string]bool
}

// Forwarder carries requests to the router of another node (package
// actors, over Ergo distribution). It returns ErrNotDelivered when the
// request certainly never reached the node; any other error leaves the
// outcome of a proposal open.
type Forwarder interface {
	Propose(ctx context.Context, node string, req ProposeRequest) (ProposeReply, error)
	Read(ctx context.Context, node string, req ReadRequest) (ReadReply, error)
	ReadHeaders(ctx context.Context, node string, req HeaderReadRequest) (HeaderReadReply, error)
}

// The wire types below cross nodes, so they hold no pointers.

// ProposeRequest asks a replica's node to commit a command.
type ProposeRequest struct {
	Group int
	Cmd   []byte
}

// ProposeReply is the state machine's result, or an error code.
type ProposeReply struct {
	Value uint64
	Data  []byte
	Err   string
}

// The kinds of reads a node serves for another.
const (
	ReadSession uint8 = iota + 1
	ReadEvents
	ReadList
)

// ReadRequest asks a replica's node for a read.
type ReadRequest struct {
	Kind   uint8
	Groups []int // ReadList reads every listed group, the others one
	ID     string
	After  uint64
	Limit  int
	Linear bool
	List   ListRequest
}

// ListRequest is fsm.ListQuery on the wire.
type ListRequest struct {
	TenantID string
	OnlyID   string
	After    string
	Filters  map[string]string
	Limit    int
}

// ReadReply answers a ReadRequest.
type ReadReply struct {
	Err      string
	Found    bool
	Session  SessionWire
	Events   fsm.EventsResult
	Sessions []SessionWire
}

// SessionWire is fsm.SessionInfo on the wire.
type SessionWire struct {
	ID, TenantID                          string
	HasTitle                              bool
	Title                                 string
	CreatorTenant, CreatorID, CreatorType string
	Metadata                              []byte
	CreatedAt                             int64
	LastSeq, ArchivedSeq                  uint64
}

func toWire(s fsm.SessionInfo) SessionWire {
	w := SessionWire{ID: s.ID, TenantID: s.TenantID, CreatorTenant: s.Creator.TenantID, CreatorID: s.Creator.ID,
		CreatorType: s.Creator.Type, Metadata: s.Metadata, CreatedAt: s.CreatedAt, LastSeq: s.LastSeq, ArchivedSeq: s.ArchivedSeq}
	if s.Title != nil {
		w.HasTitle, w.Title = true, *s.Title
	}
	return w
}

// fromWire rebuilds what SessionWire carries: the header fields a session
// is created with. The type stays as it is so that nodes of the previous
// version still understand it (docs/decisions.md#d40).
func fromWire(w SessionWire) fsm.SessionInfo {
	s := fsm.SessionInfo{Header: fsm.Header{ID: w.ID, TenantID: w.TenantID, Creator: fsm.Principal{TenantID: w.CreatorTenant,
		ID: w.CreatorID, Type: w.CreatorType}, Metadata: w.Metadata, CreatedAt: w.CreatedAt}, LastSeq: w.LastSeq,
		ArchivedSeq: w.ArchivedSeq}
	if w.HasTitle {
		t := w.Title
		s.Title = &t
	}
	return s
}

// HeaderReadRequest is a ReadSession or ReadList whose reply carries whole
// session headers. It was added beside ReadRequest, whose reply has no
// room for the header fields that can change (docs/decisions.md#d40): a
// node of the previous version does not understand it, and the caller
// moves on to the next replica.
type HeaderReadRequest struct {
	Read     ReadRequest
	Archived uint8 // ReadList: fsm.ArchivedFilter
}

// HeaderReadReply answers a HeaderReadRequest.
type HeaderReadReply struct {
	Err      string
	Found    bool
	Sessions []SessionRecord // ReadSession: the session when found
}

// SessionRecord is fsm.SessionInfo on the wire: the header in the state
// machine's own encoding (fsm.AppendHeader, which has a format byte of
// its own, so later header fields need no new wire type) and the counters.
type SessionRecord struct {
	Header               []byte
	LastSeq, ArchivedSeq uint64
}

// readResult is the answer to a read, whichever wire type carried it.
type readResult struct {
	found    bool
	sessions []fsm.SessionInfo // ReadSession: the session when found; ReadList: the matches
	events   fsm.EventsResult
}

func (r *readResult) readReply() ReadReply {
	out := ReadReply{Found: r.found, Events: r.events}
	for _, s := range r.sessions {
		out.Sessions = append(out.Sessions, toWire(s))
	}
	if len(out.Sessions) > 0 {
		out.Session = out.Sessions[0]
	}
	return out
}

func resultFromReadReply(kind uint8, r ReadReply) readResult {
	out := readResult{found: r.Found, events: r.Events}
	switch {
	case kind == ReadSession && r.Found:
		out.sessions = []fsm.SessionInfo{fromWire(r.Session)}
	case kind == ReadList:
		for _, w := range r.Sessions {
			out.sessions = append(out.sessions, fromWire(w))
		}
	}
	return out
}

func (r *readResult) headerReply() HeaderReadReply {
	out := HeaderReadReply{Found: r.found, Sessions: make([]SessionRecord, len(r.sessions))}
	for i := range r.sessions {
		s := &r.sessions[i]
		out.Sessions[i] = SessionRecord{Header: fsm.AppendHeader(nil, &s.Header), LastSeq: s.LastSeq, ArchivedSeq: s.ArchivedSeq}
	}
	return out
}

func resultFromHeaderReply(r HeaderReadReply) (readResult, error) {
	out := readResult{found: r.Found, sessions: make([]fsm.SessionInfo, len(r.Sessions))}
	for i, rec := range r.Sessions {
		h, err := fsm.ParseHeader(rec.Header)
		if err != nil {
			return readResult{}, fmt.Errorf("%w: %v", ErrInternal, err)
		}
		out.sessions[i] = fsm.SessionInfo{Header: h, LastSeq: rec.LastSeq, ArchivedSeq: rec.ArchivedSeq}
	}
	return out, nil
}

// Error codes on the wire, and back.
var wireErrors = map[string]error{
	"unavailable": ErrUnavailable,
	"timeout":     ErrTimeout,
	"internal":    ErrInternal,
}

func errCode(err error) string {
	for code, e := range wireErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return "internal"
}

func errFromCode(node, code string) error {
	e, ok := wireErrors[code]
	if !ok {
		e = ErrInternal
	}
	return fmt.Errorf("%w (from %s)", e, node)
}

// PublishView replaces the observer's view (observer actor only).
func (p *Plane) PublishView(v *View) { p.view.Store(v) }

// View returns the observer's current view (nil before it runs).
func (p *Plane) View() *View { return p.view.Load() }

// Draining reports whether an operator drained this node: it then routes
// its own traffic to the other replicas and closes its tails.
func (p *Plane) Draining() bool {
	v := p.View()
	return v != nil && v.Draining[p.raft.cfg.Self]
}

// SetForwarder connects the plane to the other nodes.
func (p *Plane) SetForwarder(f Forwarder) { p.forwarder.Store(&f) }

// servesLocally reports whether this node answers for group itself: it
// holds a replica and is not drained (a drained node stays a Raft member
// but routes its traffic to the other replicas).
func (p *Plane) servesLocally(group int) bool {
	if !p.raft.IsLocal(group) {
		return false
	}
	v := p.View()
	return v == nil || !v.Draining[p.raft.cfg.Self]
}

// Candidates are the other replicas of group to ask, best first.
func (p *Plane) Candidates(group int) []string { return p.candidates(group) }

// candidates orders the other replicas of group to forward to: the known
// leader first when it is ready, then the other ready replicas, then the
// fallbacks that are not ready but not drained either
// (docs/operations.md#liveness-and-readiness).
func (p *Plane) candidates(group int) []string {
	self := p.raft.cfg.Self
	v := p.View()
	leader, _ := p.Routes().Leader(group, p.cfg.LeaderTTL)
	var ready, fallback []string
	for _, n := range p.placement.Replicas(group) {
		switch {
		case n == self:
		case v == nil:
			fallback = append(fallback, n)
		case v.Ready[n] && n == leader:
			ready = append([]string{n}, ready...)
		case v.Ready[n]:
			ready = append(ready, n)
		case !v.Draining[n]:
			fallback = append(fallback, n)
		}
	}
	return append(ready, fallback...)
}

func (p *Plane) forwarderOrNil() Forwarder {
	if f := p.forwarder.Load(); f != nil {
		return *f
	}
	return nil
}

// ErrNotDelivered: a forwarded request never reached the other node.
var ErrNotDelivered = errors.New("request not delivered")

// proposeRemote forwards a command to the replicas of group in candidate
// order. A node that cannot be reached or cannot commit in time is
// skipped; every command is safe to retry elsewhere (package fsm). As in
// proposeLocal, the final error is ErrTimeout as soon as any attempt may
// have been committed.
func (p *Plane) proposeRemote(ctx context.Context, group int, cmd []byte) (sm.Result, error) {
	f := p.forwarderOrNil()
	if f == nil {
		return sm.Result{}, fmt.Errorf("%w: group %d has no local replica", ErrUnavailable, group)
	}
	err := fmt.Errorf("%w: no ready replica of group %d", ErrUnavailable, group)
	ambiguous := false
	for _, node := range p.candidates(group) {
		reply, ferr := f.Propose(ctx, node, ProposeRequest{Group: group, Cmd: cmd})
		switch {
		case ferr != nil:
			ambiguous = ambiguous || !errors.Is(ferr, ErrNotDelivered)
			err = fmt.Errorf("%w: forward to %s: %v", ErrUnavailable, node, ferr)
		case reply.Err != "":
			ambiguous = ambiguous || reply.Err == "timeout"
			err = errFromCode(node, reply.Err)
		default:
			return sm.Result{Value: reply.Value, Data: reply.Data}, nil
		}
		if ctx.Err() != nil {
			return sm.Result{}, ErrTimeout
		}
	}
	if ambiguous {
		return sm.Result{}, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return sm.Result{}, err
}

// ServePropose commits a command forwarded by another node, on the local
// replica only (a forwarded request is never forwarded again). Only the
// commands a client request causes are accepted (fsm.Forwardable); any
// other gets ErrNotForwardable and changes nothing.
func (p *Plane) ServePropose(ctx context.Context, req ProposeRequest) (ProposeReply, error) {
	if !fsm.Forwardable(req.Cmd) {
		return ProposeReply{Err: errCode(ErrInternal)}, fmt.Errorf("%w: %s", ErrNotForwardable, fsm.CommandName(req.Cmd))
	}
	if req.Group < 0 || req.Group >= p.placement.Groups() || !p.raft.IsLocal(req.Group) {
		return ProposeReply{Err: "unavailable"}, nil
	}
	res, err := p.proposeLocal(ctx, req.Group, req.Cmd)
	if err != nil {
		return ProposeReply{Err: errCode(err)}, nil
	}
	return ProposeReply{Value: res.Value, Data: res.Data}, nil
}

// readGroups runs a single-group read on this node when it serves the
// group, else on the first candidate replica that answers. With headers,
// a remote read travels as a HeaderReadRequest, so sessions come back with
// their whole header.
func (p *Plane) readGroups(ctx context.Context, req ReadRequest, headers bool) (readResult, error) {
	group := req.Groups[0]
	if p.servesLocally(group) {
		r, err := p.serveRead(ctx, req, fsm.AnyArchived)
		if err != nil && req.Linear && (errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)) {
			// No quorum to confirm the read: what this replica committed
			// is still true, only possibly behind. Serve it, unless it does
			// not know the session: a replica that is behind (restarting,
			// or cut off when the session was created elsewhere) cannot
			// tell "not found" from "not yet", and a 404 is definitive.
			req.Linear = false
			stale, serr := p.serveRead(ctx, req, fsm.AnyArchived)
			if serr == nil && !stale.found {
				return readResult{}, err
			}
			return stale, serr
		}
		return r, err
	}
	f := p.forwarderOrNil()
	if f == nil {
		return readResult{}, fmt.Errorf("%w: group %d has no local replica", ErrUnavailable, group)
	}
	err := fmt.Errorf("%w: no ready replica of group %d", ErrUnavailable, group)
	for _, node := range p.candidates(group) {
		r, ferr := p.forwardRead(ctx, f, node, req, headers, fsm.AnyArchived)
		if ferr == nil {
			return r, nil
		}
		err = ferr
		if ctx.Err() != nil {
			return readResult{}, ErrTimeout
		}
	}
	return readResult{}, err
}

// forwardRead runs a read on another node's replicas.
func (p *Plane) forwardRead(ctx context.Context, f Forwarder, node string, req ReadRequest, headers bool,
	archived fsm.ArchivedFilter) (readResult, error) {
	if headers {
		reply, err := f.ReadHeaders(ctx, node, HeaderReadRequest{Read: req, Archived: uint8(archived)})
		switch {
		case err != nil:
			return readResult{}, fmt.Errorf("%w: read from %s: %v", ErrUnavailable, node, err)
		case reply.Err != "":
			return readResult{}, errFromCode(node, reply.Err)
		}
		return resultFromHeaderReply(reply)
	}
	reply, err := f.Read(ctx, node, req)
	switch {
	case err != nil:
		return readResult{}, fmt.Errorf("%w: read from %s: %v", ErrUnavailable, node, err)
	case reply.Err != "":
		return readResult{}, errFromCode(node, reply.Err)
	}
	return resultFromReadReply(req.Kind, reply), nil
}

// ServeRead answers a read forwarded by another node from the local
// replicas only. A list through this type (a node of the previous
// version, which knows no archived flag) includes archived sessions.
func (p *Plane) ServeRead(ctx context.Context, req ReadRequest) ReadReply {
	if !p.holdsAll(req.Groups) {
		return ReadReply{Err: "unavailable"}
	}
	r, err := p.serveRead(ctx, req, fsm.AnyArchived)
	if err != nil {
		return ReadReply{Err: errCode(err)}
	}
	return r.readReply()
}

// ServeHeaderRead answers a HeaderReadRequest from the local replicas only.
func (p *Plane) ServeHeaderRead(ctx context.Context, req HeaderReadRequest) HeaderReadReply {
	if !p.holdsAll(req.Read.Groups) {
		return HeaderReadReply{Err: "unavailable"}
	}
	r, err := p.serveRead(ctx, req.Read, fsm.ArchivedFilter(req.Archived))
	if err != nil {
		return HeaderReadReply{Err: errCode(err)}
	}
	return r.headerReply()
}

// holdsAll reports whether this node holds a replica of every group.
func (p *Plane) holdsAll(groups []int) bool {
	for _, g := range groups {
		if g < 0 || g >= p.placement.Groups() || !p.raft.IsLocal(g) {
			return false
		}
	}
	return true
}

// serveRead runs a read on the local replicas; archived filters a list.
func (p *Plane) serveRead(ctx context.Context, req ReadRequest, archived fsm.ArchivedFilter) (readResult, error) {
	if len(req.Groups) == 0 {
		return readResult{}, fmt.Errorf("%w: read without a group", ErrInternal)
	}
	switch req.Kind {
	case ReadSession:
		v, err := p.read(ctx, req.Groups[0], req.Linear, func(st *fsm.State) any {
			if s, ok := st.Session(req.ID); ok {
				return readResult{found: true, sessions: []fsm.SessionInfo{s}}
			}
			return readResult{}
		})
		if err != nil {
			return readResult{}, err
		}
		return v.(readResult), nil
	case ReadEvents:
		v, err := p.read(ctx, req.Groups[0], req.Linear, func(st *fsm.State) any {
			return st.Events(req.ID, req.After, req.Limit)
		})
		if err != nil {
			return readResult{}, err
		}
		ev := v.(fsm.EventsResult)
		return readResult{found: ev.Found, events: ev}, nil
	case ReadList:
		q := fsm.ListQuery{Archived: archived, TenantID: req.List.TenantID, OnlyID: req.List.OnlyID,
			After: req.List.After, Filters: req.List.Filters, Limit: req.List.Limit}
		out := readResult{found: true}
		for _, g := range req.Groups {
			v, err := p.read(ctx, g, false, func(st *fsm.State) any { return st.List(q) })
			if err != nil {
				return readResult{}, err
			}
			out.sessions = append(out.sessions, v.([]fsm.SessionInfo)...)
		}
		return out, nil
	}
	return readResult{}, fmt.Errorf("%w: unknown read kind %d", ErrInternal, req.Kind)
}

// listGroups lists q over every group: local ones here, the others
// batched per node, retrying a failed node's groups on the next replica.
func (p *Plane) listGroups(ctx context.Context, q fsm.ListQuery, groups []int) ([]fsm.SessionInfo, error) {
	lr := ListRequest{TenantID: q.TenantID, OnlyID: q.OnlyID, After: q.After, Filters: q.Filters, Limit: q.Limit}
	var all []fsm.SessionInfo
	var local []int
	remote := map[int][]string{} // group → candidates left
	for _, g := range groups {
		if p.servesLocally(g) {
			local = append(local, g)
		} else {
			remote[g] = p.candidates(g)
		}
	}
	if len(local) > 0 {
		r, err := p.serveRead(ctx, ReadRequest{Kind: ReadList, Groups: local, List: lr}, q.Archived)
		if err != nil {
			return nil, err
		}
		all = append(all, r.sessions...)
	}
	f := p.forwarderOrNil()
	for len(remote) > 0 {
		byNode := map[string][]int{}
		for g, cands := range remote {
			if len(cands) == 0 || f == nil {
				return nil, fmt.Errorf("%w: no replica of group %d answers", ErrUnavailable, g)
			}
			byNode[cands[0]] = append(byNode[cands[0]], g)
		}
		for node, gs := range byNode {
			sort.Ints(gs)
			r, err := p.forwardRead(ctx, f, node, ReadRequest{Kind: ReadList, Groups: gs, List: lr}, true, q.Archived)
			if err == nil {
				all = append(all, r.sessions...)
				for _, g := range gs {
					delete(remote, g)
				}
				continue
			}
			for _, g := range gs {
				remote[g] = remote[g][1:]
			}
		}
	}
	return all, nil
}

// Reachable reports whether every group has at least one ready replica:
// the readiness of a node that holds no replica itself (a router node).
func (p *Plane) Reachable() bool {
	v := p.View()
	if v == nil {
		return false
	}
	for g := 0; g < p.placement.Groups(); g++ {
		ok := false
		for _, n := range p.placement.Replicas(g) {
			ok = ok || v.Ready[n]
		}
		if !ok {
			return false
		}
	}
	return true
}

// quietEntries is how much a group's log may grow between two balancing
// rounds for its leader still to be moved: elections' own entries (the
// bootstrap membership, a no-op per term) and an archive ack or two stay
// below it, so a fresh cluster balances in its second round; a group
// taking appends goes past it.
const quietEntries = 8

// LeadershipMoves returns groups this node leads whose preferred leader
// (the first replica in rendezvous order, balanced across nodes by
// construction) is another node that is ready: handing leadership back
// spreads the leaders' work evenly after elections skewed it. At most max
// moves, so a node never churns many groups at once.
//
// Only quiet groups move. seen holds each local group's last log index
// as of the caller's previous round (it is updated); a group whose log
// grew by more than quietEntries since then keeps its leader for now.
// Dragonboat's transfer target will not campaign while it has committed
// entries left to apply, which under load is nearly always, and until a
// failed transfer times out (an election timeout) the leader drops every
// proposal: a busy group would stall for a second, and a proposal a
// follower forwarded in that window would never be answered.
func (p *Plane) LeadershipMoves(max int, seen map[int]uint64) map[int]string {
	v := p.View()
	if v == nil {
		return nil
	}
	self := p.raft.cfg.Self
	moves := map[int]string{}
	for _, g := range p.raft.LocalGroups() {
		last := p.raft.LastIndex(g)
		prev, known := seen[g]
		seen[g] = last
		if len(moves) == max || !known || last > prev+quietEntries {
			continue
		}
		preferred := p.placement.Replicas(g)[0]
		if leader, _, ok := p.raft.Leader(g); ok && leader == self && preferred != self && v.Ready[preferred] && !v.Draining[preferred] {
			moves[g] = preferred
		}
	}
	return moves
}
