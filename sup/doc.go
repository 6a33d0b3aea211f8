// Package sup declares Starcite's supervision trees: which actor runs
// under which supervisor with which restart strategy
// (docs/decisions.md#d39):
//
//	starcite (application, permanent: its end stops the node)
//	├─ control_plane (one_for_one) discovery, observer (→ one peer watcher per write node), ops
//	├─ data_plane (rest_for_one)  raft → router → fanout → archiver
//	└─ edge (one_for_one)         tails (simple_one_for_one: tailsocket),
//	                              sockets (simple_one_for_one: channelsocket
//	                                → its channels: tailsocket, lifecyclechannel), http
//
// The router is an act.Pool whose workers serve requests forwarded by
// other nodes.
//
// rest_for_one in the data plane: when the raft actor restarts, everything
// started after it (and fed by it) restarts too. The actors themselves are
// package actors; this package only wires them.
package sup
