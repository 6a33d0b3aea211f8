package fsm

import "fmt"

// Command kinds: the first byte of every encoded command.
const (
	kindCreateSession byte = 1
	kindAppendEvent   byte = 2
	kindAppendEvents  byte = 3
	kindAckArchived   byte = 4
)

// Principal is the creator of a session: {tenant_id, id, type}.
type Principal struct {
	TenantID string
	ID       string
	Type     string
}

// SessionInfo is what a session is, as reads return it.
type SessionInfo struct {
	ID          string
	TenantID    string
	Title       *string
	Creator     Principal
	Metadata    []byte // canonical JSON object
	CreatedAt   int64  // Unix microseconds, stamped by the proposer
	LastSeq     uint64
	ArchivedSeq uint64
}

// CreateSession registers a session. RequestID identifies the HTTP request
// so that a retry after an ambiguous timeout is recognised as ours.
type CreateSession struct {
	RequestID uint64
	Session   SessionInfo // LastSeq and ArchivedSeq are ignored
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
	e := encoder{b: make([]byte, 0, 128+len(c.Session.Metadata))}
	e.byte(kindCreateSession)
	e.uvarint(c.RequestID)
	s := &c.Session
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
	s := &c.Session
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
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// AppendResult is the outcome of one append.
type AppendResult struct {
	Status   Status
	Seq      uint64 // the event's seq (the original one when deduped)
	LastSeq  uint64 // the session's last_seq after the command
	Expected uint64
	Actual   uint64
}

// Result mirrors Dragonboat's sm.Result so the core does not import it:
// Value is the Status of a single command, Data the encoded details.
type Result struct {
	Value uint64
	Data  []byte
}

func encodeAppendResults(rs []AppendResult) []byte {
	e := encoder{b: make([]byte, 0, 1+len(rs)*8)}
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.byte(byte(r.Status))
		e.uvarint(r.Seq)
		e.uvarint(r.LastSeq)
		e.uvarint(r.Expected)
		e.uvarint(r.Actual)
	}
	return e.b
}

// DecodeAppendResults reads the per-append outcomes of an append_event or
// append_events entry from its result data.
func DecodeAppendResults(data []byte) ([]AppendResult, error) {
	d := decoder{b: data}
	n := d.count(5)
	rs := make([]AppendResult, n)
	for i := range rs {
		rs[i] = AppendResult{Status: Status(d.byte()), Seq: d.uvarint(), LastSeq: d.uvarint(),
			Expected: d.uvarint(), Actual: d.uvarint()}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode append results: %w", d.err)
	}
	return rs, nil
}
