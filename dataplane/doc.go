// Package dataplane is Starcite's data plane as plain functions: where a
// session lives (placement), the Dragonboat NodeHost with this node's
// replicas (Raft), and the write and read paths that HTTP handlers and
// actors call (Plane).
//
// Nothing here is an actor: the request path stays off actor mailboxes.
// The raft actor starts replicas and probes readiness through Raft, the
// router actor keeps the routing view, the archiver drains Pending
// through Plane; the edge calls Plane for every request. The state
// machine itself is package fsm; durable cold storage is package archive.
package dataplane
