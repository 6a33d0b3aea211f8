package actors

// LeaderChanged reports that a local replica saw a new leader (or lost
// it: Leader 0). Sent by Dragonboat's event callback to the raft actor.
type LeaderChanged struct {
	Group  int
	Leader uint64 // replica id; 0 = no leader known
	Term   uint64
}
