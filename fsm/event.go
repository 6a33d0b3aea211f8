package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"starcite/fsm/jsonc"
)

// Event is one committed event as the hot tier holds it. JSON is the event
// object exactly as tail frames, channel pushes, the events route and the
// archives carry it (docs/api.md#event-object):
//
//	{"seq":N,"cursor":N,"type":..,"payload":..,"actor":..,"producer_id":..,"producer_seq":N,
//	 "source":..,"metadata":..,"refs":..,"idempotency_key":..,"inserted_at":"..Z","tenant_id":..}
//
// cursor always equals seq; source is absent when the append had none
// (never null). It is built once, when the entry is applied, and never
// changes.
type Event struct {
	Seq  uint64
	JSON []byte
}

// Content is the part of an event its producer controls. Its canonical
// encoding (AppendJSON) is what producer dedupe compares
// (docs/api.md#producer-sequencing). Payload, Metadata and Refs hold
// canonical JSON objects (package jsonc).
type Content struct {
	Type           string
	Payload        []byte
	Actor          string
	ProducerID     string
	ProducerSeq    uint64
	Source         *string
	Metadata       []byte
	Refs           []byte
	IdempotencyKey *string
}

// AppendJSON writes the content's object members, without braces: the
// form dedupe hashes, with "source":null when there is none.
func (c *Content) AppendJSON(dst []byte) []byte { return c.appendMembers(dst, true) }

// appendMembers writes the content's members; without nullSource, an
// absent source is left out (the event object's form).
func (c *Content) appendMembers(dst []byte, nullSource bool) []byte {
	dst = append(dst, `"type":`...)
	dst = jsonc.AppendString(dst, c.Type)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, c.Payload...)
	dst = append(dst, `,"actor":`...)
	dst = jsonc.AppendString(dst, c.Actor)
	dst = append(dst, `,"producer_id":`...)
	dst = jsonc.AppendString(dst, c.ProducerID)
	dst = append(dst, `,"producer_seq":`...)
	dst = strconv.AppendUint(dst, c.ProducerSeq, 10)
	if c.Source != nil || nullSource {
		dst = append(dst, `,"source":`...)
		dst = appendNullableString(dst, c.Source)
	}
	dst = append(dst, `,"metadata":`...)
	dst = append(dst, c.Metadata...)
	dst = append(dst, `,"refs":`...)
	dst = append(dst, c.Refs...)
	dst = append(dst, `,"idempotency_key":`...)
	return appendNullableString(dst, c.IdempotencyKey)
}

// Hash is the SHA-256 of the canonical content: equal for exactly the
// appends docs/api.md#producer-sequencing calls "the same content".
func (c *Content) Hash() [32]byte {
	return sha256.Sum256(c.AppendJSON(make([]byte, 0, 256)))
}

// AppendBody writes everything of an event object after its seq member:
// the content, the commit time and the tenant. It is what an append command
// carries, so that applying it only has to prefix the seq.
func AppendBody(dst []byte, c *Content, insertedAt int64, tenantID string) []byte {
	dst = c.appendMembers(dst, false)
	dst = append(dst, `,"inserted_at":`...)
	dst = append(dst, '"')
	dst = AppendTime(dst, insertedAt)
	dst = append(dst, '"')
	dst = append(dst, `,"tenant_id":`...)
	return jsonc.AppendString(dst, tenantID)
}

// EventJSON builds the event object from its seq and body. A body of the
// previous layout (proposed by an older node, or in the log from before)
// carries "source":null, which is left out.
func EventJSON(seq uint64, body []byte) []byte {
	b := appendEventPrefix(make([]byte, 0, len(body)+48), seq)
	if i := bytes.Index(body, nullSource); i >= 0 {
		// Unambiguous: in canonical JSON a nested object cannot hold
		// "metadata" after "source" (keys are sorted), and a string
		// cannot hold an unescaped quote.
		b = append(b, body[:i]...)
		body = body[i+len(`,"source":null`):]
	}
	b = append(b, body...)
	return append(b, '}')
}

// nullSource is where a body of the previous layout has its null source.
var nullSource = []byte(`,"source":null,"metadata":`)

// appendSeqPrefix writes `{"seq":N,`, the start of every event object of
// any layout.
func appendSeqPrefix(dst []byte, seq uint64) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, ',')
}

// appendEventPrefix writes `{"seq":N,"cursor":N,`, the start of every
// event object this version builds.
func appendEventPrefix(dst []byte, seq uint64) []byte {
	dst = appendSeqPrefix(dst, seq)
	dst = append(dst, `"cursor":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, ',')
}

// upgradeEventJSON returns an event object of an earlier layout (no
// cursor, "source":null) in the current one; one already in it is
// returned as is. The object must start with its seq (the caller checks).
func upgradeEventJSON(seq uint64, js []byte) []byte {
	head := appendEventPrefix(make([]byte, 0, 48), seq)
	if bytes.HasPrefix(js, head) {
		return js
	}
	return EventJSON(seq, js[len(appendSeqPrefix(head[:0], seq)):len(js)-1])
}

func appendNullableString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return jsonc.AppendString(dst, *s)
}

// timeLayout is the one timestamp format of the API: UTC, microseconds, Z.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// AppendTime writes a Unix-microsecond timestamp in the API's format.
func AppendTime(dst []byte, unixMicro int64) []byte {
	return time.UnixMicro(unixMicro).UTC().AppendFormat(dst, timeLayout)
}

// FormatTime returns a Unix-microsecond timestamp in the API's format.
func FormatTime(unixMicro int64) string { return string(AppendTime(nil, unixMicro)) }

// ParseTime reads an ISO-8601 UTC timestamp with or without fraction and
// with or without the trailing Z (upstream archives wrote it without).
func ParseTime(s string) (int64, error) {
	s = strings.TrimSuffix(s, "Z")
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	if err != nil {
		return 0, fmt.Errorf("parse time %q: %w", s, err)
	}
	return t.UnixMicro(), nil
}

// StoredEvent is a decoded event object.
type StoredEvent struct {
	Seq        uint64
	Content    Content
	InsertedAt int64
	TenantID   string // "" when the stored form does not carry one
}

// ErrBadEvent means a stored event object is not in the expected shape.
var ErrBadEvent = errors.New("malformed stored event")

// ParseEvent decodes an event object as written by any archive adapter,
// including upstream archives (no tenant_id, inserted_at without Z).
// Unknown keys are ignored.
func ParseEvent(b []byte) (StoredEvent, error) {
	v, err := jsonc.Parse(b)
	if err != nil || v.Kind != jsonc.Object {
		return StoredEvent{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	var e StoredEvent
	var ok bool
	bad := func(field string) (StoredEvent, error) {
		return StoredEvent{}, fmt.Errorf("%w: field %s", ErrBadEvent, field)
	}
	if e.Seq, ok = uintMember(v, "seq"); !ok || e.Seq == 0 {
		return bad("seq")
	}
	if e.Content.ProducerSeq, ok = uintMember(v, "producer_seq"); !ok {
		return bad("producer_seq")
	}
	if e.Content.Type, ok = stringMember(v, "type"); !ok {
		return bad("type")
	}
	if e.Content.Actor, ok = stringMember(v, "actor"); !ok {
		return bad("actor")
	}
	if e.Content.ProducerID, ok = stringMember(v, "producer_id"); !ok {
		return bad("producer_id")
	}
	if e.Content.Payload, ok = objectMember(v, "payload", false); !ok {
		return bad("payload")
	}
	if e.Content.Metadata, ok = objectMember(v, "metadata", true); !ok {
		return bad("metadata")
	}
	if e.Content.Refs, ok = objectMember(v, "refs", true); !ok {
		return bad("refs")
	}
	if e.Content.Source, ok = nullableStringMember(v, "source"); !ok {
		return bad("source")
	}
	if e.Content.IdempotencyKey, ok = nullableStringMember(v, "idempotency_key"); !ok {
		return bad("idempotency_key")
	}
	ts, ok := stringMember(v, "inserted_at")
	if !ok {
		return bad("inserted_at")
	}
	if e.InsertedAt, err = ParseTime(ts); err != nil {
		return bad("inserted_at")
	}
	if t, found := v.Get("tenant_id"); found && t.Kind == jsonc.String {
		e.TenantID = t.Str
	}
	return e, nil
}

// JSON renders a stored event in the canonical layout; tenantID is used
// when the stored form had none.
func (e *StoredEvent) JSON(tenantID string) []byte {
	if e.TenantID != "" {
		tenantID = e.TenantID
	}
	return EventJSON(e.Seq, AppendBody(nil, &e.Content, e.InsertedAt, tenantID))
}

func uintMember(v jsonc.Value, key string) (uint64, bool) {
	m, found := v.Get(key)
	if !found || m.Kind != jsonc.Number || !m.IsInt {
		return 0, false
	}
	n, err := strconv.ParseUint(m.Num, 10, 64)
	return n, err == nil
}

func stringMember(v jsonc.Value, key string) (string, bool) {
	m, found := v.Get(key)
	if !found || m.Kind != jsonc.String {
		return "", false
	}
	return m.Str, true
}

func nullableStringMember(v jsonc.Value, key string) (*string, bool) {
	m, found := v.Get(key)
	if !found || m.Kind == jsonc.Null {
		return nil, true
	}
	if m.Kind != jsonc.String {
		return nil, false
	}
	s := m.Str
	return &s, true
}

// objectMember returns the canonical encoding of an object member; a
// missing or null member reads as {} when optional.
func objectMember(v jsonc.Value, key string, optional bool) ([]byte, bool) {
	m, found := v.Get(key)
	if optional && (!found || m.Kind == jsonc.Null) {
		return []byte("{}"), true
	}
	if !found || m.Kind != jsonc.Object {
		return nil, false
	}
	return m.Append(nil), true
}
