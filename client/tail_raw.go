package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// maxFrame bounds one frame read from the server: a batch frame is at
// most 1 MiB, a single event up to the 8 MB body limit plus its fields.
const maxFrame = 16 << 20

// rawTail is the transport of the raw WebSocket route
// GET /v1/sessions/{id}/tail?cursor=N&batch_size=M: text frames holding
// one event object (batch_size 1) or an array of them.
type rawTail struct{}

func (rawTail) open(ctx context.Context, c *Client, node *url.URL, r tailRequest) (tailConn, error) {
	q := url.Values{"cursor": {strconv.FormatUint(r.cursor, 10)}, "batch_size": {strconv.Itoa(r.batchSize)}}
	u := endpoint(node, q, "v1", "sessions", r.sessionID, "tail")
	h := http.Header{}
	if r.token != "" {
		h.Set("Authorization", "Bearer "+r.token)
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h,
		CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(resp.Body)
			return nil, apiError(resp.StatusCode, body)
		}
		return nil, err
	}
	ws.SetReadLimit(maxFrame)
	conn := &rawConn{ws: ws, done: make(chan struct{})}
	go conn.keepAlive(r.pingEvery)
	return conn, nil
}

type rawConn struct {
	ws   *websocket.Conn
	done chan struct{}
}

func (c *rawConn) next(ctx context.Context) ([]Event, error) {
	_, frame, err := c.ws.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return nil, &CloseError{Code: int(ce.Code), Reason: ce.Reason}
		}
		return nil, err
	}
	return decodeFrame(frame)
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

// keepAlive pings the server and drops a connection whose peer does not
// answer in time, so a tail behind a dead node or a cut network
// reconnects instead of waiting forever. (The server pings too; the
// WebSocket library answers those while next reads.)
func (c *rawConn) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.ws.CloseNow()
				return
			}
		}
	}
}

func (c *rawConn) close() {
	close(c.done)
	c.ws.CloseNow()
}
