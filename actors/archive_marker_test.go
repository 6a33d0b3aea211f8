package actors

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMarkerCheck walks the one-archive check through its rounds: a peer
// is missing only once it has been connected, and this node's marker
// written, for the whole grace period; its marker must name its current
// run; a disconnected peer is not judged.
func TestMarkerCheck(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at      time.Duration
		peers   map[string]int64 // connected peers and their creation
		found   map[string]int64 // markers the round found
		write   bool             // the round writes this node's marker successfully
		err     error
		want    []string // markers read this round
		missing []string
		changed bool
		state   string // prefix of state()
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a shared archive", []step{
			{at: 0, peers: map[string]int64{"b": 10, "c": 11}, write: true, found: map[string]int64{"b": 10},
				want: []string{"b", "c"}, state: "checking (1 peer"},
			{at: 5 * time.Second, peers: map[string]int64{"b": 10, "c": 11}, found: map[string]int64{"c": 11},
				want: []string{"c"}, state: "yes (2 peer markers seen)"},
			{at: 60 * time.Second, peers: map[string]int64{"b": 10, "c": 11}, want: nil, state: "yes"},
		}},
		{"an unshared archive: missing after the grace period, then found", []step{
			{at: 0, peers: map[string]int64{"b": 10}, write: true, want: []string{"b"}, state: "checking"},
			{at: 29 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}, state: "checking"},
			{at: 30 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"},
				missing: []string{"b"}, changed: true, state: "NO: no marker of b after 30s"},
			{at: 35 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}, missing: []string{"b"}, state: "NO"},
			{at: 40 * time.Second, peers: map[string]int64{"b": 10}, found: map[string]int64{"b": 10}, want: []string{"b"},
				changed: true, state: "yes (1 peer"},
		}},
		{"a stale marker of an earlier run does not count", []step{
			{at: 0, peers: map[string]int64{"b": 20}, write: true, found: map[string]int64{"b": 10}, want: []string{"b"}},
			{at: 30 * time.Second, peers: map[string]int64{"b": 20}, found: map[string]int64{"b": 10}, want: []string{"b"},
				missing: []string{"b"}, changed: true},
		}},
		{"a restarted peer is looked for again", []step{
			{at: 0, peers: map[string]int64{"b": 10}, write: true, found: map[string]int64{"b": 10}, want: []string{"b"}, state: "yes"},
			{at: 10 * time.Second, peers: map[string]int64{"b": 12}, want: []string{"b"}, state: "checking"},
			{at: 39 * time.Second, peers: map[string]int64{"b": 12}, want: []string{"b"}},
			{at: 40 * time.Second, peers: map[string]int64{"b": 12}, want: []string{"b"}, missing: []string{"b"}, changed: true},
		}},
		{"a disconnected peer is not judged", []step{
			{at: 0, peers: map[string]int64{"b": 10}, write: true, want: []string{"b"}},
			{at: 20 * time.Second, peers: map[string]int64{}},
			{at: 40 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}, state: "checking"},
			{at: 69 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}},
			{at: 70 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}, missing: []string{"b"}, changed: true},
		}},
		{"nothing is judged before this node's own marker is written", []step{
			{at: 0, peers: map[string]int64{"b": 10}, err: errors.New("archive down"), want: []string{"b"},
				state: "unknown: this node's marker not written: archive down"},
			{at: 40 * time.Second, peers: map[string]int64{"b": 10}, err: errors.New("archive down"), want: []string{"b"}},
			{at: 50 * time.Second, peers: map[string]int64{"b": 10}, write: true, want: []string{"b"}},
			{at: 79 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}},
			{at: 80 * time.Second, peers: map[string]int64{"b": 10}, want: []string{"b"}, missing: []string{"b"}, changed: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newMarkerCheck()
			for i, s := range tc.steps {
				want, write := c.due(at(s.at), s.peers)
				var names []string
				for p := range want {
					names = append(names, p)
				}
				slices.Sort(names)
				if !slices.Equal(names, s.want) {
					t.Fatalf("step %d: reads %v, want %v", i, names, s.want)
				}
				if s.write && !write {
					t.Fatalf("step %d: the marker was written already", i)
				}
				missing, changed := c.result(at(s.at), markerResult{wrote: s.write, found: s.found, err: s.err})
				if !slices.Equal(missing, s.missing) || changed != s.changed {
					t.Fatalf("step %d: missing %v (changed %v), want %v (%v)", i, missing, changed, s.missing, s.changed)
				}
				if st := c.state(); !strings.HasPrefix(st, s.state) {
					t.Fatalf("step %d: state %q, want it to start with %q", i, st, s.state)
				}
			}
		})
	}
}
