// Package actors holds Starcite's long-lived Ergo actors: each owns one
// piece of state that changes over time and is started by a supervisor of
// package sup.
//
//	discovery  makes the configured or DNS-listed peers routable
//	observer   tracks the write nodes' liveness and drain marks; one peer
//	           watcher per write node does the dialing and pinging
//	ops        answers `starcite ops` and `starcite shell` (a worker pool),
//	           closes a drained node's tails and hands its leaderships away
//	raft       starts this node's replicas, restarts stopped ones, keeps
//	           the readiness probe fresh, forwards leader changes
//	router     owns the routing view (leader hints) the request path reads;
//	           its pool workers serve requests forwarded by other nodes
//	fanout     delivers committed events to the tail sockets of their
//	           session, and committed header changes to lifecycle
//	           channels, on this node and through peers' fan-outs
//	archiver   copies committed events to the archive and acknowledges
//	           them, so replicas evict them from their hot tier
//	tailsocket the tail engine, one per subscriber: replay from the
//	           cursor, then live; serves a raw tail WebSocket or one
//	           tail:<id> channel of a channel socket
//	channelsocket one per /v1/socket connection: routes its Phoenix
//	           frames, answers heartbeats, starts one actor per joined
//	           channel (tailsocket, lifecyclechannel) as its children
//	lifecyclechannel one per joined lifecycle topic: pushes its tenant's
//	           session lifecycle events
//	http       owns the fasthttp listener of package edge
//
// Per-request work is not done here: HTTP handlers call package dataplane
// directly and only state changes travel as messages.
package actors
