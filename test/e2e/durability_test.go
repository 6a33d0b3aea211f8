package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"starcite/test/harness"
)

// TestKillRestartKeepsAcknowledgedEvents: every append acknowledged before
// a kill -9 reads back after restart with the same seq and the same bytes;
// the same after a graceful stop (SIGTERM: the process exits 0 in time);
// then the same once enough entries were applied to force Raft snapshots
// and log compaction.
func TestKillRestartKeepsAcknowledgedEvents(t *testing.T) {
	// Two groups so that a few thousand appends cross the 2048-entry
	// snapshot threshold of each.
	n := harness.StartNode(t, harness.Options{Env: map[string]string{"STARCITE_NUM_GROUPS": "2"}})
	sessions := []string{"dur-a", "dur-b", "dur/c", "dur-d"}
	for _, s := range sessions {
		n.CreateSession(s, nil)
	}

	acked := map[string][]byte{} // session/seq → event JSON as first read
	appendAll := func(perSession int, from uint64) {
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from; i < from+uint64(perSession); i++ {
					st, r, b, err := n.Append(escape(s), "w", i, map[string]any{"i": i, "s": s})
					if err != nil || st != 201 || r.Seq != i {
						t.Errorf("append %s #%d: %d %+v %s %v", s, i, st, r, b, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	readAll := func() map[string][]byte {
		got := map[string][]byte{}
		for _, s := range sessions {
			evs, err := n.Events(escape(s))
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range evs {
				if seq := harness.Seq(t, ev); seq != uint64(i+1) {
					t.Fatalf("%s: event %d has seq %d", s, i+1, seq)
				}
				got[fmt.Sprintf("%s/%d", s, i+1)] = ev
			}
		}
		return got
	}
	check := func(stage string) {
		got := readAll()
		if len(got) != len(acked) {
			t.Fatalf("%s: %d events read back, %d acknowledged", stage, len(got), len(acked))
		}
		for k, want := range acked {
			if !bytes.Equal(got[k], want) {
				t.Fatalf("%s: event %s changed:\n got %s\nwant %s", stage, k, got[k], want)
			}
		}
	}

	appendAll(50, 1)
	acked = readAll()
	n.Kill()
	n.Start()
	n.WaitReady(60e9)
	check("after kill -9")
	n.Stop()
	n.Start()
	n.WaitReady(60e9)
	check("after SIGTERM")

	appendAll(1200, 51) // 4 sessions x 1200 appends over 2 groups: > 2048 entries each
	acked = readAll()
	if !hasSnapshot(t, n.Dir) {
		t.Fatal("no Raft snapshot on disk after 4800 appends over 2 groups")
	}
	n.Kill()
	n.Start()
	n.WaitReady(60e9)
	check("after kill -9 with snapshots")

	// The producer cursors survived too: an exact retry still dedupes and
	// the next producer_seq continues the sequence.
	st, r, b, _ := n.Append("dur-a", "w", 1250, map[string]any{"i": 1250, "s": "dur-a"})
	if st != 201 || !r.Deduped || r.Seq != 1250 {
		t.Fatalf("retry after restart: %d %s", st, b)
	}
	if st, r, b, _ := n.Append("dur-a", "w", 1251, map[string]any{"i": 1251}); st != 201 || r.Seq != 1251 {
		t.Fatalf("next append after restart: %d %s", st, b)
	}
}

func escape(id string) string { return strings.ReplaceAll(id, "/", "%2F") }

func hasSnapshot(t *testing.T, dir string) bool {
	found := false
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "snapshot-") {
			found = true
		}
		return nil
	})
	return found
}
