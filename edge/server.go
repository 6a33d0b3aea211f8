// Package edge is Starcite's HTTP surface (fasthttp): routing, request
// decoding and validation, authentication and authorization, the REST
// handlers, the WebSocket upgrade, and the error shapes of the API
// contract (docs/api.md).
//
// Handlers call package dataplane directly; the only actor on the request path
// is a TailSocket, started per WebSocket. The listener itself is owned by
// the http actor (package actors).
package edge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"starcite/dataplane"
	"starcite/fsm"
)

// MaxBodyBytes is the largest request body accepted (docs/decisions.md#d2).
const MaxBodyBytes = 8_000_000

// Config configures the HTTP edge.
type Config struct {
	Node      string // this node's name
	WriteNode bool   // this node is in STARCITE_WRITE_NODE_IDS (health "mode")
	// Tails runs upgraded tail connections.
	Tails TailServer
	// Sockets runs upgraded /v1/socket connections.
	Sockets SocketServer
	// Metrics serves /metrics on the ops listener (STARCITE_ENABLE_TELEMETRY).
	Metrics bool
	// Ops: an ops listener serves /health/*, so the API port does not
	// (docs/operations.md#ops-listener).
	Ops bool
	// MaxConns caps the client connections the node holds open at once,
	// HTTP and tail WebSockets together (STARCITE_MAX_CONNECTIONS); 0 = no
	// cap. See Server.overCap.
	MaxConns int
}

// metricsHandler serves the Prometheus exposition of every metric the
// packages registered.
var metricsHandler = fasthttpadaptor.NewFastHTTPHandler(promhttp.Handler())

// Authenticator turns a request into a principal
// (docs/api.md#authentication).
type Authenticator interface {
	Authenticate(ctx *fasthttp.RequestCtx) (Principal, *apiError)
	// AuthenticateSocket reads the token of a /v1/socket connect (present:
	// a non-empty token parameter); false refuses the connect.
	AuthenticateSocket(token string, present bool) (Principal, bool)
}

// DataPlane is what the handlers read and write: package dataplane's
// *Plane in a node, a fake in this package's tests.
type DataPlane interface {
	Create(ctx context.Context, c *fsm.CreateSession) error
	Append(ctx context.Context, a *fsm.AppendEvent) (fsm.AppendResult, error)
	// Session is the immutable part of a session (id, tenant, creator,
	// ...), possibly cached: what authorization needs.
	Session(ctx context.Context, id string) (fsm.SessionInfo, error)
	// SessionState is the whole session, last_seq and archived_seq
	// included, read through consensus.
	SessionState(ctx context.Context, id string) (fsm.SessionInfo, error)
	List(ctx context.Context, q fsm.ListQuery) ([]fsm.SessionInfo, error)
	// UpdateSession and SetArchived change the session header and return
	// the session as the change left it.
	UpdateSession(ctx context.Context, u *fsm.UpdateSession) (fsm.SessionInfo, error)
	SetArchived(ctx context.Context, a *fsm.SetArchived) (fsm.SessionInfo, error)
	Events(ctx context.Context, id string, after uint64, limit int, linearizable bool) (dataplane.Page, error)
	// Health is the node's readiness: "" when ready, else the reason,
	// and the consensus probe behind it.
	Health(writeNode bool) (notReady string, rd dataplane.Readiness)
}

// Server holds the handlers of the API.
type Server struct {
	cfg   Config
	plane DataPlane
	auth  Authenticator
	log   *slog.Logger
	conns atomic.Int64 // open client connections, tail WebSockets included
}

// NewServer returns the API over plane.
func NewServer(cfg Config, plane DataPlane, auth Authenticator, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, plane: plane, auth: auth, log: log}
	if cfg.Tails != nil {
		s.cfg.Tails = countedTails{cfg.Tails, s}
	}
	return s
}

var (
	httpConnections = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "starcite_http_connections",
		Help: "Client connections open on this node (HTTP and tail WebSockets).",
	})
	httpRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_http_refused_total",
		Help: "Requests refused with 503 too_many_connections (STARCITE_MAX_CONNECTIONS).",
	})
)

// errTooManyConnections answers a request that arrives on a connection
// beyond STARCITE_MAX_CONNECTIONS.
var errTooManyConnections = &apiError{503, "too_many_connections", "Node connection limit reached", nil}

// connOpened and connClosed keep the count of open client connections.
func (s *Server) connOpened() { s.conns.Add(1); httpConnections.Inc() }
func (s *Server) connClosed() { s.conns.Add(-1); httpConnections.Dec() }

// connState counts connections from accept to close. A WebSocket upgrade
// hands its connection over (hijacked): countedTails counts it from then
// on until the tail ends.
func (s *Server) connState(_ net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		s.connOpened()
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		s.connClosed()
	}
}

// overCap reports whether the node holds more connections than
// STARCITE_MAX_CONNECTIONS (the connection asking counts itself).
func (s *Server) overCap() bool {
	return s.cfg.MaxConns > 0 && s.conns.Load() > int64(s.cfg.MaxConns)
}

// countedTails counts upgraded tail connections while they run.
type countedTails struct {
	TailServer
	s *Server
}

func (c countedTails) Serve(conn *websocket.Conn, t Tail) {
	c.s.connOpened()
	defer c.s.connClosed()
	c.TailServer.Serve(conn, t)
}

// HTTPServer returns the fasthttp server running the API.
//
// With a connection cap (Config.MaxConns), a request that arrives while
// the node holds more connections than the cap is answered 503
// too_many_connections and its connection closed; health probes
// still answer, so probes see a busy node, not a dead one. Connections
// that never send a request are bounded by ReadTimeout, and beyond twice
// the cap fasthttp refuses them at accept (its plain-text 503), so a
// flood of silent connections cannot exhaust the node either.
func (s *Server) HTTPServer() *fasthttp.Server {
	concurrency := 0 // fasthttp's default
	if s.cfg.MaxConns > 0 {
		concurrency = 2 * s.cfg.MaxConns
	}
	return &fasthttp.Server{
		Handler:            s.Handle,
		ConnState:          s.connState,
		Concurrency:        concurrency,
		ErrorHandler:       s.requestError,
		MaxRequestBodySize: MaxBodyBytes,
		// The request line and headers must fit: long session ids are
		// addressed in the path and JWTs can be large. Buffers of idle
		// connections go back to the pool.
		ReadBufferSize:    32 << 10,
		ReduceMemoryUsage: true,
		// Bodies are JSON or refused with 415: never parse (or spool to
		// disk) a multipart upload.
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 30 * time.Second,
		IdleTimeout:                  120 * time.Second,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		TCPKeepalive:                 true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{s.log},
	}
}

// requestError answers requests fasthttp could not read.
func (s *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	setCORS(ctx)
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		drainUpload(ctx.Conn())
		writeError(ctx, errPayloadTooLarge)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.SetContentType(jsonContentType)
	ctx.SetBodyString(`{"error":"bad_request","message":"Malformed HTTP request"}`)
}

// drainUpload reads and discards what a client is still sending of a body
// that is too large, so that closing the connection after the 413 does not
// reset it and the client gets to read the response. Bounded in bytes and
// stopped as soon as the client pauses.
func drainUpload(c net.Conn) {
	const maxDrain = 64 << 20
	buf := make([]byte, 64<<10)
	for total := 0; total < maxDrain; {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		total += n
		if err != nil {
			break
		}
	}
	c.SetReadDeadline(time.Time{})
}

// Handle routes one request. Paths are matched by segment on the raw path:
// empty segments are dropped (a trailing slash is fine) and each segment is
// percent-decoded on its own, so /v1/sessions/a%2Fb/append addresses
// session "a/b" (docs/api.md#routing-and-paths). The API routes are counted
// and timed by route and final status (after a recovered panic too).
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	setCORS(ctx)
	if preflight(ctx) {
		return
	}
	var buf [6]string
	segs, ok := splitPath(ctx.Request.URI().PathOriginal(), buf[:0])
	if !ok {
		writeError(ctx, errNotFound)
		return
	}
	if s.overCap() && !((ctx.IsGet() || ctx.IsHead()) && probePath(segs)) {
		httpRefused.Inc()
		ctx.SetConnectionClose()
		writeError(ctx, errTooManyConnections)
		return
	}
	name, h, id := s.route(ctx, segs)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			// A crash answers the framework 500 shape and a log line
			// instead of a dropped connection.
			s.log.Error("handler panic", "method", string(ctx.Method()), "path", logPath(ctx), "panic", r)
			ctx.Response.Reset()
			setCORS(ctx)
			writeError(ctx, errInternalServer)
		}
		if name != "" {
			observe(name, ctx.Response.StatusCode(), start)
		}
	}()
	h(ctx, id)
}

// handler serves one route; id is the session of the path, if any.
type handler func(ctx *fasthttp.RequestCtx, id string)

// route resolves a request to its handler and, for the API routes, the
// route name metrics use ("" for health and not found).
func (s *Server) route(ctx *fasthttp.RequestCtx, segs []string) (string, handler, string) {
	get := ctx.IsGet() || ctx.IsHead()
	post := ctx.IsPost()
	switch {
	case len(segs) == 2 && segs[0] == "health" && segs[1] == "live" && get && !s.cfg.Ops:
		return "", live, ""
	case len(segs) == 2 && segs[0] == "health" && segs[1] == "ready" && get && !s.cfg.Ops:
		return "", s.ready, ""
	case len(segs) == 3 && segs[0] == "v1" && segs[1] == "socket" && segs[2] == "websocket":
		return "socket", s.socket, ""
	case len(segs) < 2 || segs[0] != "v1" || segs[1] != "sessions":
		return "", notFound, ""
	}
	rest := segs[2:]
	switch {
	case len(rest) == 0 && post:
		return "create", s.create, ""
	case len(rest) == 0 && get:
		return "list", s.list, ""
	case len(rest) == 1 && get:
		return "get", s.getSession, rest[0]
	case len(rest) == 1 && ctx.IsPatch():
		return "patch", s.patchSession, rest[0]
	case len(rest) == 2 && rest[1] == "archive" && post:
		return "archive", s.archiveSession, rest[0]
	case len(rest) == 2 && rest[1] == "unarchive" && post:
		return "unarchive", s.unarchiveSession, rest[0]
	case len(rest) == 2 && rest[1] == "append" && post:
		return "append", s.append, rest[0]
	case len(rest) == 2 && rest[1] == "events" && get:
		return "events", s.events, rest[0]
	case len(rest) == 2 && rest[1] == "tail" && get:
		return "tail", s.tail, rest[0]
	}
	return "", notFound, ""
}

func live(ctx *fasthttp.RequestCtx, _ string) {
	writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
}

func notFound(ctx *fasthttp.RequestCtx, _ string) { writeError(ctx, errNotFound) }

// probePath: /health/live and /health/ready, which answer even beyond
// the connection cap.
func probePath(segs []string) bool {
	return len(segs) == 2 && segs[0] == "health"
}

// splitPath splits a raw path into percent-decoded, non-empty segments.
func splitPath(raw []byte, segs []string) ([]string, bool) {
	for len(raw) > 0 {
		i := 0
		for i < len(raw) && raw[i] != '/' {
			i++
		}
		if i > 0 {
			seg, err := url.PathUnescape(string(raw[:i]))
			if err != nil {
				return nil, false
			}
			segs = append(segs, seg)
		}
		if i == len(raw) {
			break
		}
		raw = raw[i+1:]
	}
	return segs, true
}

// logPath is the request path and query as logs may show them: any
// access_token value is redacted (docs/api.md#token-redaction).
func logPath(ctx *fasthttp.RequestCtx) string {
	path := string(ctx.Request.URI().PathOriginal())
	if q := ctx.Request.URI().QueryString(); len(q) > 0 {
		path += "?" + string(redactQuery(q))
	}
	return path
}

// dataError maps an error of the data plane to its API error, logging
// what the client cannot be told.
func (s *Server) dataError(ctx *fasthttp.RequestCtx, err error) *apiError {
	e := apiErrorOf(err)
	if e.status >= 500 {
		s.log.Warn("request failed", "method", string(ctx.Method()), "path", logPath(ctx), "err", err)
	}
	return e
}

// newSessionID returns "ses_" and 16 URL-safe characters
// (docs/api.md#create).
func newSessionID() string {
	var b [12]byte
	rand.Read(b[:])
	return "ses_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// requestID identifies one HTTP request in the commands it proposes, so
// the state machine recognises our own retries (package fsm).
func requestID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	id := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	return max(id, 1)
}

func nowMicro() int64 { return time.Now().UnixMicro() }

type fasthttpLogger struct{ l *slog.Logger }

// Printf logs a fasthttp message. These can quote raw request bytes, so
// the message is scrubbed of tokens first (docs/api.md#token-redaction).
func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + scrubLog(fmt.Sprintf(format, args...)))
}
