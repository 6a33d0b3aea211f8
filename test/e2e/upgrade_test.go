package e2e

import (
	"fmt"
	"testing"
	"time"

	"starcite/test/harness"
)

// previousVersion is the last revision before session headers could
// change: it writes format 1 snapshots and the earlier event layout.
const previousVersion = "b0678d2926e475495104861e5fe63a9d95e3d6ec"

// snapshotEvery is Dragonboat's SnapshotEntries of a group: more entries
// than this in one group make sure a snapshot is on disk.
const snapshotEvery = 2048

// TestRestartFromOlderDataDir: a data directory written by the previous
// version — with a Raft snapshot in it — starts under this one; its
// sessions read as never changed (version 1, updated_at = created_at,
// not archived), every event is served in the current layout, and the
// sessions take updates, archive flags and appends that survive further
// restarts and a snapshot of the new format.
func TestRestartFromOlderDataDir(t *testing.T) {
	old := harness.BinaryAt(t, previousVersion)
	// One group, so that every entry counts toward its snapshot; no ops
	// listener, which the previous version does not have.
	n := harness.NewNode(t, harness.Options{NoOps: true, Env: map[string]string{"STARCITE_NUM_GROUPS": "1"}})
	n.Bin = old
	n.Start()
	n.WaitReady(time.Minute)

	// The previous version's create answer (no version, no archived).
	created := wantStatus(t, do(t, n, "POST", "/v1/sessions", `{"id":"old-1","title":"Before","metadata":{"k":"v"}}`, nil), 201)
	wantStatus(t, do(t, n, "POST", "/v1/sessions", `{"id":"old-2"}`, nil), 201)
	const events = snapshotEvery + 100
	for seq := int64(1); seq <= events; seq++ {
		body := evBody(map[string]string{"producer_seq": fmt.Sprint(seq)})
		if seq%2 == 0 {
			body = evBody(map[string]string{"producer_seq": fmt.Sprint(seq), "source": `"agent"`})
		}
		if r := appendReq(t, n, "old-1", body); r.status != 201 {
			t.Fatalf("append %d under the previous version: %s", seq, r)
		}
	}
	n.Stop()
	if !hasSnapshot(t, n.Dir) {
		t.Fatalf("no Raft snapshot under %s after %d entries: the test would not read one", n.Dir, events)
	}

	n.Bin = ""
	n.Start()
	n.WaitReady(time.Minute)
	got := getSession(t, n, "old-1")
	wantJSON(t, "old session", got, fmt.Sprintf(`{"id":"old-1","title":"Before","tenant_id":"service","creator_principal":%s,
		"metadata":{"k":"v"},"created_at":%q,"updated_at":%q,"version":1,"archived":false,"last_seq":%d,"archived_seq":%v}`,
		serviceCreator, created["created_at"], created["created_at"], events, got["archived_seq"]))
	checkAllEvents(t, n, "old-1", events)

	// The old sessions take every new operation.
	p := wantStatus(t, do(t, n, "PATCH", "/v1/sessions/old-1", `{"title":"After","metadata":{"n":1},"expected_version":1}`, nil), 200)
	if num(t, "version", p["version"]) != 2 {
		t.Fatalf("PATCH after the upgrade: %v", p)
	}
	wantStatus(t, do(t, n, "POST", "/v1/sessions/old-2/archive", nil, nil), 200)
	wantAppend(t, appendReq(t, n, "old-1", evBody(map[string]string{"producer_seq": fmt.Sprint(events + 1)})), events+1, events+1, false)

	// Enough new entries for a snapshot in the new format, then restart.
	for seq := int64(events + 2); seq <= events+1+snapshotEvery+10; seq++ {
		if r := appendReq(t, n, "old-1", evBody(map[string]string{"producer_seq": fmt.Sprint(seq)})); r.status != 201 {
			t.Fatalf("append %d: %s", seq, r)
		}
	}
	total := int64(events + 1 + snapshotEvery + 10)
	n.Restart()
	got = getSession(t, n, "old-1")
	if got["title"] != "After" || num(t, "version", got["version"]) != 2 || num(t, "last_seq", got["last_seq"]) != total {
		t.Errorf("after a restart on the new format: %v", got)
	}
	if archived := getSession(t, n, "old-2"); archived["archived"] != true {
		t.Errorf("archive flag lost in the restart: %v", archived)
	}
	checkAllEvents(t, n, "old-1", total)
}

// checkAllEvents reads every event of a session through the events route:
// seqs 1..last, each in the current layout (eventsOf checks cursor and
// that source is a string when present).
func checkAllEvents(t *testing.T, n *harness.Node, id string, last int64) {
	t.Helper()
	next := int64(1)
	for next <= last {
		evs, _, _ := eventsOf(t, n, id, fmt.Sprintf("cursor=%d&limit=1000", next-1))
		if len(evs) == 0 {
			t.Fatalf("%s: no events after %d of %d", id, next-1, last)
		}
		for _, ev := range evs {
			if num(t, "seq", ev["seq"]) != next {
				t.Fatalf("%s: seq %v where %d was due", id, ev["seq"], next)
			}
			if _, has := ev["source"]; has != (next%2 == 0 && next <= snapshotEvery+100) {
				t.Fatalf("%s: event %d source %v", id, next, ev["source"])
			}
			next++
		}
	}
}
