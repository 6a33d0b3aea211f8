package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/valyala/fasthttp"
)

// Request metrics of the API routes, labelled by route and status code
// only: never by session or tenant, whose numbers are unbounded.
var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_http_requests_total",
		Help: "API requests by route (create, list, get, append, events, tail) and status code (101 for an accepted tail).",
	}, []string{"route", "code"})
	httpSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "starcite_http_request_duration_seconds",
		Help: "API request latency by route and status code; for a tail, the time to the upgrade.",
		// 0.25 ms .. 8 s: appends wait for a quorum commit, a failover for
		// the write path's retries.
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
	}, []string{"route", "code"})
	jwksRefreshes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_jwks_refreshes_total",
		Help: "JWKS fetches by trigger (scheduled, unknown_kid) and result (ok, error).",
	}, []string{"trigger", "result"})
)

// instrument counts and times the API routes around h, so the status
// recorded is the final one (after panic recovery, upgrades, refusals).
func instrument(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		route := routeOf(ctx)
		if route == "" {
			h(ctx)
			return
		}
		start := time.Now()
		h(ctx)
		code := strconv.Itoa(ctx.Response.StatusCode())
		httpRequests.WithLabelValues(route, code).Inc()
		httpSeconds.WithLabelValues(route, code).Observe(time.Since(start).Seconds())
	}
}

// routeOf names the API route of a request ("" for health, metrics and
// unknown paths). It splits the raw path without decoding or allocating:
// a session id holding '/' arrives as %2F and stays one segment.
func routeOf(ctx *fasthttp.RequestCtx) string {
	var segs [5][]byte
	n := 0
	path := ctx.Request.URI().PathOriginal()
	for i := 0; i < len(path); {
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		if j > i {
			if n == len(segs) {
				return ""
			}
			segs[n] = path[i:j]
			n++
		}
		i = j + 1
	}
	if n < 2 || string(segs[0]) != "v1" || string(segs[1]) != "sessions" {
		return ""
	}
	get := ctx.IsGet() || ctx.IsHead()
	post := ctx.IsPost()
	switch {
	case n == 2 && post:
		return "create"
	case n == 2 && get:
		return "list"
	case n == 3 && get:
		return "get"
	case n == 4 && post && string(segs[3]) == "append":
		return "append"
	case n == 4 && get && string(segs[3]) == "events":
		return "events"
	case n == 4 && get && string(segs[3]) == "tail":
		return "tail"
	}
	return ""
}

// countRefresh records one JWKS fetch.
func countRefresh(forced bool, err error) {
	trigger, result := "scheduled", "ok"
	if forced {
		trigger = "unknown_kid"
	}
	if err != nil {
		result = "error"
	}
	jwksRefreshes.WithLabelValues(trigger, result).Inc()
}
