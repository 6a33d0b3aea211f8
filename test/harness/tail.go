package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TailEvent is an event received on a tail socket.
type TailEvent struct {
	Seq  uint64
	Raw  json.RawMessage
	Kind string // "object" (batch_size 1) or "array" (batch_size > 1)
	Size int    // events in the frame that carried it
}

// TailClient is a real WebSocket client of the tail route.
type TailClient struct {
	t    testing.TB
	Conn *websocket.Conn
	Last uint64 // seq of the last event received
}

// DialTail opens a tail; query is the raw query string (cursor=..&...).
// It returns the HTTP status and body when the upgrade is refused.
func (n *Node) DialTail(session, query string, h http.Header) (*TailClient, int, []byte, error) {
	u := strings.Replace(n.URL(), "http://", "ws://", 1) + "/v1/sessions/" + session + "/tail"
	if query != "" {
		u += "?" + query
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(u, h)
	if err != nil {
		if resp != nil {
			body := make([]byte, 4096)
			k, _ := resp.Body.Read(body)
			return nil, resp.StatusCode, body[:k], err
		}
		return nil, 0, nil, err
	}
	return &TailClient{t: n.t, Conn: conn}, 101, nil, nil
}

// Tail opens a tail and fails the test unless it upgrades.
func (n *Node) Tail(session string, cursor uint64, batch int) *TailClient {
	n.t.Helper()
	c, st, body, err := n.DialTail(session, fmt.Sprintf("cursor=%d&batch_size=%d", cursor, batch), nil)
	if err != nil {
		n.t.Fatalf("tail %s: %d %s %v", session, st, body, err)
	}
	n.t.Cleanup(func() { c.Conn.Close() })
	return c
}

// Next reads one frame and returns its events.
func (c *TailClient) Next(timeout time.Duration) ([]TailEvent, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	typ, data, err := c.Conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("frame type %d, want text", typ)
	}
	var raws []json.RawMessage
	kind := "object"
	if len(data) > 0 && data[0] == '[' {
		kind = "array"
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, fmt.Errorf("frame %s: %w", data, err)
		}
	} else {
		raws = []json.RawMessage{data}
	}
	evs := make([]TailEvent, len(raws))
	for i, r := range raws {
		var v struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("event %s: %w", r, err)
		}
		evs[i] = TailEvent{Seq: v.Seq, Raw: r, Kind: kind, Size: len(raws)}
		c.Last = v.Seq
	}
	return evs, nil
}

// Collect reads until it has seen seq `upto`, checking that seqs are
// ascending and gap-free from `from`; it returns the events.
func (c *TailClient) Collect(from, upto uint64, timeout time.Duration) ([]TailEvent, error) {
	var all []TailEvent
	next := from
	deadline := time.Now().Add(timeout)
	for next <= upto {
		left := time.Until(deadline)
		if left <= 0 {
			return all, fmt.Errorf("timed out at seq %d waiting for %d", next, upto)
		}
		evs, err := c.Next(left)
		if err != nil {
			return all, fmt.Errorf("waiting for seq %d: %w", next, err)
		}
		for _, ev := range evs {
			if ev.Seq != next {
				return all, fmt.Errorf("got seq %d, want %d (gap or duplicate)", ev.Seq, next)
			}
			all = append(all, ev)
			next++
		}
	}
	return all, nil
}

// CloseCode waits for the server to close the socket and returns the
// close code and reason.
func (c *TailClient) CloseCode(timeout time.Duration) (int, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.Conn.SetReadDeadline(deadline)
		_, _, err := c.Conn.ReadMessage()
		if err == nil {
			continue // frames before the close
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text, nil
		}
		return 0, "", err
	}
}
