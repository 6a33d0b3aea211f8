package edge

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// The ops listener (docs/operations.md#ops-listener): health probes,
// metrics and Go's profiler on a port of their own, unauthenticated, for
// a private network. When it is configured, the API port no longer serves
// /health/*; /metrics and pprof are never served there.

// OpsServer returns the fasthttp server of the ops listener. With pprof it
// also serves Go's profiler under /debug/pprof/; writeTimeout bounds a
// response, and so how long a profile may run.
func (s *Server) OpsServer(pprof bool, writeTimeout time.Duration) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               func(ctx *fasthttp.RequestCtx) { s.handleOps(ctx, pprof) },
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           2 * time.Minute,
		MaxRequestBodySize:    4 << 10,
		NoDefaultServerHeader: true,
		Logger:                fasthttpLogger{s.log},
	}
}

var pprofPrefix = []byte("/debug/pprof/")

func (s *Server) handleOps(ctx *fasthttp.RequestCtx, pprof bool) {
	get := ctx.IsGet() || ctx.IsHead()
	switch path := string(ctx.Path()); {
	case path == "/health/live" && get:
		live(ctx, "")
	case path == "/health/ready" && get:
		s.ready(ctx, "")
	case path == "/metrics" && get && s.cfg.Metrics:
		metricsHandler(ctx)
	case pprof && bytes.HasPrefix(ctx.Path(), pprofPrefix):
		pprofhandler.PprofHandler(ctx)
	default:
		writeError(ctx, errNotFound)
	}
}
