package actors

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the actors, exposed on /metrics.
var (
	tailSockets = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "starcite_tail_sockets",
		Help: "Open tails, raw routes and tail channels (live TailSocket actors), on this node.",
	})
	tailSubscriptions = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "starcite_tail_subscriptions",
		Help: "TailSockets registered with the cursor fan-out.",
	})
	cursorUpdates = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_cursor_updates_total",
		Help: "Cursor updates delivered by the fan-out to TailSockets.",
	})
	tailCloses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_tail_closes_total",
		Help: "Tail sockets closed by the server, by close code.",
	}, []string{"code"})
	leaderChanges = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_raft_leader_changes_total",
		Help: "Leader changes reported by the local replicas.",
	})
	groupLeader = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "starcite_raft_group_leader",
		Help: "1 for each local group this node leads, 0 for the others.",
	}, []string{"group"})
	forwardedRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_forwarded_requests_total",
		Help: "Requests other nodes forwarded to this node's replicas, by kind.",
	}, []string{"kind"})
	channelSockets = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "starcite_socket_connections",
		Help: "Open /v1/socket connections (live ChannelSocket actors) on this node.",
	})
	socketCloses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_socket_closes_total",
		Help: "/v1/socket connections closed by the server, by close code.",
	}, []string{"code"})
	channelEnds = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "starcite_channel_ends_total",
		Help: "Channels of /v1/socket ended, by reason (left, replaced, token_expired, unavailable, slow_consumer, crashed).",
	}, []string{"reason"})
	tailReplayed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_tail_replayed_events_total",
		Help: "Events sent to tail sockets from replay (hot tier and archive).",
	})
)
