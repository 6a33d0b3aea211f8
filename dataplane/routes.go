package dataplane

import "time"

// Routes is the router actor's published view of the cluster: the leader
// each group last reported and when. Published as an immutable value and
// swapped atomically, so the request path reads it without a message.
type Routes struct {
	Leaders []LeaderHint // indexed by group
}

// LeaderHint is the last known leader of a group.
type LeaderHint struct {
	Node string // "" when unknown
	Term uint64
	Seen time.Time
}

// Leader returns a group's leader when it was learnt within ttl.
func (r *Routes) Leader(group int, ttl time.Duration) (string, bool) {
	if r == nil || group < 0 || group >= len(r.Leaders) {
		return "", false
	}
	h := r.Leaders[group]
	if h.Node == "" || time.Since(h.Seen) > ttl {
		return "", false
	}
	return h.Node, true
}

// PublishRoutes replaces the routing view (router actor only).
func (p *Plane) PublishRoutes(r *Routes) { p.routes.Store(r) }

// Routes returns the current routing view (nil before the router starts).
func (p *Plane) Routes() *Routes { return p.routes.Load() }
