// Package fsm is Starcite's replicated state machine: the sessions of one
// Raft group, their hot (not yet archived) events and the producer cursors
// that make appends idempotent.
//
// The core (State) is pure and deterministic: it is fed encoded commands in
// log order and returns encoded results, with no clocks, no I/O and no
// goroutines. Everything time- or node-dependent is decided by the proposer
// and carried inside the command (the commit timestamp, the request id that
// recognises our own retries, the dedupe hash). Every replica that applies
// the same log therefore holds byte-identical state, which the tests check
// by replaying logs and round-tripping snapshots.
//
// Commands (docs/api.md#data-model; the order of the producer rules is
// docs/decisions.md#d4):
//
//	create_session  register a session; a retry of the same request is not a conflict
//	append_event    producer dedupe, expected_seq, seq assignment
//	append_events   a batch of appends committed as one Raft entry (group commit)
//	ack_archived    the archive holds events up to a seq: evict them from the hot tier
//	update_session  PATCH: title, shallow metadata merge, compare-and-set on the version
//	set_archived    archive / unarchive: the list-visibility flag
//
// A session is its Header (header.go: the descriptive record, encoded
// whole by AppendHeader), its counters and producer cursors, and its hot
// events; snapshots write the first three before the events, so a session
// without hot events is fully described by them. Applied commands report
// the events and header changes they committed (Output) to the Notifier.
//
// StateMachine adapts State to Dragonboat's IConcurrentStateMachine and
// reports committed events to a Notifier (the cursor fan-out). Neighbours:
// package dataplane proposes commands and reads state; package edge renders the
// event bodies commands carry; package archive stores what the archiver
// takes from Pending.
package fsm
