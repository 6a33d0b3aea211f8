package bench

// The HTTP and WebSocket client side of `starcite bench`: keep-alive
// fasthttp clients per node, append bodies built without reflection,
// error classification, and the WebSocket dialer of the tail workloads.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// requestTimeout bounds one bench request; the server's own outer limit
// is 10 s, so a reply always comes first unless the server is stuck.
const benchRequestTimeout = 15 * time.Second

// benchClient talks to the target nodes.
type benchClient struct {
	urls  []string
	hosts []*fasthttp.HostClient
	auth  string // "Bearer <token>" or "" (none mode)
	// epoch is the origin of the timestamps carried in payloads: both
	// ends of a tail measurement are in this process, so monotonic time
	// since epoch is comparable.
	epoch time.Time
}

func newBenchClient(urls []string, token string, maxConnsPerNode int) (*benchClient, error) {
	c := &benchClient{urls: urls, epoch: time.Now()}
	if token != "" {
		c.auth = "Bearer " + token
	}
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "http" || pu.Host == "" {
			return nil, fmt.Errorf("node %q: expected http://host:port", u)
		}
		c.hosts = append(c.hosts, &fasthttp.HostClient{
			Addr:                          pu.Host,
			MaxConns:                      maxConnsPerNode,
			ReadTimeout:                   benchRequestTimeout,
			WriteTimeout:                  benchRequestTimeout,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			MaxConnWaitTimeout:            benchRequestTimeout,
		})
	}
	return c, nil
}

func (c *benchClient) close() {
	for _, h := range c.hosts {
		h.CloseIdleConnections()
	}
}

// sinceEpoch is the bench clock carried in payloads.
func (c *benchClient) sinceEpoch() int64 { return int64(time.Since(c.epoch)) }

// do sends req to node i and classifies the outcome: "" for the wanted
// status, else an error class for the error table.
func (c *benchClient) do(i int, req *fasthttp.Request, resp *fasthttp.Response, want int) string {
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	err := c.hosts[i].DoTimeout(req, resp, benchRequestTimeout)
	if err != nil {
		return transportClass(err)
	}
	if resp.StatusCode() != want {
		return replyClass(resp.StatusCode(), resp.Body())
	}
	return ""
}

// transportClass names a request that got no reply.
func transportClass(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "transport: timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "transport: connection closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "transport: no free connections"
	case strings.Contains(msg, "connection refused"):
		return "transport: connection refused"
	case strings.Contains(msg, "connection reset"):
		return "transport: connection reset"
	case strings.Contains(msg, "broken pipe"):
		return "transport: broken pipe"
	}
	if len(msg) > 60 {
		msg = msg[:60] + "…"
	}
	return "transport: " + msg
}

// replyClass names an HTTP error reply by status and error code.
func replyClass(status int, body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return strconv.Itoa(status) + " " + e.Error
	}
	return strconv.Itoa(status)
}

// appendURI is the append endpoint of a session on node i.
func (c *benchClient) appendURI(i int, session string) string {
	return c.urls[i] + "/v1/sessions/" + url.PathEscape(session) + "/append"
}

// appendBody appends an append request body to dst: type "bench", a
// payload object of payloadBytes bytes (when payloadBytes is at least
// the size of its fixed fields) carrying the bench clock t and event
// index, and producer sequencing.
func appendBody(dst []byte, producer string, seq uint64, t, index int64, payloadBytes int) []byte {
	dst = append(dst, `{"type":"bench","producer_id":"`...)
	dst = append(dst, producer...)
	dst = append(dst, `","producer_seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"payload":`...)
	start := len(dst)
	dst = append(dst, `{"bench_t":`...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, `,"bench_i":`...)
	dst = strconv.AppendInt(dst, index, 10)
	dst = append(dst, `,"pad":"`...)
	// The payload object is padded to payloadBytes: what is left after
	// the fields above and the closing `"}`.
	for pad := payloadBytes - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}}`...)
}

// appendOnce sends one append and returns its error class ("" on 201)
// and whether the server reported a dedupe.
func (c *benchClient) appendOnce(i int, uri string, body []byte, req *fasthttp.Request, resp *fasthttp.Response) (class string, deduped bool) {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	if class = c.do(i, req, resp, fasthttp.StatusCreated); class != "" {
		return class, false
	}
	return "", bytes.Contains(resp.Body(), []byte(`"deduped":true`))
}

// createSession creates a session through node i.
func (c *benchClient) createSession(i int, id string) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	body, _ := json.Marshal(map[string]any{"id": id, "title": "bench", "metadata": map[string]string{"bench": "1"}})
	req.SetRequestURI(c.urls[i] + "/v1/sessions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	if class := c.do(i, req, resp, fasthttp.StatusCreated); class != "" {
		return fmt.Errorf("create session %s on %s: %s: %s", id, c.urls[i], class, trimBody(resp.Body()))
	}
	return nil
}

// createSessions creates ids, spread over the nodes, a few at a time.
func (c *benchClient) createSessions(ctx context.Context, ids []string) error {
	const parallel = 16
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, parallel)
	for k, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- c.createSession(k%len(c.urls), id)
		}()
	}
	for range parallel {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sessionState is the part of GET /v1/sessions/{id} the bench reads.
type sessionState struct {
	LastSeq     int64 `json:"last_seq"`
	ArchivedSeq int64 `json:"archived_seq"`
}

func (c *benchClient) session(i int, id string) (sessionState, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.urls[i] + "/v1/sessions/" + url.PathEscape(id))
	var st sessionState
	if class := c.do(i, req, resp, fasthttp.StatusOK); class != "" {
		return st, fmt.Errorf("get session %s on %s: %s: %s", id, c.urls[i], class, trimBody(resp.Body()))
	}
	if err := json.Unmarshal(resp.Body(), &st); err != nil {
		return st, fmt.Errorf("get session %s: %w", id, err)
	}
	return st, nil
}

func trimBody(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// dialTail opens a tail WebSocket on node i.
func (c *benchClient) dialTail(ctx context.Context, i int, session string, cursor int64, batch int) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(c.urls[i], "http") + "/v1/sessions/" + url.PathEscape(session) +
		"/tail?cursor=" + strconv.FormatInt(cursor, 10) + "&batch_size=" + strconv.Itoa(batch)
	h := http.Header{}
	if c.auth != "" {
		h.Set("Authorization", c.auth)
	}
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   64 << 10,
		WriteBufferSize:  1 << 10,
		NetDialContext:   (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	conn, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("tail %s on %s: HTTP %d: %w", session, c.urls[i], resp.StatusCode, err)
		}
		return nil, fmt.Errorf("tail %s on %s: %w", session, c.urls[i], err)
	}
	return conn, nil
}

// frameField returns the integer after the first `"<key>":` in frame at
// or after from, and the offset just past it (-1 when absent). Frames
// are the server's compact JSON; the bench's own keys never appear in
// other positions of its events.
func frameField(frame []byte, key string, from int) (int64, int) {
	i := bytes.Index(frame[from:], []byte(key))
	if i < 0 {
		return 0, -1
	}
	i += from + len(key)
	j := i
	for j < len(frame) && (frame[j] == '-' || (frame[j] >= '0' && frame[j] <= '9')) {
		j++
	}
	v, err := strconv.ParseInt(string(frame[i:j]), 10, 64)
	if err != nil {
		return 0, -1
	}
	return v, j
}

// frameLastSeq counts the events of a frame (one object or an array)
// and returns the seq of the last one.
func frameLastSeq(frame []byte) (events int, last int64) {
	const key = `"seq":`
	for off := 0; ; {
		v, next := frameField(frame, key, off)
		if next < 0 {
			return events, last
		}
		events++
		last, off = v, next
	}
}
