package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// harness is one adapter under the conformance suite.
type harness struct {
	name string
	// open returns a fresh adapter over empty storage of its own, closed at
	// the end of the test.
	open func(t testing.TB) Adapter
	// putRaw stores bytes under a layout-relative key such as
	// "events/v1/<name>/1.ndjson" (nil for postgres, which has no such layout).
	putRaw func(t testing.TB, a Adapter, key string, body []byte)
}

// harnesses lists every adapter; the service-backed ones fail or skip
// according to STARCITE_REQUIRE_SERVICES when their service is not set up.
func harnesses() []harness {
	return []harness{fileHarness(), cachedFileHarness(), s3Harness(), postgresHarness()}
}

// requireServiceEnv returns the values of the named variables, or fails
// (STARCITE_REQUIRE_SERVICES=1) or skips the test loudly when one is unset.
func requireServiceEnv(tb testing.TB, names ...string) []string {
	tb.Helper()
	var vals, missing []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing = append(missing, n)
		}
		vals = append(vals, v)
	}
	if len(missing) == 0 {
		return vals
	}
	msg := fmt.Sprintf("%s not set. Start Postgres and the S3 test server with\n"+
		"\teval \"$(.ci/services.sh up)\"\n(from the repository root) and run the tests again.",
		strings.Join(missing, ", "))
	if os.Getenv("STARCITE_REQUIRE_SERVICES") == "1" {
		tb.Fatalf("\n*** TEST SERVICES REQUIRED (STARCITE_REQUIRE_SERVICES=1) ***\n%s", msg)
	}
	tb.Skipf("\n*** SKIPPED: test services not available ***\n%s\n(set STARCITE_REQUIRE_SERVICES=1 to make this a failure)", msg)
	return nil
}

// baseTime is 2026-03-01T12:00:01.123456Z in Unix microseconds.
var baseTime = func() int64 {
	t, err := fsm.ParseTime("2026-03-01T12:00:01.123456Z")
	if err != nil {
		panic(err)
	}
	return t
}()

const testTenant = "acme"

// testEvent builds a canonical event; variant distinguishes writers, pad
// sets the payload size.
func testEvent(seq uint64, variant string, pad int) fsm.Event {
	payload, err := jsonc.Canonical([]byte(fmt.Sprintf(`{"v":%q,"pad":%q,"n":%d}`, variant, strings.Repeat("x", pad), seq)))
	if err != nil {
		panic(err)
	}
	c := fsm.Content{
		Type: "message", Payload: payload, Actor: "user:alice", ProducerID: "writer-" + variant,
		ProducerSeq: seq, Metadata: []byte("{}"), Refs: []byte("{}"),
	}
	at := baseTime + int64(seq)*1_000_003 // sub-second parts that vary
	return fsm.Event{Seq: seq, JSON: fsm.EventJSON(seq, fsm.AppendBody(nil, &c, at, testTenant))}
}

func testEvents(from, to uint64, variant string) []fsm.Event {
	out := make([]fsm.Event, 0, to-from+1)
	for s := from; s <= to; s++ {
		out = append(out, testEvent(s, variant, 16))
	}
	return out
}

// unicodeEvent is an event whose strings need escapes and multi-byte UTF-8,
// with floats, big integers, nested objects and non-null optional fields.
func unicodeEvent(seq uint64) fsm.Event {
	canon := func(s string) []byte {
		b, err := jsonc.Canonical([]byte(s))
		if err != nil {
			panic(err)
		}
		return b
	}
	src := "tool/☃"
	key := "idem-\u00e9-\U0001F600-\"q\""
	c := fsm.Content{
		Type:           "tëxt/émoji 😀",
		Payload:        canon(`{"text":"héllo \"quoted\" \\ back\nline\ttab \u0001 \u001f 😀 \u2028 \u00ff","n":1.5,"neg":-0.25,"tiny":1e-7,"exp":2E+3,"big":12345678901234567890,"zero":-0,"arr":[1,"a",null,true,false,{"z":1,"a":[]}],"": "empty key","ключ":"значение"}`),
		Actor:          "agent:Ünïcode",
		ProducerID:     "p/\u00e5",
		ProducerSeq:    seq,
		Source:         &src,
		Metadata:       canon(`{"starcite_principal":{"tenant_id":"acme","id":"alice","type":"user"},"nested":{"b":[1,2,{"c":"\\"}],"a":null}}`),
		Refs:           canon(`{"to_seq":1,"step":2}`),
		IdempotencyKey: &key,
	}
	return fsm.Event{Seq: seq, JSON: fsm.EventJSON(seq, fsm.AppendBody(nil, &c, baseTime+999_999, testTenant))}
}

// checkEvents asserts that got equals want exactly (seqs and bytes).
func checkEqual(t testing.TB, what string, got, want []fsm.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events (%s), want %d (%s)", what, len(got), seqRange(got), len(want), seqRange(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].JSON, want[i].JSON) {
			t.Fatalf("%s: event %d:\n got seq %d %s\nwant seq %d %s", what, i, got[i].Seq, got[i].JSON, want[i].Seq, want[i].JSON)
		}
	}
}

func seqRange(evs []fsm.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", evs[0].Seq, evs[len(evs)-1].Seq)
}

// slice returns the events of evs with from <= seq <= to.
func slice(evs []fsm.Event, from, to uint64) []fsm.Event {
	var out []fsm.Event
	for _, e := range evs {
		if e.Seq >= from && e.Seq <= to {
			out = append(out, e)
		}
	}
	return out
}

func mustRead(t testing.TB, a Adapter, session string, from, to uint64) []fsm.Event {
	t.Helper()
	got, err := a.ReadEvents(context.Background(), session, testTenant, from, to)
	if err != nil {
		t.Fatalf("ReadEvents(%q, %d, %d): %v", session, from, to, err)
	}
	return got
}

func mustWrite(t testing.TB, a Adapter, session string, evs []fsm.Event) {
	t.Helper()
	if err := a.WriteEvents(context.Background(), session, evs); err != nil {
		t.Fatalf("WriteEvents(%q, %s): %v", session, seqRange(evs), err)
	}
}

func strp(s string) *string { return &s }

func TestConformance(t *testing.T) {
	for _, h := range harnesses() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			runConformance(t, h)
		})
	}
}

func runConformance(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("sessions", func(t *testing.T) {
		a := h.open(t)
		s := Session{
			ID: "sess-1", Title: strp("Tïtle \"1\""), TenantID: testTenant,
			Creator:   &Principal{TenantID: testTenant, ID: "alice", Type: "user"},
			Metadata:  []byte(`{"a":{"b":[1,2.5,"x"]},"tenant_id":"acme"}`),
			CreatedAt: baseTime,
		}
		if _, err := a.GetSession(ctx, s.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession before put: err = %v, want ErrNotFound", err)
		}
		if err := a.PutSession(ctx, s); err != nil {
			t.Fatalf("PutSession: %v", err)
		}
		checkSession(t, a, s)
		// First write wins; a second put is success and changes nothing.
		other := s
		other.Title, other.Metadata, other.CreatedAt = strp("other"), []byte(`{"x":1}`), baseTime+5
		if err := a.PutSession(ctx, other); err != nil {
			t.Fatalf("second PutSession: %v", err)
		}
		checkSession(t, a, s)

		legacy := Session{ID: "legacy", TenantID: "service", Metadata: []byte("{}"), CreatedAt: baseTime + 1}
		if err := a.PutSession(ctx, legacy); err != nil {
			t.Fatalf("PutSession legacy: %v", err)
		}
		checkSession(t, a, legacy)
		if _, err := a.GetSession(ctx, "sess-2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession(missing): err = %v, want ErrNotFound", err)
		}
		// Concurrent first writes: exactly one wins, every caller succeeds.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = a.PutSession(ctx, Session{ID: "race", Title: strp(fmt.Sprint(i)), TenantID: testTenant,
					Metadata: []byte("{}"), CreatedAt: baseTime})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent PutSession %d: %v", i, err)
			}
		}
		got, err := a.GetSession(ctx, "race")
		if err != nil || got.Title == nil {
			t.Fatalf("GetSession(race) = %+v, %v", got, err)
		}
	})

	t.Run("node_markers", func(t *testing.T) {
		a, b := h.open(t), h.open(t)
		const node = "starcite@10.0.0.1"
		if _, err := a.GetNodeMarker(ctx, node); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetNodeMarker before put: err = %v, want ErrNotFound", err)
		}
		for _, booted := range []int64{baseTime, baseTime + 7} { // a reboot replaces the marker
			if err := a.PutNodeMarker(ctx, NodeMarker{Node: node, Boot: booted}); err != nil {
				t.Fatalf("PutNodeMarker: %v", err)
			}
			if m, err := a.GetNodeMarker(ctx, node); err != nil || m != (NodeMarker{Node: node, Boot: booted}) {
				t.Fatalf("GetNodeMarker = %+v, %v; want booted %d", m, err, booted)
			}
		}
		long := strings.Repeat("n", 300) + "@host" // a hashed object name
		if err := a.PutNodeMarker(ctx, NodeMarker{Node: long, Boot: 1}); err != nil {
			t.Fatalf("PutNodeMarker(long name): %v", err)
		}
		if m, err := a.GetNodeMarker(ctx, long); err != nil || m.Node != long {
			t.Fatalf("GetNodeMarker(long name) = %+v, %v", m, err)
		}
		// Another archive does not see them: what a node with an unshared
		// archive directory finds.
		if _, err := b.GetNodeMarker(ctx, node); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetNodeMarker in another archive: err = %v, want ErrNotFound", err)
		}
		if err := a.PutNodeMarker(ctx, NodeMarker{}); err == nil {
			t.Fatal("PutNodeMarker without a node name succeeded")
		}
	})

	t.Run("session_updates", func(t *testing.T) {
		a := h.open(t)
		base := Session{ID: "upd", Title: strp("first"), TenantID: testTenant,
			Creator: &Principal{TenantID: testTenant, ID: "alice", Type: "user"}, Metadata: []byte(`{"a":1}`),
			CreatedAt: baseTime, UpdatedAt: baseTime, Version: 1}
		if err := a.PutSession(ctx, base); err != nil {
			t.Fatal(err)
		}
		at := func(us int64, title string, version uint64, archived bool) Session {
			s := base
			s.Title, s.UpdatedAt, s.Version, s.Archived = strp(title), baseTime+us, version, archived
			s.Metadata = []byte(`{"a":1,"t":"` + title + `"}`)
			return s
		}
		steps := []struct {
			name string
			put  Session
			want Session
		}{
			{"a later copy replaces the entry", at(10, "second", 2, false), at(10, "second", 2, false)},
			{"an archive flip (same version)", at(20, "second", 2, true), at(20, "second", 2, true)},
			{"an older copy changes nothing", at(15, "stale", 2, false), at(20, "second", 2, true)},
			{"an equal updated_at changes nothing", at(20, "same time", 3, false), at(20, "second", 2, true)},
			{"microseconds order copies", at(21, "third", 3, true), at(21, "third", 3, true)},
		}
		for _, st := range steps {
			if err := a.UpdateSession(ctx, st.put); err != nil {
				t.Fatalf("%s: UpdateSession: %v", st.name, err)
			}
			checkSession(t, a, st.want)
		}
		// PutSession never rolls an updated entry back.
		if err := a.PutSession(ctx, base); err != nil {
			t.Fatal(err)
		}
		checkSession(t, a, at(21, "third", 3, true))
		// An update creates a missing entry.
		fresh := at(5, "fresh", 2, true)
		fresh.ID = "upd-fresh"
		if err := a.UpdateSession(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		checkSession(t, a, fresh)
		// Concurrent updates: the latest copy wins whatever the order.
		runConcurrently(t, 6, func(i int) error {
			return a.UpdateSession(ctx, at(int64(100+i), fmt.Sprint("c", i), uint64(4+i), i%2 == 0))
		})
		checkSession(t, a, at(105, "c5", 9, false))
	})

	t.Run("write_read_ranges", func(t *testing.T) {
		a := h.open(t)
		const sid = "ranges"
		all := testEvents(1, 600, "a")
		mustWrite(t, a, sid, all)
		for _, r := range [][2]uint64{
			{1, 600}, {0, 600}, {1, 1}, {256, 257}, {250, 260}, {255, 513}, {511, 513},
			{512, 512}, {513, 513}, {300, 300}, {590, 700}, {1, math.MaxUint64}, {0, math.MaxUint64},
			{100, 99 + 5*256},
		} {
			want := slice(all, r[0], r[1])
			checkEqual(t, fmt.Sprintf("read %d..%d", r[0], r[1]), mustRead(t, a, sid, r[0], r[1]), want)
		}
		for _, r := range [][2]uint64{{601, 1000}, {700, 800}, {10_000, 20_000}, {5, 4}, {math.MaxUint64 - 10, math.MaxUint64}} {
			if got := mustRead(t, a, sid, r[0], r[1]); len(got) != 0 {
				t.Fatalf("read %d..%d of missing range: got %d events (%s)", r[0], r[1], len(got), seqRange(got))
			}
		}
		if got := mustRead(t, a, "never-written", 1, 1000); len(got) != 0 {
			t.Fatalf("read of unknown session: got %d events", len(got))
		}
		// Appending the next batch continues the partial last chunk.
		more := testEvents(601, 1100, "a")
		mustWrite(t, a, sid, more)
		all = append(all, more...)
		checkEqual(t, "read after second batch", mustRead(t, a, sid, 1, 2000), all)
		checkEqual(t, "read 590..620", mustRead(t, a, sid, 590, 620), slice(all, 590, 620))
		// Empty writes are fine.
		if err := a.WriteEvents(ctx, sid, nil); err != nil {
			t.Fatalf("WriteEvents(nil): %v", err)
		}
	})

	t.Run("large_batch", func(t *testing.T) {
		a := h.open(t)
		all := testEvents(1, 5001, "big")
		mustWrite(t, a, "large", all)
		checkEqual(t, "read 1..5001", mustRead(t, a, "large", 1, 5001), all)
	})

	t.Run("idempotent_retry", func(t *testing.T) {
		a := h.open(t)
		const sid = "retry"
		first := testEvents(1, 300, "first")
		mustWrite(t, a, sid, first)
		mustWrite(t, a, sid, first) // exact retry
		checkEqual(t, "after retry", mustRead(t, a, sid, 1, 1000), first)
		// Overlap with different content: stored events win, new seqs are added.
		mustWrite(t, a, sid, testEvents(200, 500, "second"))
		want := append(append([]fsm.Event{}, first...), testEvents(301, 500, "second")...)
		checkEqual(t, "after overlapping write", mustRead(t, a, sid, 1, 1000), want)
		// A retry of an older sub-range changes nothing.
		mustWrite(t, a, sid, testEvents(250, 260, "third"))
		checkEqual(t, "after older sub-range", mustRead(t, a, sid, 1, 1000), want)
	})

	t.Run("concurrent_flush", func(t *testing.T) {
		a := h.open(t)
		// Two goroutines flushing the same events.
		same := testEvents(1, 600, "same")
		runConcurrently(t, 2, func(int) error { return a.WriteEvents(ctx, "same", same) })
		checkEqual(t, "same events flushed twice", mustRead(t, a, "same", 1, 1000), same)

		// Four writers with different content for the same seqs, in
		// different batch shapes: each seq is stored exactly once, with the
		// content of one writer.
		runConcurrently(t, 4, func(i int) error {
			evs := testEvents(1, 600, fmt.Sprint("w", i))
			step := 100 * (i + 1)
			for lo := 0; lo < len(evs); lo += step {
				if err := a.WriteEvents(ctx, "differ", evs[lo:min(lo+step, len(evs))]); err != nil {
					return err
				}
			}
			return nil
		})
		got := mustRead(t, a, "differ", 1, 1000)
		if len(got) != 600 {
			t.Fatalf("concurrent writers: got %d events (%s), want 600", len(got), seqRange(got))
		}
		for i, e := range got {
			if e.Seq != uint64(i+1) {
				t.Fatalf("concurrent writers: event %d has seq %d", i, e.Seq)
			}
			ok := false
			for w := range 4 {
				if bytes.Equal(e.JSON, testEvent(e.Seq, fmt.Sprint("w", w), 16).JSON) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("concurrent writers: seq %d has content of no writer: %s", e.Seq, e.JSON)
			}
		}
	})

	t.Run("unicode_roundtrip", func(t *testing.T) {
		a := h.open(t)
		evs := []fsm.Event{unicodeEvent(1), unicodeEvent(2), testEvent(3, "ascii", 0)}
		mustWrite(t, a, "uni/\u00fc?&=#%+ 😀", evs)
		checkEqual(t, "unicode events", mustRead(t, a, "uni/\u00fc?&=#%+ 😀", 1, 3), evs)
	})

	t.Run("long_session_ids", func(t *testing.T) {
		a := h.open(t)
		for _, n := range []int{150, 151, 1000, 5000} {
			id := strings.Repeat("é", n/2) + strings.Repeat("z", n%2) // n bytes
			s := Session{ID: id, TenantID: testTenant, Metadata: []byte(`{}`), CreatedAt: baseTime + int64(n)}
			if err := a.PutSession(ctx, s); err != nil {
				t.Fatalf("PutSession(%d-byte id): %v", n, err)
			}
			checkSession(t, a, s)
			evs := testEvents(1, 300, fmt.Sprint("len", n))
			mustWrite(t, a, id, evs)
			checkEqual(t, fmt.Sprintf("%d-byte id", n), mustRead(t, a, id, 1, 300), evs)
		}
	})

	if h.putRaw != nil {
		t.Run("upstream_lines", func(t *testing.T) {
			a := h.open(t)
			const sid = "upstream"
			// Upstream lines: arbitrary key order and spacing, no tenant_id,
			// inserted_at without Z, an unknown key, null optional objects.
			lines := []string{
				`{"type":"message","seq":1,"payload":{"z":1, "a":"x"},"actor":"user:bob","producer_id":"p","producer_seq":1,"source":null,"metadata":{},"refs":{},"idempotency_key":null,"inserted_at":"2026-03-01T12:00:01.123456"}`,
				`{ "seq" : 2, "type":"message","payload":{"t":"h\u00e9"},"actor":"user:bob","producer_id":"p","producer_seq":2,"source":"cli","metadata":null,"refs":null,"idempotency_key":"k","inserted_at":"2026-03-01T12:00:02.000001","extra":[1]}`,
				`{"seq":3,"type":"message","payload":{},"actor":"user:bob","producer_id":"p","producer_seq":3,"source":null,"metadata":{"m":true},"refs":{},"idempotency_key":null,"inserted_at":"2026-03-01T12:00:03","tenant_id":"other"}`,
			}
			h.putRaw(t, a, "events/v1/"+objectName(sid)+"/1.ndjson", []byte(strings.Join(lines, "\n")))
			var want []fsm.Event
			for _, l := range lines {
				e, err := fsm.ParseEvent([]byte(l))
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, fsm.Event{Seq: e.Seq, JSON: e.JSON(testTenant)})
			}
			got := mustRead(t, a, sid, 1, 10)
			checkEqual(t, "upstream lines", got, want)
			if !bytes.Contains(got[0].JSON, []byte(`"inserted_at":"2026-03-01T12:00:01.123456Z","tenant_id":"acme"}`)) ||
				!bytes.Contains(got[2].JSON, []byte(`"inserted_at":"2026-03-01T12:00:03.000000Z","tenant_id":"other"}`)) {
				t.Fatalf("upstream lines not rendered canonically:\n%s\n%s", got[0].JSON, got[2].JSON)
			}
			// A Go writer merging into an upstream chunk keeps the stored lines.
			mustWrite(t, a, sid, testEvents(1, 5, "go"))
			want = append(want, testEvents(4, 5, "go")...)
			checkEqual(t, "upstream lines merged", mustRead(t, a, sid, 1, 10), want)

			// An upstream catalogue object: no tenant_id, created_at without Z.
			h.putRaw(t, a, "sessions/v1/"+objectName("up-sess")+".json",
				[]byte(`{"metadata":{"tenant_id":"t9","k":[1]},"id":"up-sess","title":null,"creator_principal":null,"created_at":"2026-03-01T12:00:01.5"}`))
			checkSession(t, a, Session{ID: "up-sess", TenantID: "t9", Metadata: []byte(`{"k":[1],"tenant_id":"t9"}`),
				CreatedAt: baseTime - 123456 + 500000})
		})
	}
}

func checkSession(t testing.TB, a Adapter, want Session) {
	t.Helper()
	got, err := a.GetSession(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("GetSession(%.40q): %v", want.ID, err)
	}
	wantMeta, err := canonicalObject(want.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	// A copy without the later header fields reads back as never changed.
	wantUpdated, wantVersion := max(want.UpdatedAt, want.CreatedAt), max(want.Version, 1)
	if got.ID != want.ID || !equalPtr(got.Title, want.Title) || got.TenantID != want.TenantID ||
		!equalPtr(got.Creator, want.Creator) || !bytes.Equal(got.Metadata, wantMeta) || got.CreatedAt != want.CreatedAt ||
		got.UpdatedAt != wantUpdated || got.Version != wantVersion || got.Archived != want.Archived {
		t.Fatalf("GetSession(%.40q):\n got %s\nwant %s", want.ID, fmtSession(got), fmtSession(want))
	}
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func fmtSession(s Session) string {
	title, creator := "<nil>", "<nil>"
	if s.Title != nil {
		title = *s.Title
	}
	if s.Creator != nil {
		creator = fmt.Sprintf("%+v", *s.Creator)
	}
	return fmt.Sprintf("{ID:%.40q Title:%q Tenant:%q Creator:%s Metadata:%s CreatedAt:%s UpdatedAt:%d Version:%d Archived:%v}",
		s.ID, title, s.TenantID, creator, s.Metadata, fsm.FormatTime(s.CreatedAt), s.UpdatedAt, s.Version, s.Archived)
}

// runConcurrently runs fn(0..n-1) on n goroutines released at once.
func runConcurrently(t testing.TB, n int, fn func(i int) error) {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
}

func TestObjectName(t *testing.T) {
	if got := objectName("sess-1"); got != "c2Vzcy0x" {
		t.Fatalf("objectName(sess-1) = %q", got)
	}
	if got := objectName("\xff\xfe?"); got != "__4_" {
		t.Fatalf("objectName url-safe = %q", got)
	}
	id150, id151 := strings.Repeat("a", 150), strings.Repeat("a", 151)
	if got := objectName(id150); len(got) != 200 || strings.HasPrefix(got, "h.") {
		t.Fatalf("150-byte id: %q", got)
	}
	if got := objectName(id151); len(got) != 66 || !strings.HasPrefix(got, "h.") || got != objectName(id151) {
		t.Fatalf("151-byte id: %q", got)
	}
	if objectName(id151) == objectName(id151+"b") {
		t.Fatal("hashed names collide")
	}
}

func TestChunkStart(t *testing.T) {
	for seq, want := range map[uint64]uint64{1: 1, 2: 1, 256: 1, 257: 257, 512: 257, 513: 513, math.MaxUint64: 0xFFFFFFFFFFFFFF01} {
		if got := chunkStart(seq); got != want {
			t.Fatalf("chunkStart(%d) = %d, want %d", seq, got, want)
		}
	}
}

func TestCheckEvents(t *testing.T) {
	good := testEvents(1, 3, "x")
	if err := checkEvents("s", good); err != nil {
		t.Fatal(err)
	}
	for name, evs := range map[string][]fsm.Event{
		"descending": {good[1], good[0]},
		"duplicate":  {good[0], good[0]},
		"seq zero":   {{Seq: 0, JSON: []byte("{}")}},
		"newline":    {{Seq: 1, JSON: []byte("{\n}")}},
		"empty":      {{Seq: 1}},
	} {
		if err := checkEvents("s", evs); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
	if err := checkEvents("", good); err == nil {
		t.Fatal("empty session id accepted")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no adapter"},
		{Config{Adapter: "ftp"}, "unknown adapter"},
		{Config{Adapter: "file"}, "STARCITE_ARCHIVE_DIR"},
		{Config{Adapter: "s3"}, "STARCITE_S3_BUCKET"},
		{Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: "ftp://x"}, "STARCITE_S3_ENDPOINT"},
		{Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: "http://x/path"}, "has a path"},
		{Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: "http://x:99999"}, "bad port"},
		{Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: "http://x", S3MaxWriteRetries: -1}, "RETRIES"},
		{Config{Adapter: "s3", S3Bucket: "b", S3Endpoint: "http://x", S3AccessKeyID: "k"}, "set together"},
		{Config{Adapter: "postgres"}, "DATABASE_URL"},
		{Config{Adapter: "postgres", PostgresURL: "postgres://u:p@127.0.0.1:1/db", PostgresPoolSize: -1}, "DB_POOL_SIZE"},
		{Config{Adapter: "postgres", PostgresURL: "postgres://u:secretpw@127.0.0.1:1/db?connect_timeout=2"}, "cannot connect to postgres 127.0.0.1:1/db as u"},
	} {
		a, err := Open(ctx, tc.cfg)
		if err == nil {
			a.Close()
			t.Fatalf("Open(%+v) succeeded", tc.cfg)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Open(%+v): %v; want it to mention %q", tc.cfg, err, tc.want)
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("Open error leaks the password: %v", err)
		}
	}
}

func TestNormEndpointAndPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "http://127.0.0.1:7070": "http://127.0.0.1:7070", "https://s3.example.com/": "https://s3.example.com",
		" http://h:1 ": "http://h:1",
	} {
		got, err := normEndpoint(in)
		if err != nil || got != want {
			t.Fatalf("normEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:7070", "http://", "http://h/a", "http://h?x=1", "http://u:p@h", "s3://h"} {
		if _, err := normEndpoint(bad); err == nil {
			t.Fatalf("normEndpoint(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{"": "starcite", " / ": "starcite", "/a/b/": "a/b", " x ": "x"} {
		if got := normPrefix(in); got != want {
			t.Fatalf("normPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionCodec(t *testing.T) {
	s := Session{ID: "s\"1", Title: strp("t"), TenantID: "acme", Creator: &Principal{"acme", "alice", "user"},
		Metadata: []byte(`{"b":1,"a":2}`), CreatedAt: baseTime}
	b, err := encodeSession(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"s\"1","title":"t","tenant_id":"acme","creator_principal":{"tenant_id":"acme","id":"alice","type":"user"},"metadata":{"a":2,"b":1},"created_at":"2026-03-01T12:00:01.123456Z","updated_at":"2026-03-01T12:00:01.123456Z","version":1,"archived":false}`
	if string(b) != want {
		t.Fatalf("encodeSession:\n got %s\nwant %s", b, want)
	}
	got, err := decodeSession(b)
	if err != nil || got.ID != s.ID || *got.Title != "t" || *got.Creator != *s.Creator || string(got.Metadata) != `{"a":2,"b":1}` || got.CreatedAt != baseTime {
		t.Fatalf("decodeSession = %+v, %v", got, err)
	}
	if _, err := encodeSession(Session{ID: "x", Metadata: []byte("[1]")}); err == nil {
		t.Fatal("non-object metadata accepted")
	}
	// The header fields that change, and their absence in older entries.
	s.UpdatedAt, s.Version, s.Archived = baseTime+7, 3, true
	b, err = encodeSession(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeSession(b); err != nil || got.UpdatedAt != baseTime+7 || got.Version != 3 || !got.Archived {
		t.Fatalf("decodeSession(%s) = %+v, %v", b, got, err)
	}
	old := `{"id":"x","created_at":"2026-03-01T12:00:01.5Z"}`
	if got, err := decodeSession([]byte(old)); err != nil || got.UpdatedAt != got.CreatedAt || got.Version != 1 || got.Archived {
		t.Fatalf("decodeSession(%s) = %+v, %v", old, got, err)
	}
	for _, bad := range []string{`"updated_at":1`, `"updated_at":"x"`, `"version":0`, `"version":1.5`, `"version":"1"`, `"archived":"true"`} {
		body := `{"id":"x","created_at":"2026-03-01T12:00:01Z",` + bad + `}`
		if _, err := decodeSession([]byte(body)); err == nil {
			t.Errorf("decodeSession(%s) accepted", body)
		}
	}
	// Upstream back-fill order for a missing tenant_id.
	for body, tenant := range map[string]string{
		`{"id":"x","creator_principal":{"tenant_id":"c","id":"i","type":"user"},"metadata":{"tenant_id":"m"},"created_at":"2026-03-01T12:00:01"}`: "c",
		`{"id":"x","metadata":{"tenant_id":"m"},"created_at":"2026-03-01T12:00:01"}`:                                                              "m",
		`{"id":"x","created_at":"2026-03-01T12:00:01Z"}`:                                                                                          "service",
	} {
		got, err := decodeSession([]byte(body))
		if err != nil || got.TenantID != tenant {
			t.Fatalf("decodeSession(%s) tenant = %q, %v; want %q", body, got.TenantID, err, tenant)
		}
	}
}

func TestParseAndMergeChunk(t *testing.T) {
	evs := testEvents(1, 4, "a")
	body := bytes.Join([][]byte{evs[2].JSON, evs[0].JSON, evs[0].JSON}, []byte("\n"))
	body = append(body, "\n\n"...)
	lines, err := parseChunk(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].seq != 1 || lines[1].seq != 3 {
		t.Fatalf("parseChunk: %+v", lines)
	}
	merged, changed := mergeChunk(lines, testEvents(1, 4, "b"))
	want := bytes.Join([][]byte{evs[0].JSON, testEvent(2, "b", 16).JSON, evs[2].JSON, testEvent(4, "b", 16).JSON}, []byte("\n"))
	if !changed || !bytes.Equal(merged, want) {
		t.Fatalf("mergeChunk:\n got %s\nwant %s", merged, want)
	}
	if _, changed := mergeChunk(lines, []fsm.Event{evs[0], evs[2]}); changed {
		t.Fatal("mergeChunk reported a change for stored seqs")
	}
	if _, err := parseChunk([]byte("{\"seq\":1}\nnot json")); err == nil {
		t.Fatal("parseChunk accepted garbage")
	}
	for line, want := range map[string]uint64{
		string(evs[3].JSON): 4,
		`{"type":"x","seq":7,"payload":{},"actor":"a","producer_id":"p","producer_seq":1,"inserted_at":"2026-03-01T12:00:01"}`: 7,
	} {
		if got, err := lineSeq([]byte(line)); err != nil || got != want {
			t.Fatalf("lineSeq(%s) = %d, %v", line, got, err)
		}
	}
}
