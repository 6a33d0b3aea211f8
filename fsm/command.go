package fsm

import "fmt"

// Command kinds: the first byte of every encoded command.
const (
	kindCreateSession byte = 1
	kindAppendEvent   byte = 2
	kindAppendEvents  byte = 3
	kindAckArchived   byte = 4
	kindUpdateSession byte = 5
	kindSetArchived   byte = 6
)

// Forwardable reports whether a node may commit cmd on another node's
// behalf: only the commands a client request causes (create, append,
// update, archive). Internal commands — ack_archived, which evicts events
// from memory once the archive holds them — are proposed by the node that
// holds the replica itself, never forwarded, so a peer that sends one is
// refused (docs/security.md#inter-node-ports).
func Forwardable(cmd []byte) bool {
	if len(cmd) == 0 {
		return false
	}
	switch cmd[0] {
	case kindCreateSession, kindAppendEvent, kindAppendEvents, kindUpdateSession, kindSetArchived:
		return true
	}
	return false
}

// CommandName names an encoded command's kind, for logs.
func CommandName(cmd []byte) string {
	if len(cmd) == 0 {
		return "empty"
	}
	switch cmd[0] {
	case kindCreateSession:
		return "create_session"
	case kindAppendEvent, kindAppendEvents:
		return "append"
	case kindAckArchived:
		return "ack_archived"
	case kindUpdateSession:
		return "update_session"
	case kindSetArchived:
		return "set_archived"
	}
	return fmt.Sprintf("kind %d", cmd[0])
}

// CreateSession registers a session. RequestID identifies the HTTP request
// so that a retry after an ambiguous timeout is recognised as ours. The
// state machine sets UpdatedAt = CreatedAt, Version 1 and Archived false.
type CreateSession struct {
	RequestID uint64
	Header    Header
}

// UpdateSession changes a session's title and/or metadata (PATCH): the
// title is replaced when SetTitle, Metadata (a canonical JSON object) is
// merged shallowly into the stored metadata when non-nil. With
// ExpectedVersion set the update applies only if the session's version is
// that one (compare-and-set). Every update increments the version. At is
// the proposer's clock (Unix microseconds); RequestID recognises our own
// retry of the same update.
type UpdateSession struct {
	RequestID       uint64
	SessionID       string
	At              int64
	SetTitle        bool
	Title           *string
	Metadata        []byte
	ExpectedVersion *uint64
}

// SetArchived sets a session's archived flag (archive / unarchive). Setting
// the value it already has changes nothing.
type SetArchived struct {
	RequestID uint64
	SessionID string
	At        int64
	Archived  bool
}

// AppendEvent appends one event. Body is the event object after its seq
// member (AppendBody); Hash is the SHA-256 of its canonical Content.
type AppendEvent struct {
	RequestID   uint64
	SessionID   string
	ProducerID  string
	ProducerSeq uint64
	ExpectedSeq *uint64
	Hash        [32]byte
	Body        []byte
}

// ArchiveMark says the archive durably holds a session's events up to Seq.
type ArchiveMark struct {
	SessionID string
	Seq       uint64
}

// EncodeCreateSession returns the Raft entry for c.
func EncodeCreateSession(c *CreateSession) []byte {
	e := encoder{b: make([]byte, 0, 128+len(c.Header.Metadata))}
	e.byte(kindCreateSession)
	e.uvarint(c.RequestID)
	s := &c.Header
	e.string(s.ID)
	e.string(s.TenantID)
	e.optString(s.Title)
	e.string(s.Creator.TenantID)
	e.string(s.Creator.ID)
	e.string(s.Creator.Type)
	e.bytes(s.Metadata)
	e.varint(s.CreatedAt)
	return e.b
}

// EncodeAppendEvent returns the Raft entry for one append.
func EncodeAppendEvent(a *AppendEvent) []byte {
	e := encoder{b: make([]byte, 0, 96+len(a.Body))}
	e.byte(kindAppendEvent)
	encodeAppend(&e, a)
	return e.b
}

// EncodeAppendEvents returns one Raft entry carrying several appends, which
// are applied in order as if proposed one after another.
func EncodeAppendEvents(as []AppendEvent) []byte {
	size := 8
	for i := range as {
		size += 96 + len(as[i].Body)
	}
	e := encoder{b: make([]byte, 0, size)}
	e.byte(kindAppendEvents)
	e.uvarint(uint64(len(as)))
	for i := range as {
		encodeAppend(&e, &as[i])
	}
	return e.b
}

func encodeAppend(e *encoder, a *AppendEvent) {
	e.uvarint(a.RequestID)
	e.string(a.SessionID)
	e.string(a.ProducerID)
	e.uvarint(a.ProducerSeq)
	e.optUvarint(a.ExpectedSeq)
	e.hash(a.Hash)
	e.bytes(a.Body)
}

// EncodeAckArchived returns the Raft entry acknowledging archived events.
func EncodeAckArchived(marks []ArchiveMark) []byte {
	e := encoder{}
	e.byte(kindAckArchived)
	e.uvarint(uint64(len(marks)))
	for _, m := range marks {
		e.string(m.SessionID)
		e.uvarint(m.Seq)
	}
	return e.b
}

func decodeCreateSession(d *decoder) CreateSession {
	var c CreateSession
	c.RequestID = d.uvarint()
	s := &c.Header
	s.ID = d.string()
	s.TenantID = d.string()
	s.Title = d.optString()
	s.Creator.TenantID = d.string()
	s.Creator.ID = d.string()
	s.Creator.Type = d.string()
	s.Metadata = d.bytes()
	s.CreatedAt = d.varint()
	return c
}

// EncodeUpdateSession returns the Raft entry for u.
func EncodeUpdateSession(u *UpdateSession) []byte {
	e := encoder{b: make([]byte, 0, 64+len(u.SessionID)+len(u.Metadata))}
	e.byte(kindUpdateSession)
	e.uvarint(u.RequestID)
	e.string(u.SessionID)
	e.varint(u.At)
	e.bool(u.SetTitle)
	e.optString(u.Title)
	e.bool(u.Metadata != nil)
	if u.Metadata != nil {
		e.bytes(u.Metadata)
	}
	e.optUvarint(u.ExpectedVersion)
	return e.b
}

func decodeUpdateSession(d *decoder) UpdateSession {
	var u UpdateSession
	u.RequestID = d.uvarint()
	u.SessionID = d.string()
	u.At = d.varint()
	u.SetTitle = d.bool()
	u.Title = d.optString()
	if d.bool() {
		u.Metadata = d.view() // merged into a new value; the entry is not retained
	}
	u.ExpectedVersion = d.optUvarint()
	return u
}

// EncodeSetArchived returns the Raft entry for a.
func EncodeSetArchived(a *SetArchived) []byte {
	e := encoder{b: make([]byte, 0, 32+len(a.SessionID))}
	e.byte(kindSetArchived)
	e.uvarint(a.RequestID)
	e.string(a.SessionID)
	e.varint(a.At)
	e.bool(a.Archived)
	return e.b
}

func decodeSetArchived(d *decoder) SetArchived {
	var a SetArchived
	a.RequestID = d.uvarint()
	a.SessionID = d.string()
	a.At = d.varint()
	a.Archived = d.bool()
	return a
}

func decodeAppend(d *decoder) AppendEvent {
	var a AppendEvent
	a.RequestID = d.uvarint()
	a.SessionID = d.string()
	a.ProducerID = d.string()
	a.ProducerSeq = d.uvarint()
	a.ExpectedSeq = d.optUvarint()
	a.Hash = d.hash()
	a.Body = d.view() // applying copies it into the event; the entry is not retained
	return a
}

// Status is the outcome of one command (or of one append in a batch).
type Status uint8

// The outcomes. Conflicts carry the two numbers their messages name.
const (
	StatusOK Status = iota
	StatusDeduped
	StatusSessionNotFound
	StatusSessionExists
	StatusExpectedSeqConflict    // Expected = client's expected_seq, Actual = last_seq
	StatusProducerSeqConflict    // Expected = next producer_seq, Actual = producer_seq sent
	StatusProducerReplayConflict // same producer_seq as the last append, different content
	StatusMalformed              // the entry did not decode; nothing changed
	// StatusExpectedVersionConflict: an update's expected version is not
	// the session's (HeaderResult.Expected / Current).
	StatusExpectedVersionConflict
	// StatusMetadataTooLarge: the merged metadata would exceed
	// MaxMetadataBytes; nothing changed.
	StatusMetadataTooLarge
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusDeduped:
		return "deduped"
	case StatusSessionNotFound:
		return "session_not_found"
	case StatusSessionExists:
		return "session_exists"
	case StatusExpectedSeqConflict:
		return "expected_seq_conflict"
	case StatusProducerSeqConflict:
		return "producer_seq_conflict"
	case StatusProducerReplayConflict:
		return "producer_replay_conflict"
	case StatusMalformed:
		return "malformed"
	case StatusExpectedVersionConflict:
		return "expected_version_conflict"
	case StatusMetadataTooLarge:
		return "metadata_too_large"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// AppendResult is the outcome of one append.
type AppendResult struct {
	Status      Status
	Seq         uint64 // the event's seq (the original one when deduped)
	LastSeq     uint64 // the session's last_seq after the command
	Expected    uint64
	Actual      uint64
	ArchivedSeq uint64 // the session's archived_seq (the append reply's committed_cursor)
}

// Result mirrors Dragonboat's sm.Result so the core does not import it:
// Value is the Status of a single command, Data the encoded details.
type Result struct {
	Value uint64
	Data  []byte
}

// encodeAppendResults writes the results, then each result's archived_seq
// as a trailer: a node of the previous version, which reads only the
// records before it, still decodes what this one returns.
func encodeAppendResults(rs []AppendResult) []byte {
	e := encoder{b: make([]byte, 0, 1+len(rs)*10)}
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.byte(byte(r.Status))
		e.uvarint(r.Seq)
		e.uvarint(r.LastSeq)
		e.uvarint(r.Expected)
		e.uvarint(r.Actual)
	}
	for _, r := range rs {
		e.uvarint(r.ArchivedSeq)
	}
	return e.b
}

// DecodeAppendResults reads the per-append outcomes of an append_event or
// append_events entry from its result data. Results of the previous
// version, without the trailer, read with ArchivedSeq 0.
func DecodeAppendResults(data []byte) ([]AppendResult, error) {
	d := decoder{b: data}
	n := d.count(5)
	rs := make([]AppendResult, n)
	for i := range rs {
		rs[i] = AppendResult{Status: Status(d.byte()), Seq: d.uvarint(), LastSeq: d.uvarint(),
			Expected: d.uvarint(), Actual: d.uvarint()}
	}
	if d.err == nil && len(d.b) > 0 {
		for i := range rs {
			rs[i].ArchivedSeq = d.uvarint()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode append results: %w", d.err)
	}
	return rs, nil
}

// HeaderResult is the outcome of an update or archive command.
type HeaderResult struct {
	Status   Status
	Session  SessionInfo // the session after the command (Status OK)
	Changed  bool        // the header changed (false for a repeat or a retry)
	Expected uint64      // expected_version conflict: the version the client expected
	Current  uint64      // expected_version conflict: the session's version
}

func encodeHeaderResult(r *HeaderResult) []byte {
	e := encoder{}
	e.byte(byte(r.Status))
	e.bool(r.Changed)
	e.uvarint(r.Expected)
	e.uvarint(r.Current)
	ok := r.Status == StatusOK
	e.bool(ok)
	if ok {
		e.header(&r.Session.Header)
		e.uvarint(r.Session.LastSeq)
		e.uvarint(r.Session.ArchivedSeq)
	}
	return e.b
}

// DecodeHeaderResult reads the outcome of an update_session or
// set_archived entry from its result data.
func DecodeHeaderResult(data []byte) (HeaderResult, error) {
	d := decoder{b: data}
	r := HeaderResult{Status: Status(d.byte()), Changed: d.bool(), Expected: d.uvarint(), Current: d.uvarint()}
	if d.bool() {
		r.Session.Header = d.header()
		r.Session.LastSeq = d.uvarint()
		r.Session.ArchivedSeq = d.uvarint()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return HeaderResult{}, fmt.Errorf("decode header result: %w", d.err)
	}
	return r, nil
}
