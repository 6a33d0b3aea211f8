package dataplane

import (
	"fmt"

	"starcite/fsm"
)

// What the ops actor reads about local replicas (`starcite ops status`,
// `starcite shell`): nothing here is on the request path.

// GroupStatus is a local replica of a group as an operator sees it.
type GroupStatus struct {
	Group    int
	Leader   string // "" while no leader is known
	Term     uint64
	Members  []string
	LogIndex uint64 // last entry of the replica's Raft log
	Totals   fsm.GroupTotals
}

// GroupStatus reads a local replica: its leader, log position and the
// totals of its sessions (a walk over every session of the group).
func (p *Plane) GroupStatus(group int) (GroupStatus, error) {
	if err := p.checkLocal(group); err != nil {
		return GroupStatus{}, err
	}
	gs := GroupStatus{Group: group, Members: p.placement.Replicas(group)}
	if node, term, ok := p.raft.Leader(group); ok {
		gs.Leader, gs.Term = node, term
	}
	gs.LogIndex = p.raft.LastIndex(group)
	v, err := p.raft.StaleRead(group, func(st *fsm.State) any {
		_, t := st.SessionStats("", 0)
		return t
	})
	if err != nil {
		return gs, fmt.Errorf("group %d: %w", group, err)
	}
	gs.Totals = v.(fsm.GroupTotals)
	return gs, nil
}

type sessionPage struct {
	sessions []fsm.SessionStat
	totals   fsm.GroupTotals
}

// GroupSessions lists up to limit sessions of a local group in id order,
// with the group's totals.
func (p *Plane) GroupSessions(group, limit int) ([]fsm.SessionStat, fsm.GroupTotals, error) {
	if err := p.checkLocal(group); err != nil {
		return nil, fsm.GroupTotals{}, err
	}
	v, err := p.raft.StaleRead(group, func(st *fsm.State) any {
		s, t := st.SessionStats("", limit)
		return sessionPage{s, t}
	})
	if err != nil {
		return nil, fsm.GroupTotals{}, fmt.Errorf("group %d: %w", group, err)
	}
	page := v.(sessionPage)
	return page.sessions, page.totals, nil
}

func (p *Plane) checkLocal(group int) error {
	if group < 0 || group >= p.placement.Groups() {
		return fmt.Errorf("invalid group id %d", group)
	}
	if !p.raft.IsLocal(group) {
		return fmt.Errorf("group %d has no replica on %s (replicas: %v)", group, p.raft.cfg.Self, p.placement.Replicas(group))
	}
	return nil
}
