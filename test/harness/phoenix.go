package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

// Phoenix is a client of /v1/socket written from the protocol as
// docs/api.md describes it: Phoenix Channels, serializer 2.0.0, every
// frame the JSON array [join_ref, ref, topic, event, payload]. It checks
// the shape of every frame it receives. One goroutine uses a client: it
// reads only when a method waits for a frame, so a test can stop reading
// to play a slow consumer. Frames read while waiting for another are kept
// and returned, in order, to later waits.
type Phoenix struct {
	Conn    *websocket.Conn
	ref     int
	pending []PhxFrame
	closed  error // the read error that ended the connection
}

// PhxFrame is one server frame.
type PhxFrame struct {
	JoinRef *string
	Ref     *string
	Topic   string
	Event   string
	Payload json.RawMessage
	Raw     []byte
	At      time.Time // when it was read
}

func (f PhxFrame) String() string { return trunc(string(f.Raw), 300) }

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Status is a reply's status ("ok", "error"), "" for other frames.
func (f PhxFrame) Status() string {
	var r struct{ Status string }
	json.Unmarshal(f.Payload, &r)
	return r.Status
}

// Reason is the reason of an error reply, or of a token_expired push.
func (f PhxFrame) Reason() string {
	var r struct {
		Reason   string
		Response struct{ Reason string }
	}
	json.Unmarshal(f.Payload, &r)
	if r.Response.Reason != "" {
		return r.Response.Reason
	}
	return r.Reason
}

// PhxEvent is one event of an events push.
type PhxEvent struct {
	Seq    uint64
	Cursor *uint64
	Raw    json.RawMessage
	Push   int // events in the push that carried it
	At     time.Time
}

// Events decodes an events push: an object with a non-empty array
// "events" and no other key.
func (f PhxFrame) Events() ([]PhxEvent, error) {
	if f.Event != "events" {
		return nil, fmt.Errorf("frame is %q, not events: %s", f.Event, f)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(f.Payload, &p); err != nil || len(p) != 1 || p["events"] == nil {
		return nil, fmt.Errorf("events payload is not {\"events\": [...]}: %s", f)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(p["events"], &raws); err != nil || len(raws) == 0 {
		return nil, fmt.Errorf("events is not a non-empty array: %s", f)
	}
	out := make([]PhxEvent, len(raws))
	for i, r := range raws {
		var v struct {
			Seq    uint64  `json:"seq"`
			Cursor *uint64 `json:"cursor"`
		}
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("event %s: %w", r, err)
		}
		out[i] = PhxEvent{Seq: v.Seq, Cursor: v.Cursor, Raw: r, Push: len(raws), At: f.At}
	}
	return out, nil
}

// SocketURL is the node's /v1/socket/websocket URL with query (without '?').
func (n *Node) SocketURL(query string) string {
	u := strings.Replace(n.URL(), "http://", "ws://", 1) + "/v1/socket/websocket"
	if query != "" {
		u += "?" + query
	}
	return u
}

// DialSocket connects to /v1/socket with the raw query string; when the
// upgrade is refused it returns the status and body.
func (n *Node) DialSocket(query string, h http.Header) (*Phoenix, int, []byte, error) {
	return DialPhoenix(n.SocketURL(query), h)
}

// DialPhoenix connects to a socket URL.
func DialPhoenix(url string, h http.Header) (*Phoenix, int, []byte, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(url, h)
	if err != nil {
		if resp != nil {
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			return nil, resp.StatusCode, body.Bytes(), err
		}
		return nil, 0, nil, err
	}
	return &Phoenix{Conn: conn}, 101, nil, nil
}

// Socket connects with token ("" for none) and vsn=2.0.0 as phoenix.js
// does, and fails the test unless it upgrades.
func (n *Node) Socket(token string) *Phoenix {
	n.t.Helper()
	q := "vsn=2.0.0"
	if token != "" {
		q = "token=" + token + "&" + q
	}
	c, st, body, err := n.DialSocket(q, nil)
	if err != nil {
		n.t.Fatalf("socket: %d %s %v", st, body, err)
	}
	n.t.Cleanup(func() { c.Conn.Close() })
	return c
}

// NextRef returns a fresh ref, as phoenix.js counts them.
func (c *Phoenix) NextRef() string {
	c.ref++
	return strconv.Itoa(c.ref)
}

// Send writes one frame; nil refs are sent as null.
func (c *Phoenix) Send(joinRef, ref *string, topic, event string, payload any) error {
	b, err := json.Marshal([]any{joinRef, ref, topic, event, payload})
	if err != nil {
		return err
	}
	return c.SendRaw(b)
}

// SendRaw writes a text frame as is.
func (c *Phoenix) SendRaw(b []byte) error {
	c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.Conn.WriteMessage(websocket.TextMessage, b)
}

// Ptr returns a pointer to s (for refs).
func Ptr(s string) *string { return &s }

// Join sends a phx_join (join_ref = ref, as phoenix.js) and returns its ref.
func (c *Phoenix) Join(topic string, params any) (string, error) {
	ref := c.NextRef()
	return ref, c.Send(&ref, &ref, topic, "phx_join", params)
}

// JoinReply joins and waits for the reply.
func (c *Phoenix) JoinReply(topic string, params any, timeout time.Duration) (string, PhxFrame, error) {
	ref, err := c.Join(topic, params)
	if err != nil {
		return ref, PhxFrame{}, err
	}
	f, err := c.Reply(ref, timeout)
	return ref, f, err
}

// Heartbeat sends a heartbeat and returns its ref.
func (c *Phoenix) Heartbeat() (string, error) {
	ref := c.NextRef()
	return ref, c.Send(nil, &ref, "phoenix", "heartbeat", map[string]any{})
}

// Leave sends a phx_leave for the channel joined with joinRef.
func (c *Phoenix) Leave(topic, joinRef string) (string, error) {
	ref := c.NextRef()
	return ref, c.Send(&joinRef, &ref, topic, "phx_leave", map[string]any{})
}

// Reply waits for the phx_reply with ref.
func (c *Phoenix) Reply(ref string, timeout time.Duration) (PhxFrame, error) {
	return c.Await(timeout, func(f PhxFrame) bool {
		return f.Event == "phx_reply" && f.Ref != nil && *f.Ref == ref
	})
}

// Await returns the first frame, kept or new, that match accepts; the
// frames before it stay kept.
func (c *Phoenix) Await(timeout time.Duration, match func(PhxFrame) bool) (PhxFrame, error) {
	for i, f := range c.pending {
		if match(f) {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return f, nil
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.read(deadline)
		if err != nil {
			return PhxFrame{}, err
		}
		if match(f) {
			return f, nil
		}
		c.pending = append(c.pending, f)
	}
}

// Next returns the next frame: the oldest kept one, else a new one.
func (c *Phoenix) Next(timeout time.Duration) (PhxFrame, error) {
	return c.Await(timeout, func(PhxFrame) bool { return true })
}

// NextOn returns the next frame of topic.
func (c *Phoenix) NextOn(topic string, timeout time.Duration) (PhxFrame, error) {
	return c.Await(timeout, func(f PhxFrame) bool { return f.Topic == topic })
}

// Kept returns the frames read but not yet returned.
func (c *Phoenix) Kept() []PhxFrame { return c.pending }

// read reads one frame and checks that it is a 2.0.0 array: five
// elements, refs strings or null, topic and event strings, an object
// payload.
func (c *Phoenix) read(deadline time.Time) (PhxFrame, error) {
	if c.closed != nil {
		return PhxFrame{}, c.closed
	}
	c.Conn.SetReadDeadline(deadline)
	typ, data, err := c.Conn.ReadMessage()
	if err != nil {
		// A websocket connection cannot be read after any read error,
		// a timeout included: later waits fail at once.
		c.closed = err
		return PhxFrame{}, err
	}
	if typ != websocket.TextMessage {
		return PhxFrame{}, fmt.Errorf("frame type %d, want text", typ)
	}
	f, err := DecodePhxFrame(data)
	f.At = time.Now()
	return f, err
}

// DecodePhxFrame decodes and checks a server frame.
func DecodePhxFrame(data []byte) (PhxFrame, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil || len(elems) != 5 {
		return PhxFrame{}, fmt.Errorf("frame is not a 5-element array: %s", trunc(string(data), 300))
	}
	f := PhxFrame{Raw: data, Payload: elems[4]}
	if err := json.Unmarshal(elems[0], &f.JoinRef); err != nil {
		return f, fmt.Errorf("join_ref is neither string nor null: %s", data)
	}
	if err := json.Unmarshal(elems[1], &f.Ref); err != nil {
		return f, fmt.Errorf("ref is neither string nor null: %s", data)
	}
	if json.Unmarshal(elems[2], &f.Topic) != nil || json.Unmarshal(elems[3], &f.Event) != nil {
		return f, fmt.Errorf("topic or event is not a string: %s", data)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(elems[4], &obj); err != nil || obj == nil {
		return f, fmt.Errorf("payload is not an object: %s", data)
	}
	return f, nil
}

// CollectEvents reads the events pushes of topic until it has seen seq
// upto, checking that seqs are gap-free and ascending from `from`, that
// every event's cursor equals its seq, and that no push holds more than
// batch events. Frames of other topics are kept; any other frame on topic
// fails.
func (c *Phoenix) CollectEvents(topic string, from, upto uint64, batch int, timeout time.Duration) ([]PhxEvent, error) {
	var all []PhxEvent
	next := from
	deadline := time.Now().Add(timeout)
	for next <= upto {
		f, err := c.NextOn(topic, time.Until(deadline))
		if err != nil {
			return all, fmt.Errorf("waiting for seq %d of %s: %w", next, topic, err)
		}
		evs, err := f.Events()
		if err != nil {
			return all, err
		}
		if batch > 0 && len(evs) > batch {
			return all, fmt.Errorf("push of %d events, batch_size %d", len(evs), batch)
		}
		for _, ev := range evs {
			if ev.Seq != next {
				return all, fmt.Errorf("got seq %d, want %d (gap or duplicate)", ev.Seq, next)
			}
			if ev.Cursor == nil || *ev.Cursor != ev.Seq {
				return all, fmt.Errorf("event %d: cursor is not its seq: %s", ev.Seq, ev.Raw)
			}
			all = append(all, ev)
			next++
		}
	}
	return all, nil
}

// CloseCode reads until the server closes the connection and returns the
// close code and reason; frames before the close are kept.
func (c *Phoenix) CloseCode(timeout time.Duration) (int, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.read(deadline)
		if err == nil {
			c.pending = append(c.pending, f)
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text, nil
		}
		return 0, "", err
	}
}
