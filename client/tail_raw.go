package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coder/websocket"
)

// rawTail is the transport of the raw WebSocket route
// GET /v1/sessions/{id}/tail?cursor=N&batch_size=M (docs/api.md#tail):
// text frames holding one event object (batch_size 1) or an array of them.
type rawTail struct{}

func (rawTail) open(ctx context.Context, c *Client, node *url.URL, r tailRequest) (tailConn, error) {
	q := url.Values{"cursor": {strconv.FormatUint(r.cursor, 10)}, "batch_size": {strconv.Itoa(r.batchSize)}}
	h := http.Header{}
	if r.token != "" {
		h.Set("Authorization", "Bearer "+r.token)
	}
	ws, err := dialSocket(ctx, c, endpoint(node, q, "v1", "sessions", r.sessionID, "tail"), h)
	if err != nil {
		return nil, err
	}
	conn := &rawConn{ws: ws, done: make(chan struct{})}
	// The WebSocket library answers the server's pings while next reads;
	// the client's own pings find a dead server.
	go keepAlive(ws, conn.done, r.pingEvery, ws.Ping)
	return conn, nil
}

type rawConn struct {
	ws   *websocket.Conn
	done chan struct{}
}

func (c *rawConn) next(ctx context.Context) ([]Event, error) {
	frame, err := readFrame(ctx, c.ws)
	if err != nil {
		return nil, err
	}
	return decodeFrame(frame)
}

func (c *rawConn) close() {
	close(c.done)
	c.ws.CloseNow()
}

// decodeFrame returns the events of a tail frame: one event object, or an
// array of them (batch_size > 1).
func decodeFrame(frame []byte) ([]Event, error) {
	frame = bytes.TrimSpace(frame)
	var raws []json.RawMessage
	if len(frame) > 0 && frame[0] == '[' {
		if err := json.Unmarshal(frame, &raws); err != nil {
			return nil, fmt.Errorf("starcite: decoding tail frame: %w", err)
		}
	} else {
		raws = []json.RawMessage{frame}
	}
	events := make([]Event, len(raws))
	for i, r := range raws {
		var err error
		if events[i], err = decodeEvent(r); err != nil {
			return nil, err
		}
	}
	return events, nil
}
