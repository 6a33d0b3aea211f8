package fsm

import (
	"bytes"
	"fmt"
)

// Principal is the creator of a session: {tenant_id, id, type}.
type Principal struct {
	TenantID string
	ID       string
	Type     string
}

// Header is a session's descriptive record: what GET /v1/sessions/{id}
// returns apart from the event counters (docs/api.md#session-object).
// It is a plain value, serialised whole by AppendHeader and ParseHeader, so
// it can travel on its own: in snapshots, in command results, to the
// lifecycle feed, and into the archive when an idle session is frozen.
type Header struct {
	ID        string
	TenantID  string
	Title     *string
	Creator   Principal // zero for sessions created without one
	Metadata  []byte    // canonical JSON object
	CreatedAt int64     // Unix microseconds, stamped by the proposer of the create
	// UpdatedAt is CreatedAt until the first change, then the commit time
	// of the last update or archive flag flip. It strictly increases with
	// every change (see nextUpdatedAt), so it orders a session's headers.
	UpdatedAt int64
	Version   uint64 // 1 at create, +1 per update; archive flips keep it
	Archived  bool   // hidden from the default list; nothing else changes
}

// SessionInfo is a session as reads return it: its header and its event
// counters.
type SessionInfo struct {
	Header
	LastSeq     uint64
	ArchivedSeq uint64
}

// Size limits of what one tenant can make every replica hold
// (docs/api.md#limits), in bytes. The edge refuses requests past them; the
// state machine itself checks only MaxMetadataBytes, on the result of an
// update's merge, which only it can compute. Sessions and events written
// before these limits existed stay as they are.
const (
	MaxMetadataBytes   = 64 << 10 // a session's metadata, as canonical JSON
	MaxTitleBytes      = 4 << 10  // a session's title
	MaxProducerIDBytes = 256      // an event's producer_id
	MaxTypeBytes       = 256      // an event's type
)

// headerFormat is the first byte of an encoded header: a header stored
// outside a snapshot (the archive) can still be told apart from a later
// layout.
const headerFormat = 1

// AppendHeader appends the binary encoding of h to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	e := encoder{b: dst}
	e.header(h)
	return e.b
}

// ParseHeader decodes exactly one header written by AppendHeader.
func ParseHeader(b []byte) (Header, error) {
	d := decoder{b: b}
	h := d.header()
	if d.err == nil && len(d.b) != 0 {
		return Header{}, fmt.Errorf("session header: %d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Header{}, fmt.Errorf("session header: %w", d.err)
	}
	return h, nil
}

func (e *encoder) header(h *Header) {
	e.byte(headerFormat)
	e.string(h.ID)
	e.string(h.TenantID)
	e.optString(h.Title)
	e.string(h.Creator.TenantID)
	e.string(h.Creator.ID)
	e.string(h.Creator.Type)
	e.bytes(h.Metadata)
	e.varint(h.CreatedAt)
	e.varint(h.UpdatedAt)
	e.uvarint(h.Version)
	e.bool(h.Archived)
}

// header decodes what encoder.header wrote and rejects values no command
// can produce (version 0, an update before the create).
func (d *decoder) header() Header {
	if d.byte() != headerFormat {
		d.fail()
		return Header{}
	}
	var h Header
	h.ID = d.string()
	h.TenantID = d.string()
	h.Title = d.optString()
	h.Creator.TenantID = d.string()
	h.Creator.ID = d.string()
	h.Creator.Type = d.string()
	h.Metadata = d.bytes()
	h.CreatedAt = d.varint()
	h.UpdatedAt = d.varint()
	h.Version = d.uvarint()
	h.Archived = d.bool()
	if d.err == nil && (h.Version == 0 || h.UpdatedAt < h.CreatedAt) {
		d.fail()
	}
	return h
}

// nextUpdatedAt is the updated_at of a change committed at the proposer's
// clock `at`: never earlier than the previous one plus a microsecond, so
// that clock skew between proposers cannot make a newer header look older
// (the archive catalogue keeps the header with the larger updated_at).
func nextUpdatedAt(prev, at int64) int64 {
	return max(at, prev+1)
}

func headersEqual(a, b *Header) bool {
	return a.ID == b.ID && a.TenantID == b.TenantID && optEqual(a.Title, b.Title) && a.Creator == b.Creator &&
		bytes.Equal(a.Metadata, b.Metadata) && a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt &&
		a.Version == b.Version && a.Archived == b.Archived
}

func optEqual(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ChangeKind says how a committed command changed a session's header.
type ChangeKind uint8

// The header changes the lifecycle feed publishes.
const (
	SessionCreated    ChangeKind = iota + 1
	SessionUpdated               // title or metadata (version +1)
	SessionArchived              // the flag flipped to true
	SessionUnarchived            // the flag flipped to false
)

func (k ChangeKind) String() string {
	switch k {
	case SessionCreated:
		return "created"
	case SessionUpdated:
		return "updated"
	case SessionArchived:
		return "archived"
	case SessionUnarchived:
		return "unarchived"
	}
	return fmt.Sprintf("change(%d)", uint8(k))
}

// Change is one committed header change and the header it produced. A
// command that leaves the header as it was (a repeated archive, a retry)
// produces none.
type Change struct {
	Kind   ChangeKind
	Header Header
}
