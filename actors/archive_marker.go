package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"ergo.services/ergo/gen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"starcite/archive"
)

// The one-archive check (docs/operations.md#one-archive-per-cluster): the
// archiver writes this node's marker into the archive, stamped with the
// node's Ergo creation (its start, which every peer learns in the
// handshake), and looks for the marker of the current run of every write
// node it is connected to. A peer whose marker does not show for
// markerGrace is reported — an error log, starcite ops status, the
// starcite_archive_missing_node_markers gauge — as its archive is not this
// node's: events it archived cannot be replayed here. Peers that are not
// connected are not judged (they may be down); a peer that restarts is
// looked for again.

// Timings of the check.
const (
	markerGrace = 30 * time.Second
	markerEvery = 5 * time.Second
)

var missingMarkers = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "starcite_archive_missing_node_markers",
	Help: "Connected write nodes whose archive marker this node's archive has not shown for 30 s: the archive is not shared (docs/operations.md#one-archive-per-cluster).",
})

type (
	markerTick   struct{}
	markerResult struct {
		wrote bool             // this run's marker was written
		found map[string]int64 // peer → the run (creation) its marker names; absent: none
		err   error
	}
)

// markerCheck is the state of the check; the archiver drives it and does
// the archive I/O on a goroutine of its own.
type markerCheck struct {
	written   time.Time             // when this run's marker was written (zero: not yet)
	confirmed map[string]int64      // peer → the run whose marker was seen
	looking   map[string]markerWant // peer → the run looked for, and since when
	missing   []string              // sorted, as last reported
	lastErr   error
}

type markerWant struct {
	creation int64
	since    time.Time
}

func newMarkerCheck() *markerCheck {
	return &markerCheck{confirmed: map[string]int64{}, looking: map[string]markerWant{}}
}

// due takes the connected peers (name → creation) and returns the markers
// to read now, and whether this node's own is still to be written.
func (c *markerCheck) due(now time.Time, peers map[string]int64) (want map[string]int64, write bool) {
	for p := range c.looking {
		if _, ok := peers[p]; !ok {
			delete(c.looking, p) // disconnected: not judged
		}
	}
	want = map[string]int64{}
	for p, cr := range peers {
		if c.confirmed[p] >= cr {
			continue
		}
		if w, ok := c.looking[p]; !ok || w.creation != cr {
			c.looking[p] = markerWant{creation: cr, since: now}
		}
		want[p] = cr
	}
	return want, c.written.IsZero()
}

// result records a round and returns the peers now missing, and whether
// that set changed.
func (c *markerCheck) result(now time.Time, r markerResult) ([]string, bool) {
	c.lastErr = r.err
	if r.wrote {
		c.written = now
	}
	for p, boot := range r.found {
		if w, ok := c.looking[p]; ok && boot >= w.creation {
			c.confirmed[p] = w.creation
			delete(c.looking, p)
		}
	}
	var missing []string
	if !c.written.IsZero() {
		for p, w := range c.looking {
			from := w.since
			if c.written.After(from) {
				from = c.written
			}
			if now.Sub(from) >= markerGrace {
				missing = append(missing, p)
			}
		}
	}
	slices.Sort(missing)
	changed := !slices.Equal(missing, c.missing)
	c.missing = missing
	return missing, changed
}

// state is the check as ops status shows it (the archiver's "shared" key).
func (c *markerCheck) state() string {
	switch {
	case len(c.missing) > 0:
		return "NO: no marker of " + strings.Join(c.missing, ",") + " after " + markerGrace.String()
	case c.written.IsZero() && c.lastErr != nil:
		return "unknown: this node's marker not written: " + c.lastErr.Error()
	case len(c.looking) > 0:
		return fmt.Sprintf("checking (%d peer markers not seen yet)", len(c.looking))
	}
	return fmt.Sprintf("yes (%d peer markers seen)", len(c.confirmed))
}

// markerPeers are the write nodes this node is connected to, with the
// creation of their current run; asking costs no dial.
func (a *Archiver) markerPeers() map[string]int64 {
	peers := map[string]int64{}
	self := a.plane.Self()
	for _, n := range a.plane.Placement().Nodes() {
		if n == self {
			continue
		}
		if rn, err := a.Node().Network().Node(gen.Atom(n)); err == nil {
			peers[n] = rn.Creation()
		}
	}
	return peers
}

// startMarkerRound writes this node's marker and reads the wanted peer
// markers on a goroutine; the result comes back as a markerResult.
func (a *Archiver) startMarkerRound() {
	want, write := a.markers.due(time.Now(), a.markerPeers())
	if len(want) == 0 && !write {
		a.SendAfter(a.PID(), markerTick{}, markerEvery)
		return
	}
	node, pid, store := a.Node(), a.PID(), a.store
	self := archive.NodeMarker{Node: a.plane.Self(), Boot: node.Creation()}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var r markerResult
		if write {
			r.err = store.PutNodeMarker(ctx, self)
			r.wrote = r.err == nil
		}
		r.found = map[string]int64{}
		for p := range want {
			m, err := store.GetNodeMarker(ctx, p)
			switch {
			case err == nil:
				r.found[p] = m.Boot
			case !errors.Is(err, archive.ErrNotFound) && r.err == nil:
				r.err = err
			}
		}
		node.Send(pid, r)
	}()
}

// finishMarkerRound reports a change of the missing peers and schedules
// the next round.
func (a *Archiver) finishMarkerRound(r markerResult) {
	missing, changed := a.markers.result(time.Now(), r)
	missingMarkers.Set(float64(len(missing)))
	if changed {
		if len(missing) > 0 {
			a.Log().Error("archive (%s) not shared: no marker of %s after %s, though connected; every node must use "+
				"one archive (STARCITE_ARCHIVE_DIR one directory shared by every node, or s3 or postgres), "+
				"else events archived elsewhere cannot be replayed here", a.store.Name(), strings.Join(missing, ", "), markerGrace)
		} else {
			a.Log().Info("archive (%s) shared: every connected write node's marker is visible", a.store.Name())
		}
	}
	a.SendAfter(a.PID(), markerTick{}, markerEvery)
}
