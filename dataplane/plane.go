package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/maypok86/otter/v2"

	"starcite/archive"
	"starcite/fsm"
)

// PlaneConfig tunes the write and read paths.
type PlaneConfig struct {
	// ProposeTimeout bounds one consensus attempt
	// (docs/operations.md#failures-and-timeouts: 2 s). A timed-out proposal
	// is retried once; temporary errors (no leader yet) are retried with
	// backoff for at most this long.
	ProposeTimeout time.Duration
	// PendingMax is the hot-tier budget of this node
	// (docs/decisions.md#d18).
	PendingMax int64
	// SessionTTL is how long an unused session stays in the session cache.
	SessionTTL time.Duration
	// SessionTouchOnRead extends the TTL on every hit.
	SessionTouchOnRead bool
	// Archive holds what the hot tier evicted and the session catalogue
	// (wrapped in its read cache); nil runs without cold storage.
	Archive archive.Adapter
	// LeaderTTL is how long a leader hint is trusted
	// (docs/operations.md#routing).
	LeaderTTL time.Duration
}

// Plane is the write and read path of this node.
type Plane struct {
	raft      *Raft
	placement *Placement
	cfg       PlaneConfig
	// sessions caches the immutable part of session records (id, tenant,
	// creator, title, metadata, created_at) for authorization lookups.
	sessions     *otter.Cache[string, fsm.SessionInfo]
	routes       atomic.Pointer[Routes]
	view         atomic.Pointer[View]
	batch        *batcher
	forwarder    atomic.Pointer[Forwarder]
	catalogueSem chan struct{}
}

// NewPlane returns the data plane over the local replicas.
func NewPlane(r *Raft, cfg PlaneConfig) *Plane {
	expiry := otter.ExpiryWriting[string, fsm.SessionInfo](cfg.SessionTTL)
	if cfg.SessionTouchOnRead {
		expiry = otter.ExpiryAccessing[string, fsm.SessionInfo](cfg.SessionTTL)
	}
	p := &Plane{raft: r, placement: r.cfg.Placement, cfg: cfg, catalogueSem: make(chan struct{}, catalogueWrites),
		sessions: otter.Must(&otter.Options[string, fsm.SessionInfo]{
			MaximumWeight:    256 << 20,
			Weigher:          func(id string, s fsm.SessionInfo) uint32 { return uint32(min(sessionSize(&s), 1<<31)) },
			ExpiryCalculator: expiry,
		})}
	p.batch = newBatcher(p.placement.Groups(), p.flushAppends)
	return p
}

func sessionSize(s *fsm.SessionInfo) int {
	n := 96 + 2*len(s.ID) + len(s.TenantID) + len(s.Metadata) + len(s.Creator.ID) + len(s.Creator.TenantID)
	if s.Title != nil {
		n += len(*s.Title)
	}
	return n
}

// Raft returns the local replicas.
func (p *Plane) Raft() *Raft { return p.raft }

// Placement returns the session → group → replicas map.
func (p *Plane) Placement() *Placement { return p.placement }

// Self is this node's name.
func (p *Plane) Self() string { return p.raft.cfg.Self }

// IsLeader reports whether this node's replica leads group.
func (p *Plane) IsLeader(group int) bool {
	leader, _, ok := p.raft.Leader(group)
	return ok && leader == p.raft.cfg.Self
}

// LocalGroups are the groups with a replica on this node.
func (p *Plane) LocalGroups() []int { return p.raft.LocalGroups() }

// IsLocal reports whether this node holds a replica of group.
func (p *Plane) IsLocal(group int) bool { return p.raft.IsLocal(group) }

// HotBytes is the size of the unarchived events of the local replicas.
func (p *Plane) HotBytes() int64 { return p.raft.HotBytes() }

// HotEvents is the number of unarchived events of the local replicas.
func (p *Plane) HotEvents() int64 { return p.raft.HotEvents() }

// TransferLeader asks the local replica of group to hand its leadership
// to node (see Raft.TransferLeader).
func (p *Plane) TransferLeader(group int, node string) error {
	return p.raft.TransferLeader(group, node)
}

// Create commits a new session. ErrSessionExists when the id is taken.
func (p *Plane) Create(ctx context.Context, c *fsm.CreateSession) error {
	group := p.placement.Group(c.Header.ID)
	res, err := p.propose(ctx, group, fsm.EncodeCreateSession(c))
	if err != nil {
		return fmt.Errorf("create session %q: %w", c.Header.ID, err)
	}
	switch fsm.Status(res.Value) {
	case fsm.StatusOK:
		s := fsm.SessionInfo{Header: c.Header}
		s.UpdatedAt, s.Version = s.CreatedAt, 1
		p.cacheSession(s)
		p.catalogue(s, false)
		return nil
	case fsm.StatusSessionExists:
		return ErrSessionExists
	default:
		return fmt.Errorf("create session %q: %w: %v", c.Header.ID, ErrInternal, fsm.Status(res.Value))
	}
}

// requestBudget bounds the consensus work done for one request, retries
// included (the client's own timeout is usually shorter).
const requestBudget = 10 * time.Second

// Append commits one event and returns its outcome. Conflicts come back as
// the errors of errors.go; a deduped retry is a result, not an error.
// Concurrent appends to one group share a Raft entry (batcher.go).
func (p *Plane) Append(ctx context.Context, a *fsm.AppendEvent) (fsm.AppendResult, error) {
	if p.cfg.PendingMax > 0 && p.raft.MemoryUsed() >= p.cfg.PendingMax {
		return fsm.AppendResult{}, ErrBacklog
	}
	select {
	case o := <-p.batch.submit(p.placement.Group(a.SessionID), a):
		if o.err != nil {
			return o.r, fmt.Errorf("append to %q: %w", a.SessionID, o.err)
		}
		return o.r, nil
	case <-ctx.Done():
		// Still queued or in flight: it may yet commit.
		return fsm.AppendResult{}, fmt.Errorf("append to %q: %w", a.SessionID, ErrTimeout)
	}
}

// appendError maps the outcome of one append to its error (nil for a
// write or a dedupe).
func appendError(a *fsm.AppendEvent, r fsm.AppendResult) error {
	switch r.Status {
	case fsm.StatusOK, fsm.StatusDeduped:
		return nil
	case fsm.StatusSessionNotFound:
		return ErrSessionNotFound
	case fsm.StatusExpectedSeqConflict:
		return &ExpectedSeqConflictError{Expected: r.Expected, Current: r.Actual}
	case fsm.StatusProducerSeqConflict:
		return &ProducerSeqConflictError{ProducerID: a.ProducerID, Expected: r.Expected, Got: r.Actual}
	case fsm.StatusProducerReplayConflict:
		return ErrProducerReplayConflict
	default:
		return fmt.Errorf("%w: append status %v", ErrInternal, r.Status)
	}
}

// propose commits cmd in group: on the local replica when this node
// serves the group, else through another replica's node.
func (p *Plane) propose(ctx context.Context, group int, cmd []byte) (sm.Result, error) {
	if p.servesLocally(group) {
		return p.proposeLocal(ctx, group, cmd)
	}
	return p.proposeRemote(ctx, group, cmd)
}

// proposeLocal commits cmd through the local replica: one attempt of
// ProposeTimeout, a second after a timeout (safe: every command is
// idempotent under retry, see package fsm), and backoff retries while the
// group has no leader.
//
// The error tells the client what may have happened. ErrUnavailable
// promises that nothing was written: every attempt was turned away before
// leaving this node (no leader: Dragonboat "drops" such proposals). Once
// an attempt may have reached a leader (it timed out, or the replica
// closed under it) the outcome is ambiguous and the answer is ErrTimeout,
// even if later attempts were turned away: the first may still commit.
func (p *Plane) proposeLocal(ctx context.Context, group int, cmd []byte) (sm.Result, error) {
	giveUp := time.Now().Add(p.cfg.ProposeTimeout)
	backoff := 5 * time.Millisecond
	timeouts := 0
	ambiguous := false
	for {
		actx, cancel := context.WithTimeout(ctx, p.cfg.ProposeTimeout)
		res, err := p.raft.Propose(actx, group, cmd)
		cancel()
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil:
			return sm.Result{}, ErrTimeout
		case errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
			ambiguous = true
			if timeouts++; timeouts >= 2 {
				return sm.Result{}, ErrTimeout
			}
			// The second attempt gets a full budget of its own (spec
			// docs/operations.md#failures-and-timeouts), also for riding
			// out an election it may meet.
			giveUp = time.Now().Add(p.cfg.ProposeTimeout)
			backoff = 5 * time.Millisecond
		case isTemporary(err):
			if errors.Is(err, dragonboat.ErrShardClosed) || errors.Is(err, dragonboat.ErrAborted) {
				ambiguous = true
			}
			if time.Now().Add(backoff).After(giveUp) {
				if ambiguous {
					return sm.Result{}, ErrTimeout
				}
				return sm.Result{}, fmt.Errorf("%w: group %d: %v", ErrUnavailable, group, err)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return sm.Result{}, ErrTimeout
			}
			backoff = min(2*backoff, 100*time.Millisecond)
		case errors.Is(err, dragonboat.ErrClosed):
			if ambiguous {
				return sm.Result{}, ErrTimeout
			}
			return sm.Result{}, ErrUnavailable
		default:
			return sm.Result{}, fmt.Errorf("%w: %v", ErrInternal, err)
		}
	}
}

// Session returns the immutable part of a session: what authorization
// needs (id, tenant, creator, created_at). The fields that can change
// (title, metadata, updated_at, version, archived) and the counters may be
// stale or zero: read SessionState for them. Served from the session
// cache; a miss reads the local replica, then confirms an absence with a
// linearizable read so a session created a moment ago elsewhere is found;
// when no replica can answer, the archive catalogue is asked. A read
// forwarded to another node uses the wire type every version understands.
func (p *Plane) Session(ctx context.Context, id string) (fsm.SessionInfo, error) {
	if s, ok := p.sessions.GetIfPresent(id); ok {
		return s, nil
	}
	s, err := p.readSession(ctx, id, false, false)
	if errors.Is(err, ErrSessionNotFound) {
		s, err = p.readSession(ctx, id, true, false)
	}
	if err != nil && !errors.Is(err, ErrSessionNotFound) {
		s, err = p.catalogueLookup(ctx, id, err)
	}
	if err != nil {
		return fsm.SessionInfo{}, err
	}
	return p.cacheSession(s), nil
}

func (p *Plane) cacheSession(s fsm.SessionInfo) fsm.SessionInfo {
	s.LastSeq, s.ArchivedSeq = 0, 0
	p.sessions.Set(s.ID, s)
	return s
}

// SessionState returns a session with its whole header and current
// last_seq and archived_seq, as of a linearizable read.
func (p *Plane) SessionState(ctx context.Context, id string) (fsm.SessionInfo, error) {
	return p.readSession(ctx, id, true, true)
}

func (p *Plane) readSession(ctx context.Context, id string, linearizable, headers bool) (fsm.SessionInfo, error) {
	r, err := p.readGroups(ctx, ReadRequest{Kind: ReadSession, Groups: []int{p.placement.Group(id)}, ID: id,
		Linear: linearizable}, headers)
	if err != nil {
		return fsm.SessionInfo{}, fmt.Errorf("read session %q: %w", id, err)
	}
	if !r.found || len(r.sessions) == 0 {
		return fsm.SessionInfo{}, ErrSessionNotFound
	}
	return r.sessions[0], nil
}

// read runs q on the local replica of group.
func (p *Plane) read(ctx context.Context, group int, linearizable bool, q fsm.Query) (any, error) {
	if !linearizable {
		v, err := p.raft.StaleRead(group, q)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return v, nil
	}
	rctx, cancel := context.WithTimeout(ctx, p.cfg.ProposeTimeout)
	defer cancel()
	v, err := p.raft.SyncRead(rctx, group, q)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return nil, ErrTimeout
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}

// Page is a contiguous run of a session's events.
type Page struct {
	Events      []fsm.Event // seqs after+1, after+2, ... (possibly empty)
	TenantID    string
	LastSeq     uint64
	ArchivedSeq uint64
}

// Events returns up to limit events with seq > after, gap-free from
// after+1, merging the archive and the hot tier
// (docs/operations.md#archive-reads). When the range starts below what the
// hot tier holds and the archive cannot supply it, the answer is
// ErrReplayGap, never a page that silently skips events.
func (p *Plane) Events(ctx context.Context, id string, after uint64, limit int, linearizable bool) (Page, error) {
	r, err := p.readGroups(ctx, ReadRequest{Kind: ReadEvents, Groups: []int{p.placement.Group(id)}, ID: id,
		After: after, Limit: limit, Linear: linearizable}, false)
	if err != nil {
		return Page{}, fmt.Errorf("read events of %q: %w", id, err)
	}
	hot := r.events
	if !hot.Found {
		return Page{}, ErrSessionNotFound
	}
	page := Page{Events: hot.Events, TenantID: hot.TenantID, LastSeq: hot.LastSeq, ArchivedSeq: hot.ArchivedSeq}
	if after >= hot.ArchivedSeq {
		return page, nil
	}
	to := min(hot.ArchivedSeq, after+uint64(limit))
	if p.cfg.Archive == nil {
		return Page{}, fmt.Errorf("events %d..%d of %q are archived and no archive is configured: %w", after+1, to, id, ErrReplayGap)
	}
	cold, err := p.cfg.Archive.ReadEvents(ctx, id, hot.TenantID, after+1, to)
	if err != nil {
		return Page{}, fmt.Errorf("archive read of %q %d..%d: %v: %w", id, after+1, to, err, ErrReplayGap)
	}
	page.Events = mergeEvents(cold, hot.Events, after, limit)
	if len(page.Events) == 0 || page.Events[0].Seq != after+1 {
		return Page{}, fmt.Errorf("archive lacks events of %q from %d: %w", id, after+1, ErrReplayGap)
	}
	return page, nil
}

// mergeEvents merges two ascending runs, drops duplicate seqs, and keeps
// the contiguous prefix starting at after+1 (at most limit events).
func mergeEvents(a, b []fsm.Event, after uint64, limit int) []fsm.Event {
	all := make([]fsm.Event, 0, len(a)+len(b))
	all = append(all, a...)
	all = append(all, b...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	out := all[:0]
	next := after + 1
	for _, ev := range all {
		if ev.Seq < next {
			continue // duplicate
		}
		if ev.Seq > next || len(out) == limit {
			break // a gap ends the contiguous run
		}
		out = append(out, ev)
		next++
	}
	return out
}

// List returns up to q.Limit sessions matching q in id order, merged from
// every group.
func (p *Plane) List(ctx context.Context, q fsm.ListQuery) ([]fsm.SessionInfo, error) {
	var groups []int
	if q.OnlyID != "" {
		groups = []int{p.placement.Group(q.OnlyID)}
	} else {
		groups = make([]int, p.placement.Groups())
		for g := range groups {
			groups[g] = g
		}
	}
	all, err := p.listGroups(ctx, q, groups)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if len(all) > q.Limit {
		all = all[:q.Limit]
	}
	return all, nil
}

// LastSeq returns a session's last seq as the replica this node reads from
// knows it, without a consensus round trip (the tail catch-up check,
// docs/api.md#replay-then-live); ok is false when no replica answers.
func (p *Plane) LastSeq(ctx context.Context, id string) (uint64, bool) {
	s, err := p.readSession(ctx, id, false, false)
	if err != nil {
		return 0, false
	}
	return s.LastSeq, true
}
