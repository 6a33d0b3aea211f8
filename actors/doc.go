// Package actors holds Starcite's long-lived Ergo actors: each owns one
// piece of state that changes over time and is started by a supervisor of
// package sup.
//
//	raft       starts this node's replicas, restarts stopped ones, keeps
//	           the readiness probe fresh, forwards leader changes
//	router     owns the routing view (leader hints) the request path reads
//	http       owns the fasthttp listener of package edge
//
// Per-request work is not done here: HTTP handlers call package dataplane
// directly and only state changes travel as messages.
package actors
