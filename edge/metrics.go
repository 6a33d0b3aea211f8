package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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

// observe counts and times one API request by route and final status.
func observe(route string, status int, start time.Time) {
	code := strconv.Itoa(status)
	httpRequests.WithLabelValues(route, code).Inc()
	httpSeconds.WithLabelValues(route, code).Observe(time.Since(start).Seconds())
}

// countRefresh records one JWKS fetch.
func countRefresh(trigger string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	jwksRefreshes.WithLabelValues(trigger, result).Inc()
}
