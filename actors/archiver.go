package actors

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"starcite/archive"
	"starcite/dataplane"
	"starcite/fsm"
)

// ArchiverName is the registered name of the archiver.
const ArchiverName gen.Atom = "archiver"

// Archive cadence (docs/operations.md#the-archiver).
const (
	archiveBatch       = 5000 // events per session per cycle
	archiveSessions    = 512  // sessions per group per cycle; the rest wait for the next
	archiveParallel    = 8    // sessions written to the archive at once
	archiveWriteBudget = 30 * time.Second
	maxArchiveBackoff  = 30 * time.Second
)

var (
	archivedEvents = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_archive_inserted_total",
		Help: "Events written to the archive and acknowledged through Raft.",
	})
	archivedBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_archive_bytes_inserted_total",
		Help: "Bytes of event JSON written to the archive.",
	})
	archiveFailures = promauto.NewCounter(prometheus.CounterOpts{
		Name: "starcite_archive_failures_total",
		Help: "Archive cycles that failed (the events stay hot and are retried).",
	})
	archiveFlush = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "starcite_archive_flush_duration_seconds",
		Help:    "Duration of archive cycles that wrote events.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
)

type (
	archiveTick  struct{}
	archiveCycle struct {
		events, bytes int
		full          bool // some session had more than one batch pending
		err           error
		took          time.Duration
	}
)

// ArchiverPlane is what the archiver reads and commits: package
// dataplane's *Plane in a node, a fake in a test.
type ArchiverPlane interface {
	LocalGroups() []int
	IsLeader(group int) bool
	Pending(group int, after string, maxSessions, maxEvents int) ([]fsm.PendingSession, error)
	AckArchived(ctx context.Context, group int, marks []fsm.ArchiveMark) error
	Session(ctx context.Context, id string) (fsm.SessionInfo, error)
	HotBytes() int64
	// Self and Placement name this node and the write nodes, for the
	// one-archive check (archive_marker.go).
	Self() string
	Placement() *dataplane.Placement
}

// Archiver moves committed events to the archive: every interval, for the
// groups this node leads, it writes each session's oldest unarchived
// events (up to 5,000) and then commits ack_archived through Raft, which
// evicts them from the hot tier of every replica. Writes are idempotent,
// so a new leader re-flushing what an old one wrote is harmless.
//
// A cycle runs on its own goroutine and reports back with a message, so
// the actor stays responsive to inspection while the archive is slow.
// Failures leave the events hot, back off up to 30 s and are logged once
// per streak. It also checks that every node uses this node's archive
// (archive_marker.go).
type Archiver struct {
	act.Actor
	plane    ArchiverPlane
	store    archive.Adapter
	interval time.Duration

	running   bool
	after     map[int]string // per group: the last session flushed, to rotate fairly
	failures  int
	backoff   time.Duration
	lastErr   error
	cycles    int
	archived  uint64
	lastCycle time.Time
	markers   *markerCheck
}

// NewArchiver returns the factory of the archiver.
func NewArchiver(p ArchiverPlane, store archive.Adapter, interval time.Duration) gen.ProcessFactory {
	return func() gen.ProcessBehavior {
		return &Archiver{plane: p, store: store, interval: interval}
	}
}

func (a *Archiver) Init(args ...any) error {
	a.after = map[int]string{}
	a.markers = newMarkerCheck()
	if err := a.Send(a.PID(), markerTick{}); err != nil {
		return err
	}
	_, err := a.SendAfter(a.PID(), archiveTick{}, a.interval)
	return err
}

func (a *Archiver) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case archiveTick:
		if a.running {
			return nil
		}
		work := a.collect()
		if len(work) == 0 {
			a.SendAfter(a.PID(), archiveTick{}, a.interval)
			return nil
		}
		a.running = true
		node, pid := a.Node(), a.PID()
		go func() { node.Send(pid, a.run(work)) }()
	case archiveCycle:
		a.running = false
		a.finish(m)
	case markerTick:
		a.startMarkerRound()
	case markerResult:
		a.finishMarkerRound(m)
	}
	return nil
}

// groupWork is what one group has to archive this cycle.
type groupWork struct {
	group   int
	pending []fsm.PendingSession
}

// collect reads the pending events of every group this node leads.
func (a *Archiver) collect() []groupWork {
	var work []groupWork
	for _, g := range a.plane.LocalGroups() {
		if !a.plane.IsLeader(g) {
			continue
		}
		pending, err := a.plane.Pending(g, a.after[g], archiveSessions, archiveBatch)
		if err != nil || len(pending) == 0 {
			continue
		}
		a.after[g] = pending[len(pending)-1].SessionID
		work = append(work, groupWork{group: g, pending: pending})
	}
	return work
}

// run writes the work to the archive and acknowledges what was written.
// It runs on its own goroutine and touches no actor state.
func (a *Archiver) run(work []groupWork) archiveCycle {
	start := time.Now()
	var res archiveCycle
	var mu sync.Mutex
	for _, w := range work {
		marks := make([]fsm.ArchiveMark, len(w.pending))
		sem := make(chan struct{}, archiveParallel)
		var wg sync.WaitGroup
		for i, ps := range w.pending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				n, err := a.flushSession(ps)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if res.err == nil {
						res.err = err
					}
					return
				}
				marks[i] = fsm.ArchiveMark{SessionID: ps.SessionID, Seq: ps.Events[len(ps.Events)-1].Seq}
				res.events += len(ps.Events)
				res.bytes += n
				res.full = res.full || len(ps.Events) == archiveBatch
			}()
		}
		wg.Wait()
		done := marks[:0]
		for _, m := range marks {
			if m.SessionID != "" {
				done = append(done, m)
			}
		}
		if len(done) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.plane.AckArchived(ctx, w.group, done)
		cancel()
		if err != nil && res.err == nil {
			res.err = fmt.Errorf("ack archived events of group %d: %w", w.group, err)
		}
	}
	res.took = time.Since(start)
	return res
}

// flushSession makes sure the session is in the catalogue, then writes
// its pending events. It returns the bytes written.
func (a *Archiver) flushSession(ps fsm.PendingSession) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), archiveWriteBudget)
	defer cancel()
	if ps.Events[0].Seq == 1 {
		// A session's first flush also writes its catalogue entry, so every
		// archived event has its session in the archive (first write wins).
		info, err := a.plane.Session(ctx, ps.SessionID)
		if err != nil {
			return 0, fmt.Errorf("catalogue %q: %w", ps.SessionID, err)
		}
		if err := a.store.PutSession(ctx, dataplane.CatalogueEntry(info)); err != nil {
			return 0, err
		}
	}
	if err := a.store.WriteEvents(ctx, ps.SessionID, ps.Events); err != nil {
		return 0, err
	}
	n := 0
	for _, ev := range ps.Events {
		n += len(ev.JSON)
	}
	return n, nil
}

func (a *Archiver) finish(c archiveCycle) {
	a.cycles++
	a.lastCycle = time.Now()
	a.archived += uint64(c.events)
	archivedEvents.Add(float64(c.events))
	archivedBytes.Add(float64(c.bytes))
	if c.events > 0 {
		archiveFlush.Observe(c.took.Seconds())
	}
	next := a.interval
	switch {
	case c.err != nil:
		archiveFailures.Inc()
		a.failures++
		a.backoff = min(max(2*a.backoff, time.Second), maxArchiveBackoff)
		next = a.backoff
		if a.failures == 1 {
			a.Log().Error("archive (%s) failing; events stay in memory and are retried: %s", a.store.Name(), c.err)
		}
		a.lastErr = c.err
	case a.failures > 0:
		a.Log().Info("archive (%s) recovered after %d failed cycles", a.store.Name(), a.failures)
		a.failures, a.backoff, a.lastErr = 0, 0, nil
		next = 0 // drain the backlog at once
	case c.full:
		next = 0 // more is waiting: keep going
	}
	a.SendAfter(a.PID(), archiveTick{}, next)
}

func (a *Archiver) HandleInspect(from gen.PID, item ...string) map[string]string {
	out := map[string]string{
		"adapter":         a.store.Name(),
		"interval":        a.interval.String(),
		"running":         strconv.FormatBool(a.running),
		"cycles":          strconv.Itoa(a.cycles),
		"archived_events": strconv.FormatUint(a.archived, 10),
		"failing_cycles":  strconv.Itoa(a.failures),
		"hot_bytes":       strconv.FormatInt(a.plane.HotBytes(), 10),
		"shared":          a.markers.state(),
	}
	if !a.lastCycle.IsZero() {
		out["last_cycle"] = a.lastCycle.UTC().Format(time.RFC3339)
	}
	if a.lastErr != nil {
		out["last_error"] = a.lastErr.Error()
	}
	return out
}
