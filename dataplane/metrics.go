package dataplane

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// current is the process's Raft, read by the gauges below (one NodeHost
// per process).
var current atomic.Pointer[Raft]

func hot(f func(r *Raft) int64) func() float64 {
	return func() float64 {
		if r := current.Load(); r != nil {
			return float64(f(r))
		}
		return 0
	}
}

var (
	batchSizes = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "starcite_append_batch_events",
		Help:    "Appends per Raft entry (group commit of concurrent appends to one group).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "starcite_archive_pending_bytes",
		Help: "Bytes of committed events not yet archived (the hot tier), over all local replicas.",
	}, hot((*Raft).HotBytes))
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "starcite_archive_pending_rows",
		Help: "Committed events not yet archived (the hot tier), over all local replicas.",
	}, hot((*Raft).HotEvents))
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "starcite_producer_cursor_bytes",
		Help: "Estimated memory of the producer cursors of all local replicas; counts toward STARCITE_PENDING_MAX_SIZE.",
	}, hot((*Raft).ProducerBytes))
)
