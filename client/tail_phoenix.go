package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/coder/websocket"
)

// phoenixTail is the transport of the Phoenix Channels socket
// /v1/socket/websocket (docs/api.md#phoenix-channel-socket): one socket
// per connection, joined to the channel tail:<session_id>, whose events
// pushes carry the same event objects as the raw route.
type phoenixTail struct{}

// joinRef is the ref of the one join a socket sends.
const joinRef = "1"

// phoenixFrame is [join_ref, ref, topic, event, payload].
type phoenixFrame struct {
	joinRef, ref *string
	topic, event string
	payload      json.RawMessage
}

// decodePhoenixFrame parses one frame of the socket.
func decodePhoenixFrame(b []byte) (phoenixFrame, error) {
	var parts []json.RawMessage
	var f phoenixFrame
	if err := json.Unmarshal(b, &parts); err != nil || len(parts) != 5 {
		return f, fmt.Errorf("starcite: socket frame %.60q: not a five-element array", b)
	}
	if json.Unmarshal(parts[0], &f.joinRef) != nil || json.Unmarshal(parts[1], &f.ref) != nil ||
		json.Unmarshal(parts[2], &f.topic) != nil || json.Unmarshal(parts[3], &f.event) != nil {
		return f, fmt.Errorf("starcite: socket frame %.60q: bad refs, topic or event", b)
	}
	f.payload = parts[4]
	return f, nil
}

func encodePhoenixFrame(joinRef, ref *string, topic, event string, payload any) ([]byte, error) {
	return json.Marshal([]any{joinRef, ref, topic, event, payload})
}

// phoenixReply is the payload of a phx_reply.
type phoenixReply struct {
	Status   string `json:"status"`
	Response struct {
		Reason string `json:"reason"`
	} `json:"response"`
}

func (phoenixTail) open(ctx context.Context, c *Client, node *url.URL, r tailRequest) (tailConn, error) {
	q := url.Values{"vsn": {"2.0.0"}}
	if r.token != "" {
		q.Set("token", r.token)
	}
	ws, err := dialSocket(ctx, c, endpoint(node, q, "v1", "socket", "websocket"), nil)
	var refused *APIError
	if errors.As(err, &refused) && refused.Status == 403 {
		// The socket refuses a connect with a bare 403, whatever the
		// reason; with our own vsn and no access_token that is the token.
		return nil, &APIError{Status: 403, Code: ErrUnauthorized.Code, Message: "socket connect refused", Body: refused.Body}
	}
	if err != nil {
		return nil, err
	}
	conn := &phoenixConn{ws: ws, topic: "tail:" + r.sessionID, done: make(chan struct{}), replies: make(chan string, 4)}
	if err := conn.join(ctx, c, r); err != nil {
		ws.CloseNow()
		return nil, err
	}
	go keepAlive(ws, conn.done, r.pingEvery, conn.heartbeat)
	return conn, nil
}

type phoenixConn struct {
	ws      *websocket.Conn
	topic   string
	done    chan struct{}
	refs    atomic.Uint64 // heartbeat refs (the join is joinRef)
	replies chan string   // refs of heartbeat replies, from next to heartbeat
}

// join sends the channel's join and waits for its reply (the server
// answers within 8 s; the client's timeout bounds the wait).
func (c *phoenixConn) join(ctx context.Context, cl *Client, r tailRequest) error {
	ref := joinRef
	frame, err := encodePhoenixFrame(&ref, &ref, c.topic, "phx_join",
		map[string]any{"cursor": r.cursor, "batch_size": r.batchSize})
	if err != nil {
		return err
	}
	jctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	if err := c.ws.Write(jctx, websocket.MessageText, frame); err != nil {
		return err
	}
	for {
		b, err := readFrame(jctx, c.ws)
		if err != nil {
			return err
		}
		f, err := decodePhoenixFrame(b)
		if err != nil {
			return err
		}
		if f.event != "phx_reply" || f.topic != c.topic || f.ref == nil || *f.ref != joinRef {
			continue
		}
		var reply phoenixReply
		if err := json.Unmarshal(f.payload, &reply); err != nil {
			return fmt.Errorf("starcite: join reply %s: %w", f.payload, err)
		}
		switch {
		case reply.Status == "ok":
			return nil
		case reply.Response.Reason == "token_expired":
			return &CloseError{Code: 4001, Reason: "token_expired"}
		}
		return joinRefusal(reply.Response.Reason, f.payload)
	}
}

// joinRefusal is the *APIError of a join's error reason, which is an API
// error code (docs/api.md#joining-a-tail), with its REST status.
func joinRefusal(reason string, body []byte) *APIError {
	e := &APIError{Code: reason, Message: "join refused", Body: body}
	for _, s := range sentinels {
		if s.Code == reason {
			e.Status = s.Status
		}
	}
	return e
}

// heartbeat sends a heartbeat and waits for its reply (next delivers it).
func (c *phoenixConn) heartbeat(ctx context.Context) error {
	ref := strconv.FormatUint(c.refs.Add(1)+1, 10) // never joinRef
	frame, err := encodePhoenixFrame(nil, &ref, "phoenix", "heartbeat", struct{}{})
	if err != nil {
		return err
	}
	if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
		return err
	}
	for {
		select {
		case got := <-c.replies:
			if got == ref {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *phoenixConn) next(ctx context.Context) ([]Event, error) {
	for {
		b, err := readFrame(ctx, c.ws)
		if err != nil {
			return nil, err
		}
		f, err := decodePhoenixFrame(b)
		if err != nil {
			return nil, err
		}
		if f.topic == "phoenix" && f.event == "phx_reply" && f.ref != nil {
			select {
			case c.replies <- *f.ref:
			default: // a late reply nobody waits for
			}
			continue
		}
		if f.topic != c.topic || f.joinRef == nil || *f.joinRef != joinRef {
			continue
		}
		switch f.event {
		case "events":
			var p struct {
				Events []json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(f.payload, &p); err != nil {
				return nil, fmt.Errorf("starcite: events push: %w", err)
			}
			events := make([]Event, len(p.Events))
			for i, r := range p.Events {
				if events[i], err = decodeEvent(r); err != nil {
					return nil, err
				}
			}
			return events, nil
		case "token_expired":
			return nil, &CloseError{Code: 4001, Reason: "token_expired"}
		case "phx_error":
			// The channel failed in a way a rejoin repairs — among others
			// a replay that cannot be gap-free now, which the raw route
			// closes with 1011: reconnect, and report it as 1011 when
			// the attempts run out.
			return nil, &CloseError{Code: 1011, Reason: "phx_error"}
		case "phx_close":
			return nil, errors.New("starcite: the server closed the tail channel")
		}
		// "gap": the join's cursor is past the session's last seq and the
		// channel goes on from there; Tail drops what it already has.
	}
}

func (c *phoenixConn) close() {
	close(c.done)
	c.ws.CloseNow()
}
