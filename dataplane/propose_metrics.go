package dataplane

import (
	"context"
	"errors"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Raft proposals through the local replicas, one sample per attempt: the
// retries of the write path show up as several attempts.
var (
	proposals = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_raft_proposals_total",
		Help: "Raft proposals made through a local replica, by result (ok, timeout, dropped, busy, closed, error).",
	}, []string{"result"})
	proposalSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "starcite_raft_proposal_duration_seconds",
		Help:    "Time from proposing on a local replica to the commit being applied there, by result.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
	}, []string{"result"})
)

// observeProposal records one proposal attempt.
func observeProposal(start time.Time, err error) {
	r := proposalResult(err)
	proposals.WithLabelValues(r).Inc()
	proposalSeconds.WithLabelValues(r).Observe(time.Since(start).Seconds())
}

// proposalResult is a small, fixed set of labels: whether the attempt
// committed, may have committed (timeout), or certainly did not.
func proposalResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, dragonboat.ErrShardNotReady) || errors.Is(err, dragonboat.ErrAborted):
		return "dropped" // no leader yet, or the leader changed under it
	case errors.Is(err, dragonboat.ErrSystemBusy):
		return "busy"
	case errors.Is(err, dragonboat.ErrClosed) || errors.Is(err, dragonboat.ErrShardClosed) ||
		errors.Is(err, dragonboat.ErrShardNotFound) || errors.Is(err, dragonboat.ErrShardNotInitialized):
		return "closed"
	default:
		return "error"
	}
}
