package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512},
}

// Header is a request header set.
type Header map[string]string

// Reply is a whole HTTP response: status, headers and body.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// TryRequest sends a request and reads the whole reply. A string or
// []byte body is sent as is, anything else JSON-encoded; a body gets
// Content-Type: application/json unless headers say otherwise (a header
// set to "" is removed).
func (n *Node) TryRequest(method, path string, body any, h Header) (Reply, error) {
	return n.TryRequestWith(client, method, path, body, h)
}

// TryRequestWith is TryRequest over the caller's client (its own pool of
// keep-alive connections, which a node counts against its cap).
func (n *Node) TryRequestWith(c *http.Client, method, path string, body any, h Header) (Reply, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return Reply{}, err
		}
		r = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, n.URL()+path, r)
	if err != nil {
		return Reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: out}, err
}

// TryDo is TryRequest for status and body.
func (n *Node) TryDo(method, path string, body any, h Header) (int, []byte, error) {
	r, err := n.TryRequest(method, path, body, h)
	return r.Status, r.Body, err
}

// Do is TryDo that fails the test on a transport error.
func (n *Node) Do(method, path string, body any, h Header) (int, []byte) {
	n.t.Helper()
	st, b, err := n.TryDo(method, path, body, h)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	return st, b
}

// JSON decodes a response body into a generic value.
func JSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, b)
	}
	return v
}

// CreateSession creates a session and fails the test unless it is 201.
func (n *Node) CreateSession(id string, extra map[string]any) {
	n.t.Helper()
	body := map[string]any{"id": id}
	for k, v := range extra {
		body[k] = v
	}
	if st, b := n.Do("POST", "/v1/sessions", body, nil); st != 201 {
		n.t.Fatalf("create %s: %d %s", id, st, b)
	}
}

// AppendResult is the body of a successful append.
type AppendResult struct {
	Seq     uint64 `json:"seq"`
	LastSeq uint64 `json:"last_seq"`
	Deduped bool   `json:"deduped"`
}

// Append appends one event and returns status and decoded reply.
func (n *Node) Append(session, producer string, producerSeq uint64, payload map[string]any) (int, AppendResult, []byte, error) {
	body := map[string]any{"type": "msg", "payload": payload, "producer_id": producer, "producer_seq": producerSeq}
	st, b, err := n.TryDo("POST", "/v1/sessions/"+session+"/append", body, nil)
	var r AppendResult
	if err == nil && st == 201 {
		err = json.Unmarshal(b, &r)
	}
	return st, r, b, err
}

// Events reads a session's whole log through the events route, page by
// page, returning each event's raw JSON.
func (n *Node) Events(session string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := uint64(0)
	for {
		st, b, err := n.TryDo("GET", fmt.Sprintf("/v1/sessions/%s/events?cursor=%d&limit=1000", session, cursor), nil, nil)
		if err != nil {
			return nil, err
		}
		if st != 200 {
			return nil, fmt.Errorf("events of %s from %d: %d %s", session, cursor, st, b)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor *uint64           `json:"next_cursor"`
			LastSeq    uint64            `json:"last_seq"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Events...)
		if page.NextCursor == nil || *page.NextCursor >= page.LastSeq {
			return all, nil
		}
		cursor = *page.NextCursor
	}
}

// Seq reads the seq of an event object.
func Seq(t testing.TB, ev json.RawMessage) uint64 {
	t.Helper()
	var v struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(ev, &v); err != nil {
		t.Fatalf("event %s: %v", ev, err)
	}
	return v.Seq
}

// OpsURL is the base URL of the node's ops listener.
func (n *Node) OpsURL() string { return "http://" + net.JoinHostPort(n.Host, strconv.Itoa(n.OpsPort)) }

// Probe GETs a path of the probes the node serves: /health/* on the ops
// listener when it has one, else on the API port; /metrics and pprof on
// the ops listener.
func (n *Node) Probe(path string) (int, []byte, error) {
	base := n.URL()
	if n.OpsPort != 0 {
		base = n.OpsURL()
	}
	resp, err := client.Get(base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Metric returns the value of a sample on /metrics, e.g.
// `starcite_tail_sockets` or `starcite_tail_closes_total{code="1013"}`;
// absent samples read as 0.
func (n *Node) Metric(sample string) float64 {
	n.t.Helper()
	st, body, err := n.Probe("/metrics")
	if err != nil || st != 200 {
		n.t.Fatalf("/metrics: %d %v", st, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}
