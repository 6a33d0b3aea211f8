package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
)

// maxFrame bounds one frame read from the server: a batch frame is at
// most 1 MiB, a single event up to the 8 MB body limit plus its fields.
const maxFrame = 16 << 20

// dialSocket opens the WebSocket of a tail transport; a refused handshake
// is an *APIError with the status and body of the refusal.
func dialSocket(ctx context.Context, c *Client, u *url.URL, h http.Header) (*websocket.Conn, error) {
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
	return ws, nil
}

// readFrame reads the next text frame; a close by the server is a
// *CloseError.
func readFrame(ctx context.Context, ws *websocket.Conn) ([]byte, error) {
	_, frame, err := ws.Read(ctx)
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return nil, &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	return frame, err
}

// keepAlive runs probe every interval until done is closed, and drops the
// connection when a probe fails, so that a tail behind a dead node or a
// cut network reconnects instead of waiting forever. A probe is answered
// only while the tail reads (the consumer is ready for events).
func keepAlive(ws *websocket.Conn, done <-chan struct{}, every time.Duration, probe func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := probe(ctx)
			cancel()
			if err != nil {
				ws.CloseNow()
				return
			}
		}
	}
}
