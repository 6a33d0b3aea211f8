package fsm

import (
	"bytes"
	"container/heap"
	"sort"

	"starcite/fsm/jsonc"
)

// eventOverhead approximates what one hot event costs beyond its JSON: the
// Event header in the session's slice. Hot-tier budgets count both.
const eventOverhead = 32

// State is the state of one Raft group: its sessions and their hot events.
// It is not safe for concurrent use; StateMachine adds the locking.
type State struct {
	sessions  map[string]*session
	pending   map[string]struct{} // sessions with events not yet archived
	hotBytes  int64
	hotEvents int64
	// producerBytes is what every session's producer cursors cost; with
	// hotBytes it makes the memory budget (docs/decisions.md#d18).
	producerBytes int64
}

type session struct {
	info      SessionInfo
	createReq uint64      // request id of the create, to recognise its retry
	changeReq uint64      // request id of the last header change, likewise
	meta      jsonc.Value // parsed Metadata, for list filters and merges
	// events holds seq ArchivedSeq+1 .. LastSeq in order. Elements are never
	// written after being appended: eviction copies the rest to a new array,
	// so a snapshot may keep reading an earlier slice header.
	events    []Event
	hotBytes  int64
	producers producerSet
}

// Commit is one newly committed event, as the cursor fan-out receives it.
type Commit struct {
	SessionID string
	LastSeq   uint64
	Event     Event
}

// Output collects, in commit order, what applied commands committed: the
// events (for tails) and the header changes (for the lifecycle feed).
type Output struct {
	Commits []Commit
	Changes []Change
}

// Empty reports whether nothing was committed.
func (o *Output) Empty() bool { return len(o.Commits) == 0 && len(o.Changes) == 0 }

// NewState returns an empty group state.
func NewState() *State {
	return &State{sessions: map[string]*session{}, pending: map[string]struct{}{}}
}

// Apply applies one encoded command and returns its result. Committed
// events and header changes are appended to out (which may be nil). A
// command that does not decode changes nothing and yields StatusMalformed.
func (s *State) Apply(cmd []byte, out *Output) Result {
	if out == nil {
		out = &Output{}
	}
	if len(cmd) == 0 {
		return Result{Value: uint64(StatusMalformed)}
	}
	d := decoder{b: cmd[1:]}
	switch cmd[0] {
	case kindCreateSession:
		c := decodeCreateSession(&d)
		if d.err != nil || len(d.b) != 0 {
			break
		}
		return Result{Value: uint64(s.createSession(&c, out))}
	case kindAppendEvent:
		a := decodeAppend(&d)
		if d.err != nil || len(d.b) != 0 {
			break
		}
		r := s.appendEvent(&a, out)
		return Result{Value: uint64(r.Status), Data: encodeAppendResults([]AppendResult{r})}
	case kindAppendEvents:
		// Decode the whole batch first: a malformed tail must not leave
		// half of the batch applied.
		n := d.count(36)
		as := make([]AppendEvent, n)
		for i := range as {
			as[i] = decodeAppend(&d)
		}
		if d.err != nil || len(d.b) != 0 {
			break
		}
		rs := make([]AppendResult, n)
		for i := range as {
			rs[i] = s.appendEvent(&as[i], out)
		}
		return Result{Value: uint64(StatusOK), Data: encodeAppendResults(rs)}
	case kindAckArchived:
		n := d.count(2)
		marks := make([]ArchiveMark, n)
		for i := range marks {
			marks[i] = ArchiveMark{SessionID: d.string(), Seq: d.uvarint()}
		}
		if d.err != nil || len(d.b) != 0 {
			break
		}
		for _, m := range marks {
			s.ackArchived(m)
		}
		return Result{Value: uint64(StatusOK)}
	case kindUpdateSession:
		u := decodeUpdateSession(&d)
		if d.err != nil || len(d.b) != 0 {
			break
		}
		var patch jsonc.Value
		if u.Metadata != nil {
			v, err := jsonc.Parse(u.Metadata)
			if err != nil || v.Kind != jsonc.Object {
				break
			}
			patch = v
		}
		if !u.SetTitle && u.Metadata == nil {
			break // the edge refuses an update that changes nothing
		}
		r := s.updateSession(&u, patch, out)
		return Result{Value: uint64(r.Status), Data: encodeHeaderResult(&r)}
	case kindSetArchived:
		a := decodeSetArchived(&d)
		if d.err != nil || len(d.b) != 0 {
			break
		}
		r := s.setArchived(&a, out)
		return Result{Value: uint64(r.Status), Data: encodeHeaderResult(&r)}
	}
	return Result{Value: uint64(StatusMalformed)}
}

func (s *State) createSession(c *CreateSession, out *Output) Status {
	if ex, ok := s.sessions[c.Header.ID]; ok {
		if c.RequestID != 0 && ex.createReq == c.RequestID {
			return StatusOK // our own retry after an ambiguous timeout
		}
		return StatusSessionExists
	}
	h := c.Header
	h.UpdatedAt, h.Version, h.Archived = h.CreatedAt, 1, false
	var meta jsonc.Value
	meta, h.Metadata = parseMetadata(h.Metadata)
	s.sessions[h.ID] = &session{info: SessionInfo{Header: h}, createReq: c.RequestID, meta: meta,
		producers: newProducerSet()}
	out.Changes = append(out.Changes, Change{Kind: SessionCreated, Header: h})
	return StatusOK
}

// parseMetadata parses stored metadata. The edge only ever sends a
// canonical JSON object; anything else (a hand-made entry) is stored as
// the canonical form, or as {} when it is no object at all, so that the
// bytes and the parsed value always agree.
func parseMetadata(b []byte) (jsonc.Value, []byte) {
	v, err := jsonc.Parse(b)
	if err != nil || v.Kind != jsonc.Object {
		v = jsonc.Value{Kind: jsonc.Object}
	}
	if c := v.Append(nil); !bytes.Equal(c, b) {
		return v, c
	}
	return v, b
}

// updateSession applies a title/metadata update: compare-and-set on the
// version, shallow metadata merge, version +1, updated_at advanced.
func (s *State) updateSession(u *UpdateSession, patch jsonc.Value, out *Output) HeaderResult {
	ss, ok := s.sessions[u.SessionID]
	if !ok {
		return HeaderResult{Status: StatusSessionNotFound}
	}
	if u.RequestID != 0 && u.RequestID == ss.changeReq {
		return HeaderResult{Status: StatusOK, Session: ss.info} // our own retry: already applied
	}
	h := ss.info.Header
	if u.ExpectedVersion != nil && *u.ExpectedVersion != h.Version {
		return HeaderResult{Status: StatusExpectedVersionConflict, Expected: *u.ExpectedVersion, Current: h.Version}
	}
	meta := ss.meta
	if u.Metadata != nil {
		meta = meta.Merge(patch)
		h.Metadata = meta.Append(make([]byte, 0, len(h.Metadata)+len(u.Metadata)))
		if len(h.Metadata) > MaxMetadataBytes {
			return HeaderResult{Status: StatusMetadataTooLarge}
		}
	}
	if u.SetTitle {
		h.Title = nil
		if u.Title != nil {
			t := *u.Title
			h.Title = &t
		}
	}
	h.Version++
	h.UpdatedAt = nextUpdatedAt(h.UpdatedAt, u.At)
	ss.info.Header, ss.meta, ss.changeReq = h, meta, u.RequestID
	out.Changes = append(out.Changes, Change{Kind: SessionUpdated, Header: h})
	return HeaderResult{Status: StatusOK, Session: ss.info, Changed: true}
}

// setArchived flips the archived flag; setting the current value is a
// no-op that reports the header as it is.
func (s *State) setArchived(a *SetArchived, out *Output) HeaderResult {
	ss, ok := s.sessions[a.SessionID]
	if !ok {
		return HeaderResult{Status: StatusSessionNotFound}
	}
	if ss.info.Archived == a.Archived {
		return HeaderResult{Status: StatusOK, Session: ss.info}
	}
	h := ss.info.Header
	h.Archived = a.Archived
	h.UpdatedAt = nextUpdatedAt(h.UpdatedAt, a.At)
	ss.info.Header, ss.changeReq = h, a.RequestID
	kind := SessionUnarchived
	if a.Archived {
		kind = SessionArchived
	}
	out.Changes = append(out.Changes, Change{Kind: kind, Header: h})
	return HeaderResult{Status: StatusOK, Session: ss.info, Changed: true}
}

// appendEvent appends one event to its session and reports the session's
// archived_seq with the outcome.
func (s *State) appendEvent(a *AppendEvent, out *Output) AppendResult {
	ss, ok := s.sessions[a.SessionID]
	if !ok {
		return AppendResult{Status: StatusSessionNotFound}
	}
	r := s.applyProducerRules(ss, a, out)
	r.ArchivedSeq = ss.info.ArchivedSeq
	return r
}

// applyProducerRules applies the rules of
// docs/api.md#producer-sequencing and docs/api.md#expected-seq in the
// order of docs/decisions.md#d4: an exact retry dedupes first, then
// expected_seq, then producer sequencing.
func (s *State) applyProducerRules(ss *session, a *AppendEvent, out *Output) AppendResult {
	last := ss.info.LastSeq
	cur, known := ss.producers.get(a.ProducerID)
	if known && a.ProducerSeq == cur.producerSeq && a.Hash == cur.hash {
		st := StatusDeduped
		if a.RequestID != 0 && a.RequestID == cur.requestID {
			st = StatusOK // our own retry: from the client's view this request wrote it
		}
		return AppendResult{Status: st, Seq: cur.sessionSeq, LastSeq: last}
	}
	if a.ExpectedSeq != nil && *a.ExpectedSeq != last {
		return AppendResult{Status: StatusExpectedSeqConflict, LastSeq: last,
			Expected: *a.ExpectedSeq, Actual: last}
	}
	next := uint64(1)
	if known {
		if a.ProducerSeq == cur.producerSeq {
			return AppendResult{Status: StatusProducerReplayConflict, LastSeq: last}
		}
		next = cur.producerSeq + 1
	}
	if a.ProducerSeq != next {
		return AppendResult{Status: StatusProducerSeqConflict, LastSeq: last,
			Expected: next, Actual: a.ProducerSeq}
	}

	seq := last + 1
	ev := Event{Seq: seq, JSON: EventJSON(seq, a.Body)}
	ss.info.LastSeq = seq
	ss.events = append(ss.events, ev)
	size := int64(len(ev.JSON) + eventOverhead)
	ss.hotBytes += size
	s.hotBytes += size
	s.hotEvents++
	s.pending[a.SessionID] = struct{}{}
	before := ss.producers.bytes
	ss.producers.record(a.ProducerID, producerCursor{producerSeq: a.ProducerSeq, sessionSeq: seq,
		hash: a.Hash, requestID: a.RequestID})
	s.producerBytes += ss.producers.bytes - before
	out.Commits = append(out.Commits, Commit{SessionID: a.SessionID, LastSeq: seq, Event: ev})
	return AppendResult{Status: StatusOK, Seq: seq, LastSeq: seq}
}

func (s *State) ackArchived(m ArchiveMark) {
	ss, ok := s.sessions[m.SessionID]
	if !ok {
		return
	}
	upto := min(m.Seq, ss.info.LastSeq)
	if upto <= ss.info.ArchivedSeq {
		return
	}
	drop := int(upto - ss.info.ArchivedSeq)
	var freed int64
	for _, ev := range ss.events[:drop] {
		freed += int64(len(ev.JSON) + eventOverhead)
	}
	var rest []Event
	if drop < len(ss.events) {
		rest = make([]Event, len(ss.events)-drop)
		copy(rest, ss.events[drop:])
	}
	ss.events = rest
	ss.info.ArchivedSeq = upto
	ss.hotBytes -= freed
	s.hotBytes -= freed
	s.hotEvents -= int64(drop)
	if len(rest) == 0 {
		delete(s.pending, m.SessionID)
	}
}

// Session returns a session's info.
func (s *State) Session(id string) (SessionInfo, bool) {
	ss, ok := s.sessions[id]
	if !ok {
		return SessionInfo{}, false
	}
	return ss.info, true
}

// EventsResult is a read of a session's hot tier.
type EventsResult struct {
	Found       bool
	TenantID    string
	LastSeq     uint64
	ArchivedSeq uint64
	Events      []Event // hot events with seq > after, ascending
}

// Events returns up to limit hot events of a session with seq > after.
// Events at or below ArchivedSeq live only in the archive; the caller
// fetches that part of the range from there.
func (s *State) Events(id string, after uint64, limit int) EventsResult {
	ss, ok := s.sessions[id]
	if !ok {
		return EventsResult{}
	}
	r := EventsResult{Found: true, TenantID: ss.info.TenantID, LastSeq: ss.info.LastSeq, ArchivedSeq: ss.info.ArchivedSeq}
	start := 0
	if after > ss.info.ArchivedSeq {
		start = int(min(after-ss.info.ArchivedSeq, uint64(len(ss.events))))
	}
	end := min(len(ss.events), start+limit)
	if end > start {
		r.Events = append([]Event(nil), ss.events[start:end]...)
	}
	return r
}

// ListQuery selects sessions for the list route.
type ListQuery struct {
	Archived ArchivedFilter    // zero: only sessions that are not archived
	TenantID string            // "" lists every tenant (none mode)
	OnlyID   string            // non-empty: only this session (session-locked token)
	After    string            // exclusive lower bound on id; "" = from the start
	Filters  map[string]string // metadata key → exact string value
	Limit    int
}

// ArchivedFilter selects sessions by their archived flag.
type ArchivedFilter uint8

// The list filters of ?archived=false|true|all.
const (
	NotArchived ArchivedFilter = iota
	OnlyArchived
	AnyArchived
)

// List returns up to q.Limit matching sessions in ascending byte-wise id
// order. Callers merge the lists of several groups.
func (s *State) List(q ListQuery) []SessionInfo {
	if q.Limit <= 0 {
		return nil
	}
	if q.OnlyID != "" {
		ss, ok := s.sessions[q.OnlyID]
		if !ok || !matches(ss, &q) {
			return nil
		}
		return []SessionInfo{ss.info}
	}
	h := &idHeap{}
	for _, ss := range s.sessions {
		if !matches(ss, &q) {
			continue
		}
		if h.Len() < q.Limit {
			heap.Push(h, ss)
		} else if ss.info.ID < (*h)[0].info.ID {
			(*h)[0] = ss
			heap.Fix(h, 0)
		}
	}
	out := make([]SessionInfo, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(*session).info
	}
	return out
}

func matches(ss *session, q *ListQuery) bool {
	if q.After != "" && ss.info.ID <= q.After {
		return false
	}
	if q.TenantID != "" && ss.info.TenantID != q.TenantID {
		return false
	}
	switch q.Archived {
	case NotArchived:
		if ss.info.Archived {
			return false
		}
	case OnlyArchived:
		if !ss.info.Archived {
			return false
		}
	}
	for k, want := range q.Filters {
		v, ok := ss.meta.Get(k)
		if !ok || v.Kind != jsonc.String || v.Str != want {
			return false
		}
	}
	return true
}

// idHeap is a max-heap on session id: it keeps the smallest ids seen.
type idHeap []*session

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].info.ID > h[j].info.ID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*session)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// PendingSession is a session's unarchived events, for the archiver.
type PendingSession struct {
	SessionID string
	TenantID  string
	Events    []Event
}

// Pending returns, for up to maxSessions sessions with unarchived events
// (in id order, starting after the id `after` so successive calls cycle
// fairly), up to maxEvents of their oldest unarchived events.
func (s *State) Pending(after string, maxSessions, maxEvents int) []PendingSession {
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	start := sort.SearchStrings(ids, after)
	if start < len(ids) && ids[start] == after {
		start++
	}
	ids = append(ids[start:], ids[:start]...)
	if len(ids) > maxSessions {
		ids = ids[:maxSessions]
	}
	out := make([]PendingSession, 0, len(ids))
	for _, id := range ids {
		ss := s.sessions[id]
		n := min(len(ss.events), maxEvents)
		out = append(out, PendingSession{SessionID: id, TenantID: ss.info.TenantID,
			Events: append([]Event(nil), ss.events[:n]...)})
	}
	return out
}

// Stats summarises a group for readiness, metrics and ops.
type Stats struct {
	Sessions        int
	PendingSessions int
	HotEvents       int64
	HotBytes        int64
	ProducerBytes   int64 // what the producer cursors cost (docs/decisions.md#d18)
}

// Stats returns the group's counters.
func (s *State) Stats() Stats {
	return Stats{Sessions: len(s.sessions), PendingSessions: len(s.pending),
		HotEvents: s.hotEvents, HotBytes: s.hotBytes, ProducerBytes: s.producerBytes}
}

// Equal reports whether two states hold exactly the same data (tests,
// fuzzing and replica comparisons).
func (s *State) Equal(o *State) bool {
	if len(s.sessions) != len(o.sessions) || s.hotBytes != o.hotBytes || s.hotEvents != o.hotEvents ||
		s.producerBytes != o.producerBytes || len(s.pending) != len(o.pending) {
		return false
	}
	for id, a := range s.sessions {
		b, ok := o.sessions[id]
		if !ok || !sessionsEqual(a, b) {
			return false
		}
	}
	return true
}

func sessionsEqual(a, b *session) bool {
	ai, bi := a.info, b.info
	if !headersEqual(&ai.Header, &bi.Header) || ai.LastSeq != bi.LastSeq || ai.ArchivedSeq != bi.ArchivedSeq ||
		a.createReq != b.createReq || a.changeReq != b.changeReq ||
		a.hotBytes != b.hotBytes || len(a.events) != len(b.events) || a.producers.len() != b.producers.len() {
		return false
	}
	for i := range a.events {
		if a.events[i].Seq != b.events[i].Seq || !bytes.Equal(a.events[i].JSON, b.events[i].JSON) {
			return false
		}
	}
	// Same cursors in the same forgetting order.
	for x, y := a.producers.oldest, b.producers.oldest; x != nil; x, y = x.next, y.next {
		if x.id != y.id || x.cursor != y.cursor {
			return false
		}
	}
	return true
}

// SessionStat is one session of a group as an operator sees it.
type SessionStat struct {
	ID          string
	TenantID    string
	LastSeq     uint64
	ArchivedSeq uint64
	HotEvents   int
	HotBytes    int64
	Producers   int
}

// GroupTotals sums the sessions of a group.
type GroupTotals struct {
	Stats
	Events         uint64 // Σ last_seq: events ever committed
	ArchivedEvents uint64 // Σ archived_seq: events the archive holds
}

// SessionStats returns the group's totals and, in id order, up to limit
// sessions whose id sorts after `after`. It walks every session: an
// operator query, never one for the request path.
func (s *State) SessionStats(after string, limit int) ([]SessionStat, GroupTotals) {
	t := GroupTotals{Stats: s.Stats()}
	h := &idHeap{}
	for _, ss := range s.sessions {
		t.Events += ss.info.LastSeq
		t.ArchivedEvents += ss.info.ArchivedSeq
		switch {
		case limit <= 0 || ss.info.ID <= after:
		case h.Len() < limit:
			heap.Push(h, ss)
		case ss.info.ID < (*h)[0].info.ID:
			(*h)[0] = ss
			heap.Fix(h, 0)
		}
	}
	out := make([]SessionStat, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		ss := heap.Pop(h).(*session)
		out[i] = SessionStat{ID: ss.info.ID, TenantID: ss.info.TenantID, LastSeq: ss.info.LastSeq,
			ArchivedSeq: ss.info.ArchivedSeq, HotEvents: len(ss.events), HotBytes: ss.hotBytes,
			Producers: ss.producers.len()}
	}
	return out, t
}
