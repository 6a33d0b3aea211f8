package dataplane

import (
	"context"
	"sync"

	"starcite/fsm"
)

// Group commit. Raft's cost is per entry (every entry is replicated,
// fsynced and applied on three nodes), so appends that target the same
// group at the same time are coalesced into one append_events entry: a
// group has at most one append proposal in flight, and whatever arrives
// meanwhile waits and goes out together in the next one. A lone append
// is proposed at once, so a single producer pays nothing for this.
const (
	maxBatchEvents = 256
	maxBatchBytes  = 4 << 20
)

// batcher coalesces appends per group.
type batcher struct {
	mu     sync.Mutex
	groups []groupQueue
	flush  func(group int, batch []*pendingAppend)
}

type groupQueue struct {
	inflight bool
	waiting  []*pendingAppend
}

// pendingAppend is one append waiting for its batch.
type pendingAppend struct {
	cmd  *fsm.AppendEvent
	done chan appendOutcome // buffered: the flusher never blocks on a gone caller
}

type appendOutcome struct {
	r   fsm.AppendResult
	err error
}

func newBatcher(groups int, flush func(int, []*pendingAppend)) *batcher {
	return &batcher{groups: make([]groupQueue, groups), flush: flush}
}

// submit queues an append and returns the channel its outcome arrives on.
// When no proposal of the group is in flight, the append leaves at once.
func (b *batcher) submit(group int, cmd *fsm.AppendEvent) <-chan appendOutcome {
	p := &pendingAppend{cmd: cmd, done: make(chan appendOutcome, 1)}
	b.mu.Lock()
	q := &b.groups[group]
	q.waiting = append(q.waiting, p)
	if q.inflight {
		b.mu.Unlock()
		return p.done
	}
	q.inflight = true
	batch := b.take(q)
	b.mu.Unlock()
	go b.run(group, batch)
	return p.done
}

// run proposes batches of a group until its queue is empty.
func (b *batcher) run(group int, batch []*pendingAppend) {
	for len(batch) > 0 {
		b.flush(group, batch)
		b.mu.Lock()
		q := &b.groups[group]
		batch = b.take(q)
		if len(batch) == 0 {
			q.inflight = false
		}
		b.mu.Unlock()
	}
}

// take removes the next batch from a queue (called with b.mu held).
func (b *batcher) take(q *groupQueue) []*pendingAppend {
	n, size := 0, 0
	for n < len(q.waiting) && n < maxBatchEvents {
		size += len(q.waiting[n].cmd.Body)
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	batch := q.waiting[:n:n]
	q.waiting = append([]*pendingAppend(nil), q.waiting[n:]...)
	return batch
}

// flushAppends commits one batch and hands each append its outcome.
func (p *Plane) flushAppends(group int, batch []*pendingAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), requestBudget)
	defer cancel()
	var cmd []byte
	if len(batch) == 1 {
		cmd = fsm.EncodeAppendEvent(batch[0].cmd)
	} else {
		cmds := make([]fsm.AppendEvent, len(batch))
		for i, pa := range batch {
			cmds[i] = *pa.cmd
		}
		cmd = fsm.EncodeAppendEvents(cmds)
	}
	batchSizes.Observe(float64(len(batch)))
	res, err := p.propose(ctx, group, cmd)
	var rs []fsm.AppendResult
	if err == nil {
		rs, err = fsm.DecodeAppendResults(res.Data)
		if err == nil && len(rs) != len(batch) {
			err = ErrInternal
		}
	}
	for i, pa := range batch {
		if err != nil {
			pa.done <- appendOutcome{err: err}
			continue
		}
		pa.done <- appendOutcome{r: rs[i], err: appendError(pa.cmd, rs[i])}
	}
}
