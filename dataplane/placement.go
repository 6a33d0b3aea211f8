package dataplane

import (
	"fmt"
	"hash/fnv"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Placement maps sessions to groups and groups to replica nodes. It is a
// pure function of the configuration, so every node computes the same map
// without talking to the others (docs/decisions.md#d6).
type Placement struct {
	groups   int
	nodes    []string // write node names, sorted: index+1 is the Raft replica id
	replicas [][]int  // per group: indexes into nodes, best rendezvous score first
}

// NewPlacement builds the placement for the write nodes (names like
// starcite@host), groups groups and replication factor rf.
func NewPlacement(nodes []string, groups, rf int) (*Placement, error) {
	if groups <= 0 {
		return nil, fmt.Errorf("placement: %d groups", groups)
	}
	if rf <= 0 || rf > len(nodes) {
		return nil, fmt.Errorf("placement: replication factor %d with %d write nodes", rf, len(nodes))
	}
	sorted := append([]string(nil), nodes...)
	sort.Strings(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, fmt.Errorf("placement: duplicate write node %q", sorted[i])
		}
	}
	p := &Placement{groups: groups, nodes: sorted, replicas: make([][]int, groups)}
	idx := make([]int, len(sorted))
	for g := range p.replicas {
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool {
			sa, sb := score(g, sorted[idx[a]]), score(g, sorted[idx[b]])
			if sa != sb {
				return sa < sb
			}
			return idx[a] < idx[b]
		})
		p.replicas[g] = append([]int(nil), idx[:rf]...)
	}
	return p, nil
}

// score is the rendezvous score of a node for a group: the lowest scores
// hold the group's replicas (docs/operations.md#placement).
func score(group int, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(group)))
	return mix(h.Sum64())
}

// Group returns the group of a session: a 64-bit hash of the id mod groups.
func (p *Placement) Group(sessionID string) int {
	h := fnv.New64a()
	h.Write([]byte(sessionID))
	return int(mix(h.Sum64()) % uint64(p.groups))
}

// mix is a 64-bit finalizer (murmur3's fmix64). FNV-1a alone barely
// changes its high bits between inputs that differ in a last character,
// which skewed rendezvous placement onto one node; mixed, every output
// bit depends on every input bit.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Groups is the number of groups.
func (p *Placement) Groups() int { return p.groups }

// Nodes returns the write nodes, sorted.
func (p *Placement) Nodes() []string { return p.nodes }

// Replicas returns the nodes holding a group's replicas.
func (p *Placement) Replicas(group int) []string {
	out := make([]string, len(p.replicas[group]))
	for i, n := range p.replicas[group] {
		out[i] = p.nodes[n]
	}
	return out
}

// ReplicaID is a node's Raft replica id in every group it holds (0 for a
// node that is not a write node).
func (p *Placement) ReplicaID(node string) uint64 {
	i := sort.SearchStrings(p.nodes, node)
	if i < len(p.nodes) && p.nodes[i] == node {
		return uint64(i + 1)
	}
	return 0
}

// NodeOf returns the node with a replica id.
func (p *Placement) NodeOf(replicaID uint64) (string, bool) {
	if replicaID == 0 || replicaID > uint64(len(p.nodes)) {
		return "", false
	}
	return p.nodes[replicaID-1], true
}

// Holds reports whether node holds a replica of group.
func (p *Placement) Holds(node string, group int) bool {
	id := p.ReplicaID(node)
	for _, n := range p.replicas[group] {
		if uint64(n+1) == id {
			return true
		}
	}
	return false
}

// LocalGroups returns the groups node holds a replica of.
func (p *Placement) LocalGroups(node string) []int {
	var out []int
	for g := range p.replicas {
		if p.Holds(node, g) {
			out = append(out, g)
		}
	}
	return out
}

// NodeHost returns the host part of a node name (name@host).
func NodeHost(node string) string {
	_, host, _ := strings.Cut(node, "@")
	return host
}

// RaftAddress is where a node's Raft transport listens: its host and the
// cluster-wide Raft port.
func RaftAddress(node string, port int) string {
	return net.JoinHostPort(NodeHost(node), strconv.Itoa(port))
}
