package edge

import (
	"errors"
	"strconv"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// Frames of /v1/socket (docs/api.md#socket-frames): every
// message in either direction is one text frame holding the JSON array
// [join_ref, ref, topic, event, payload] of Phoenix's 2.0.0 serializer.

// Ref is a join_ref or ref: a string, or null when Valid is false.
type Ref struct {
	S     string
	Valid bool
}

// RefOf returns the non-null Ref s.
func RefOf(s string) Ref { return Ref{S: s, Valid: true} }

// Frame is one decoded client message.
type Frame struct {
	JoinRef Ref
	Ref     Ref
	Topic   string
	Event   string
	Payload jsonc.Value // any JSON value; each event decides what it accepts
}

// ErrBadFrame means a client frame is not a 2.0.0 message: not JSON, not
// an array of five elements, a ref that is neither a string nor null, or
// a topic or event that is not a string. The socket closes with 1007.
var ErrBadFrame = errors.New("not a [join_ref, ref, topic, event, payload] array")

// DecodeFrame decodes a client text frame.
func DecodeFrame(b []byte) (Frame, error) {
	v, err := jsonc.Parse(b)
	if err != nil {
		return Frame{}, errors.Join(ErrBadFrame, err)
	}
	if v.Kind != jsonc.Array || len(v.Elems) != 5 {
		return Frame{}, ErrBadFrame
	}
	e := v.Elems
	var f Frame
	var ok bool
	if f.JoinRef, ok = refValue(e[0]); !ok {
		return Frame{}, ErrBadFrame
	}
	if f.Ref, ok = refValue(e[1]); !ok {
		return Frame{}, ErrBadFrame
	}
	if e[2].Kind != jsonc.String || e[3].Kind != jsonc.String {
		return Frame{}, ErrBadFrame
	}
	f.Topic, f.Event, f.Payload = e[2].Str, e[3].Str, e[4]
	return f, nil
}

func refValue(v jsonc.Value) (Ref, bool) {
	switch v.Kind {
	case jsonc.Null:
		return Ref{}, true
	case jsonc.String:
		return RefOf(v.Str), true
	}
	return Ref{}, false
}

// Events of the protocol.
const (
	EventJoin         = "phx_join"
	EventLeave        = "phx_leave"
	EventReply        = "phx_reply"
	EventClose        = "phx_close"
	EventError        = "phx_error"
	EventHeartbeat    = "heartbeat"
	EventEvents       = "events"
	EventGap          = "gap"
	EventTokenExpired = "token_expired"
	EventLifecycle    = "lifecycle"
	TopicPhoenix      = "phoenix"
)

// AppendFrame writes one server frame; payload is a JSON object.
func AppendFrame(dst []byte, joinRef, ref Ref, topic, event string, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendRef(dst, joinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, ref)
	dst = append(dst, ',')
	dst = jsonc.AppendString(dst, topic)
	dst = append(dst, ',')
	dst = jsonc.AppendString(dst, event)
	dst = append(dst, ',')
	dst = append(dst, payload...)
	return append(dst, ']')
}

func appendRef(dst []byte, r Ref) []byte {
	if !r.Valid {
		return append(dst, "null"...)
	}
	return jsonc.AppendString(dst, r.S)
}

// ReplyOK is the successful reply to a client message: every successful
// reply of this server has the response {}.
func ReplyOK(joinRef, ref Ref, topic string) []byte {
	return AppendFrame(nil, joinRef, ref, topic, EventReply, []byte(`{"status":"ok","response":{}}`))
}

// ReplyError is the error reply {"status":"error","response":{"reason":R}}.
func ReplyError(joinRef, ref Ref, topic, reason string) []byte {
	p := append([]byte(`{"status":"error","response":{"reason":`), jsonc.AppendString(nil, reason)...)
	return AppendFrame(nil, joinRef, ref, topic, EventReply, append(p, "}}"...))
}

// ChannelEnd is the frame that ends a channel: phx_close (left, replaced
// by a new join, token expired) or phx_error (the client should rejoin).
// Its ref is the channel's join_ref, as Phoenix sends it.
func ChannelEnd(joinRef Ref, topic, event string) []byte {
	return AppendFrame(nil, joinRef, joinRef, topic, event, []byte("{}"))
}

// Push is a server push on a joined channel: [join_ref, null, topic, event, payload].
func Push(joinRef Ref, topic, event string, payload []byte) []byte {
	return AppendFrame(nil, joinRef, Ref{}, topic, event, payload)
}

// EventsPush is the events push of a tail channel: {"events":[...]}
// holding evs, which must not be empty. The event objects are the stored
// bytes, the same the raw tail route sends.
func EventsPush(joinRef Ref, topic string, evs []fsm.Event) []byte {
	size := 48 + len(topic) + len(joinRef.S)
	for _, ev := range evs {
		size += len(ev.JSON) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	b = appendRef(b, joinRef)
	b = append(b, ",null,"...)
	b = jsonc.AppendString(b, topic)
	b = append(b, `,"events",{"events":[`...)
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.JSON...)
	}
	return append(b, "]}]"...)
}

// EventsPushOverhead is what EventsPush adds around the event objects,
// beyond their commas: for sizing a push before building it.
func EventsPushOverhead(joinRef Ref, topic string) int {
	return len(AppendFrame(nil, joinRef, Ref{}, topic, EventEvents, []byte(`{"events":[]}`)))
}

// Gap is the payload of a gap push (docs/api.md#the-gap-push).
type Gap struct {
	Reason         string
	From, Next     uint64
	Committed      uint64
	EarliestCursor uint64
}

// GapPush renders a gap push.
func GapPush(joinRef Ref, topic string, g Gap) []byte {
	p := append([]byte(`{"type":"gap","reason":`), jsonc.AppendString(nil, g.Reason)...)
	p = append(p, `,"from_cursor":`...)
	p = strconv.AppendUint(p, g.From, 10)
	p = append(p, `,"next_cursor":`...)
	p = strconv.AppendUint(p, g.Next, 10)
	p = append(p, `,"committed_cursor":`...)
	p = strconv.AppendUint(p, g.Committed, 10)
	p = append(p, `,"earliest_available_cursor":`...)
	p = strconv.AppendUint(p, g.EarliestCursor, 10)
	return Push(joinRef, topic, EventGap, append(p, '}'))
}

// TokenExpiredPush is pushed on a channel when the socket's token expires.
func TokenExpiredPush(joinRef Ref, topic string) []byte {
	return Push(joinRef, topic, EventTokenExpired, []byte(`{"reason":"token_expired"}`))
}

// LifecyclePush renders a lifecycle push: {"event": <lifecycle event>}.
func LifecyclePush(joinRef Ref, event []byte) []byte {
	p := make([]byte, 0, len(event)+10)
	p = append(p, `{"event":`...)
	p = append(p, event...)
	return Push(joinRef, LifecycleTopic, EventLifecycle, append(p, '}'))
}

// LifecycleEvents renders the lifecycle events of one committed header
// change (docs/api.md#the-lifecycle-topic): a create is announced as
// session.activated then session.created, for clients that expect
// upstream's order; an update as session.updated with the whole merged
// metadata; an archive flag flip as session.archived or
// session.unarchived.
func LifecycleEvents(kind fsm.ChangeKind, h *fsm.Header) [][]byte {
	base := func(kind string) []byte {
		b := make([]byte, 0, 128+len(h.Metadata))
		b = append(b, `{"kind":`...)
		b = jsonc.AppendString(b, kind)
		b = append(b, `,"session_id":`...)
		b = jsonc.AppendString(b, h.ID)
		b = append(b, `,"tenant_id":`...)
		return jsonc.AppendString(b, h.TenantID)
	}
	header := func(b []byte, stamp string, at int64) []byte {
		b = append(b, `,"title":`...)
		b = appendOptString(b, h.Title)
		b = append(b, `,"metadata":`...)
		b = append(b, h.Metadata...)
		b = append(b, ',', '"')
		b = append(b, stamp...)
		b = append(b, `":"`...)
		b = fsm.AppendTime(b, at)
		b = append(b, `","version":`...)
		return append(strconv.AppendUint(b, h.Version, 10), '}')
	}
	switch kind {
	case fsm.SessionCreated:
		return [][]byte{append(base("session.activated"), '}'), header(base("session.created"), "created_at", h.CreatedAt)}
	case fsm.SessionUpdated:
		return [][]byte{header(base("session.updated"), "updated_at", h.UpdatedAt)}
	case fsm.SessionArchived:
		return [][]byte{append(base("session.archived"), `,"archived":true}`...)}
	case fsm.SessionUnarchived:
		return [][]byte{append(base("session.unarchived"), `,"archived":false}`...)}
	}
	return nil
}
