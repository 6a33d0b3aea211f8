package fsm

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// Notifier learns about every event and every header change a replica
// commits, in commit order. It is called on Dragonboat's apply goroutine
// after the state is updated, once per applied batch with something in it,
// so it must only hand the output off (e.g. one actor message) and return.
type Notifier interface {
	Committed(group uint64, out Output)
}

// Query reads a State under the replica's read lock; pass one to
// NodeHost.SyncRead or StaleRead. It must not retain the State.
type Query func(*State) any

// StateMachine is one replica of a group: State behind a lock, exposed as
// Dragonboat's IConcurrentStateMachine so applies arrive in batches and
// snapshots are written without blocking them.
type StateMachine struct {
	group    uint64
	notifier Notifier
	hot      *HotTier // node-wide hot-tier totals, shared by all replicas

	mu       sync.RWMutex
	state    *State
	reported Stats // this replica's share of *hot
}

// HotTier totals the unarchived events and the producer cursors of every
// replica on a node: what the memory budget (docs/decisions.md#d18) and
// the metrics measure.
type HotTier struct {
	Bytes         atomic.Int64
	Events        atomic.Int64
	ProducerBytes atomic.Int64
}

var _ sm.IConcurrentStateMachine = (*StateMachine)(nil)

// Factory returns Dragonboat's constructor for replicas of group shards.
// groupOf maps a shard id to the group it serves; hot accumulates the
// hot tier of every replica on this node.
func Factory(groupOf func(shardID uint64) uint64, n Notifier, hot *HotTier) sm.CreateConcurrentStateMachineFunc {
	return func(shardID, _ uint64) sm.IConcurrentStateMachine {
		return &StateMachine{group: groupOf(shardID), notifier: n, hot: hot, state: NewState()}
	}
}

// Update applies committed entries in log order.
func (m *StateMachine) Update(ents []sm.Entry) ([]sm.Entry, error) {
	var out Output
	m.mu.Lock()
	for i := range ents {
		r := m.state.Apply(ents[i].Cmd, &out)
		ents[i].Result = sm.Result{Value: r.Value, Data: r.Data}
	}
	m.publishHot()
	m.mu.Unlock()
	if !out.Empty() && m.notifier != nil {
		m.notifier.Committed(m.group, out)
	}
	return ents, nil
}

// publishHot moves this replica's hot-tier size into the node-wide
// totals. Called with m.mu held.
func (m *StateMachine) publishHot() {
	if m.hot == nil {
		return
	}
	now := Stats{HotBytes: m.state.hotBytes, HotEvents: m.state.hotEvents, ProducerBytes: m.state.producerBytes}
	m.hot.Bytes.Add(now.HotBytes - m.reported.HotBytes)
	m.hot.Events.Add(now.HotEvents - m.reported.HotEvents)
	m.hot.ProducerBytes.Add(now.ProducerBytes - m.reported.ProducerBytes)
	m.reported = now
}

// Lookup runs a Query under the read lock.
func (m *StateMachine) Lookup(q any) (any, error) {
	f, ok := q.(Query)
	if !ok {
		return nil, fmt.Errorf("fsm lookup: unsupported query %T", q)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return f(m.state), nil
}

// PrepareSnapshot captures the state; it is the only step that excludes
// Update.
func (m *StateMachine) PrepareSnapshot() (any, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state.Snapshot(), nil
}

// SaveSnapshot writes a captured snapshot while applies continue.
func (m *StateMachine) SaveSnapshot(ctx any, w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	sn, ok := ctx.(*Snapshot)
	if !ok {
		return fmt.Errorf("save snapshot: unexpected context %T", ctx)
	}
	return sn.Write(w)
}

// RecoverFromSnapshot replaces the state with a snapshot's.
func (m *StateMachine) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	s, err := ReadSnapshot(r)
	if err != nil {
		return fmt.Errorf("group %d: %w", m.group, err)
	}
	m.mu.Lock()
	m.state = s
	m.publishHot()
	m.mu.Unlock()
	return nil
}

// Close releases the replica's share of the hot-tier gauge.
func (m *StateMachine) Close() error {
	m.mu.Lock()
	if m.hot != nil {
		m.hot.Bytes.Add(-m.reported.HotBytes)
		m.hot.Events.Add(-m.reported.HotEvents)
		m.hot.ProducerBytes.Add(-m.reported.ProducerBytes)
		m.reported = Stats{}
	}
	m.mu.Unlock()
	return nil
}
