package fsm

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

const created = 1_700_000_000_000_000 // CreatedAt of createCmd

func applyHeader(t testing.TB, s *State, cmd []byte) (HeaderResult, []Change) {
	t.Helper()
	var out Output
	r := s.Apply(cmd, &out)
	if Status(r.Value) == StatusMalformed {
		return HeaderResult{Status: StatusMalformed}, out.Changes
	}
	hr, err := DecodeHeaderResult(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if Status(r.Value) != hr.Status {
		t.Fatalf("result value %v != status %v", Status(r.Value), hr.Status)
	}
	return hr, out.Changes
}

func update(id string, req uint64, at int64, title *string, setTitle bool, meta string, expected *uint64) []byte {
	u := &UpdateSession{RequestID: req, SessionID: id, At: at, SetTitle: setTitle, Title: title, ExpectedVersion: expected}
	if meta != "" {
		u.Metadata = []byte(meta)
	}
	return EncodeUpdateSession(u)
}

func archive(id string, req uint64, at int64, archived bool) []byte {
	return EncodeSetArchived(&SetArchived{RequestID: req, SessionID: id, At: at, Archived: archived})
}

// TestCreateSetsHeader: a create starts at version 1, not archived, with
// updated_at = created_at, and reports one created change; its retry
// reports none.
func TestCreateSetsHeader(t *testing.T) {
	s := NewState()
	var out Output
	s.Apply(createCmd("s1", 5), &out)
	s.Apply(createCmd("s1", 5), &out)
	info, _ := s.Session("s1")
	h := info.Header
	if h.Version != 1 || h.Archived || h.UpdatedAt != created || h.CreatedAt != created {
		t.Fatalf("header = %+v", h)
	}
	if len(out.Changes) != 1 || out.Changes[0].Kind != SessionCreated || !headersEqual(&out.Changes[0].Header, &h) {
		t.Fatalf("changes = %+v", out.Changes)
	}
}

// TestUpdateSession walks one session through the update rules: title
// set and cleared, shallow metadata merge, compare-and-set on the
// version, our own retry, and updated_at that never goes backwards.
func TestUpdateSession(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	final := "Final"
	steps := []struct {
		name        string
		cmd         []byte
		wantStatus  Status
		wantVersion uint64 // of the session afterwards
		wantTitle   *string
		wantMeta    string
		wantUpdated int64
		wantChange  bool
		wantCurrent uint64 // conflict: the version reported
	}{
		{"unknown session", update("nope", 0, created+10, &final, true, "", nil), StatusSessionNotFound,
			1, ptr("T s"), `{"k":"v"}`, created, false, 0},
		{"title", update("s", 0, created+10, &final, true, "", nil), StatusOK,
			2, &final, `{"k":"v"}`, created + 10, true, 0},
		{"metadata merge keeps other keys", update("s", 0, created+20, nil, false, `{"a":{"x":1},"z":null}`, nil), StatusOK,
			3, &final, `{"a":{"x":1},"k":"v","z":null}`, created + 20, true, 0},
		{"nested objects are replaced whole", update("s", 0, created+30, nil, false, `{"a":{"y":2},"k":"w"}`, nil), StatusOK,
			4, &final, `{"a":{"y":2},"k":"w","z":null}`, created + 30, true, 0},
		{"expected version matches", update("s", 0, created+40, nil, true, "", u64(4)), StatusOK,
			5, nil, `{"a":{"y":2},"k":"w","z":null}`, created + 40, true, 0},
		{"expected version stale", update("s", 0, created+50, &final, true, "", u64(4)), StatusExpectedVersionConflict,
			5, nil, `{"a":{"y":2},"k":"w","z":null}`, created + 40, false, 5},
		{"same values still bump the version", update("s", 7, created+60, nil, true, `{}`, nil), StatusOK,
			6, nil, `{"a":{"y":2},"k":"w","z":null}`, created + 60, true, 0},
		{"our own retry applies once", update("s", 7, created+70, nil, true, `{}`, nil), StatusOK,
			6, nil, `{"a":{"y":2},"k":"w","z":null}`, created + 60, false, 0},
		{"a clock behind the last change still moves updated_at forward", update("s", 0, created, &final, true, "", nil), StatusOK,
			7, &final, `{"a":{"y":2},"k":"w","z":null}`, created + 61, true, 0},
		{"metadata past the limit", update("s", 0, created+80, nil, false, `{"big":"`+strings.Repeat("x", MaxMetadataBytes)+`"}`, nil),
			StatusMetadataTooLarge, 7, &final, `{"a":{"y":2},"k":"w","z":null}`, created + 61, false, 0},
		{"neither title nor metadata", update("s", 0, created+90, nil, false, "", nil), StatusMalformed,
			7, &final, `{"a":{"y":2},"k":"w","z":null}`, created + 61, false, 0},
		{"metadata not an object", update("s", 0, created+90, nil, false, `[1]`, nil), StatusMalformed,
			7, &final, `{"a":{"y":2},"k":"w","z":null}`, created + 61, false, 0},
	}
	for _, st := range steps {
		before := cloneState(t, s)
		r, changes := applyHeader(t, s, st.cmd)
		if r.Status != st.wantStatus {
			t.Fatalf("%s: status %v, want %v", st.name, r.Status, st.wantStatus)
		}
		info, _ := s.Session("s")
		h := info.Header
		if h.Version != st.wantVersion || !optEqual(h.Title, st.wantTitle) || string(h.Metadata) != st.wantMeta ||
			h.UpdatedAt != st.wantUpdated {
			t.Fatalf("%s: header %+v (title %v, metadata %s)", st.name, h, h.Title, h.Metadata)
		}
		if st.wantStatus == StatusOK && !headersEqual(&r.Session.Header, &h) {
			t.Fatalf("%s: result header %+v, state %+v", st.name, r.Session.Header, h)
		}
		if r.Changed != st.wantChange || (len(changes) == 1) != st.wantChange {
			t.Fatalf("%s: changed=%v, %d changes", st.name, r.Changed, len(changes))
		}
		if st.wantChange && (changes[0].Kind != SessionUpdated || !headersEqual(&changes[0].Header, &h)) {
			t.Fatalf("%s: change %+v", st.name, changes[0])
		}
		if st.wantStatus == StatusExpectedVersionConflict && (r.Current != st.wantCurrent || r.Expected != 4) {
			t.Fatalf("%s: conflict %+v", st.name, r)
		}
		if st.wantStatus != StatusOK && !s.Equal(before) {
			t.Fatalf("%s: a refused update changed the state", st.name)
		}
		checkInvariants(t, s)
	}
}

// TestSetArchived: flips change updated_at and report a change, repeats
// change nothing, the version never moves, and an archived session stays
// patchable and appendable.
func TestSetArchived(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	steps := []struct {
		name        string
		cmd         []byte
		wantStatus  Status
		wantArch    bool
		wantUpdated int64
		wantChange  ChangeKind // 0: none
	}{
		{"unknown session", archive("nope", 0, created+5, true), StatusSessionNotFound, false, created, 0},
		{"unarchive of an active session is a no-op", archive("s", 0, created+5, false), StatusOK, false, created, 0},
		{"archive", archive("s", 0, created+10, true), StatusOK, true, created + 10, SessionArchived},
		{"archive again", archive("s", 0, created+20, true), StatusOK, true, created + 10, 0},
		{"unarchive", archive("s", 0, created+30, false), StatusOK, false, created + 30, SessionUnarchived},
		{"archive with a clock behind", archive("s", 0, created, true), StatusOK, true, created + 31, SessionArchived},
		{"truncated", archive("s", 0, created+40, false)[:3], StatusMalformed, true, created + 31, 0},
	}
	for _, st := range steps {
		r, changes := applyHeader(t, s, st.cmd)
		info, _ := s.Session("s")
		if r.Status != st.wantStatus || info.Archived != st.wantArch || info.UpdatedAt != st.wantUpdated || info.Version != 1 {
			t.Fatalf("%s: status %v, header %+v", st.name, r.Status, info.Header)
		}
		if st.wantStatus == StatusOK && r.Session.Archived != st.wantArch {
			t.Fatalf("%s: result says archived=%v", st.name, r.Session.Archived)
		}
		if (st.wantChange != 0) != (len(changes) == 1) || (st.wantChange != 0 && changes[0].Kind != st.wantChange) {
			t.Fatalf("%s: changes %+v", st.name, changes)
		}
	}
	if r, _ := applyAppend(t, s, appendCmd("s", content("p", 1, "x"), nil, 0)); r.Status != StatusOK {
		t.Fatalf("append to an archived session: %v", r.Status)
	}
	if r, _ := applyHeader(t, s, update("s", 0, created+50, nil, false, `{"n":1}`, u64(1))); r.Status != StatusOK ||
		!r.Session.Archived || r.Session.Version != 2 || r.Session.LastSeq != 1 {
		t.Fatalf("update of an archived session: %+v", r)
	}
}

func TestListArchivedFilter(t *testing.T) {
	s := NewState()
	for _, id := range []string{"a", "b", "c", "d"} {
		apply(t, s, createCmd(id, 0))
	}
	apply(t, s, archive("b", 0, created+1, true))
	apply(t, s, archive("d", 0, created+1, true))
	tests := []struct {
		filter ArchivedFilter
		want   string
	}{{NotArchived, "ac"}, {OnlyArchived, "bd"}, {AnyArchived, "abcd"}}
	for _, tt := range tests {
		var got string
		for _, x := range s.List(ListQuery{Archived: tt.filter, Limit: 10}) {
			got += x.ID
		}
		if got != tt.want {
			t.Errorf("filter %d: %q, want %q", tt.filter, got, tt.want)
		}
	}
	if got := s.List(ListQuery{OnlyID: "b", Limit: 10}); len(got) != 0 {
		t.Errorf("a session-locked default list shows its archived session: %+v", got)
	}
}

func TestHeaderCodec(t *testing.T) {
	title := "t"
	for _, h := range []Header{
		{ID: "s", TenantID: "acme", Metadata: []byte(`{}`), CreatedAt: 5, UpdatedAt: 5, Version: 1},
		{ID: "s", TenantID: "acme", Title: &title, Creator: Principal{"acme", "u", "user"}, Metadata: []byte(`{"a":1}`),
			CreatedAt: -3, UpdatedAt: 9, Version: 1 << 40, Archived: true},
	} {
		b := AppendHeader([]byte("prefix"), &h)
		got, err := ParseHeader(b[len("prefix"):])
		if err != nil || !headersEqual(&got, &h) {
			t.Fatalf("round trip of %+v: %+v, %v", h, got, err)
		}
		for n := 0; n < len(b)-len("prefix"); n++ {
			if _, err := ParseHeader(b[len("prefix") : len("prefix")+n]); err == nil {
				t.Fatalf("truncated header (%d bytes) accepted", n)
			}
		}
		if _, err := ParseHeader(append(b[len("prefix"):], 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
	for name, h := range map[string]Header{
		"version 0":               {ID: "s", CreatedAt: 1, UpdatedAt: 1},
		"updated before creation": {ID: "s", CreatedAt: 2, UpdatedAt: 1, Version: 1},
	} {
		if _, err := ParseHeader(AppendHeader(nil, &h)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// v1Scenario is the state fsm/testdata/snapshot-v1.bin holds. That file
// was written by the build before session headers could change (format
// STCSNAP1) from exactly these commands; it must restore to the state the
// same commands build today.
func v1Scenario(t testing.TB) *State {
	s := NewState()
	apply(t, s, createCmd("s1", 1))
	apply(t, s, EncodeCreateSession(&CreateSession{RequestID: 2, Header: Header{ID: "s2", TenantID: "other",
		Metadata: []byte(`{}`), CreatedAt: 1_700_000_000_000_001}}))
	apply(t, s, createCmd("s3", 3))
	for i := uint64(1); i <= 5; i++ {
		applyAppend(t, s, appendCmd("s1", content("p1", i, "one"), nil, 10+i))
	}
	applyAppend(t, s, appendCmd("s1", content("p2", 1, "two"), u64(5), 20))
	apply(t, s, EncodeAppendEvents([]AppendEvent{appendCmd("s2", content("p1", 1, "a"), nil, 0),
		appendCmd("s2", content("p1", 2, "b"), nil, 0)}))
	apply(t, s, EncodeAckArchived([]ArchiveMark{{SessionID: "s1", Seq: 3}, {SessionID: "s2", Seq: 2}}))
	checkInvariants(t, s)
	return s
}

func TestSnapshotV1Restores(t *testing.T) {
	v1, err := os.ReadFile("testdata/snapshot-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(v1, []byte(snapshotMagicV1)) {
		t.Fatalf("testdata is not a format 1 snapshot: %q", v1[:8])
	}
	got, err := ReadSnapshot(bytes.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	want := v1Scenario(t)
	if !got.Equal(want) || got.Stats() != want.Stats() {
		t.Fatal("format 1 snapshot restores to another state")
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		info, _ := got.Session(id)
		if info.Version != 1 || info.Archived || info.UpdatedAt != info.CreatedAt {
			t.Fatalf("%s: restored header %+v", id, info.Header)
		}
	}
	checkInvariants(t, got)
	// While no header changed, this build writes format 1, which the
	// previous build reads: its checks are those of restoreSessionV1 (event
	// objects need only start with their seq, and now also carry cursor).
	b1 := snapshotBytes(t, want)
	if !bytes.HasPrefix(b1, []byte(snapshotMagicV1)) {
		t.Fatalf("a state without header changes is written as %q", b1[:8])
	}
	if again, err := ReadSnapshot(bytes.NewReader(b1)); err != nil || !again.Equal(want) {
		t.Fatalf("format 1 round trip: %v", err)
	}
	// Once a header changes, the next snapshot is format 2, and restores.
	if r, _ := applyHeader(t, got, update("s1", 0, created+1, nil, false, `{"n":1}`, u64(1))); r.Status != StatusOK || r.Session.Version != 2 {
		t.Fatalf("update after restore: %+v", r)
	}
	b := snapshotBytes(t, got)
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		t.Fatalf("snapshot written as %q", b[:8])
	}
	again, err := ReadSnapshot(bytes.NewReader(b))
	if err != nil || !again.Equal(got) {
		t.Fatalf("format 2 round trip after a format 1 restore: %v", err)
	}
}

// TestSnapshotFormatChoice: format 1 exactly while every header is as its
// create left it; any change, even one undone, needs format 2.
func TestSnapshotFormatChoice(t *testing.T) {
	for _, tt := range []struct {
		name string
		cmds [][]byte
		want string
	}{
		{"creates only", nil, snapshotMagicV1},
		{"archive is a repeat", [][]byte{archive("s1", 0, created+1, false)}, snapshotMagicV1},
		{"archived", [][]byte{archive("s1", 0, created+1, true)}, snapshotMagic},
		{"archived then unarchived", [][]byte{archive("s1", 0, created+1, true), archive("s1", 0, created+2, false)}, snapshotMagic},
		{"updated", [][]byte{update("s1", 0, created+1, ptr("x"), true, "", nil)}, snapshotMagic},
	} {
		s := v1Scenario(t)
		for _, c := range tt.cmds {
			apply(t, s, c)
		}
		if b := snapshotBytes(t, s); string(b[:8]) != tt.want {
			t.Errorf("%s: written as %q, want %q", tt.name, b[:8], tt.want)
		}
	}
}

func snapshotBytes(t testing.TB, s *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotUnknownFormatRefused(t *testing.T) {
	_, err := ReadSnapshot(strings.NewReader("STCSNAP3\x00"))
	if err == nil || !strings.Contains(err.Error(), `unknown format "STCSNAP3"`) {
		t.Fatalf("err = %v", err)
	}
}

type recordingNotifier struct{ outs []Output }

func (n *recordingNotifier) Committed(group uint64, out Output) { n.outs = append(n.outs, out) }

// TestStateMachineNotifiesChanges: one applied batch reaches the notifier
// as one Output with its events and header changes in commit order; a
// batch that commits nothing is not reported.
func TestStateMachineNotifiesChanges(t *testing.T) {
	n := &recordingNotifier{}
	m := Factory(func(s uint64) uint64 { return s }, n, nil)(7, 1)
	batch := func(cmds ...[]byte) {
		ents := make([]sm.Entry, len(cmds))
		for i, c := range cmds {
			ents[i] = sm.Entry{Index: uint64(i + 1), Cmd: c}
		}
		if _, err := m.Update(ents); err != nil {
			t.Fatal(err)
		}
	}
	batch(createCmd("a", 1), EncodeAppendEvent(ptr(appendCmd("a", content("p", 1, "x"), nil, 0))),
		update("a", 0, created+1, ptr("new"), true, "", nil), archive("a", 0, created+2, true),
		archive("a", 0, created+3, true), archive("a", 0, created+4, false))
	batch(archive("a", 0, created+5, false), []byte{99})
	if len(n.outs) != 1 {
		t.Fatalf("%d notifications, want 1", len(n.outs))
	}
	out := n.outs[0]
	var kinds []ChangeKind
	for _, c := range out.Changes {
		kinds = append(kinds, c.Kind)
	}
	want := []ChangeKind{SessionCreated, SessionUpdated, SessionArchived, SessionUnarchived}
	if len(out.Commits) != 1 || fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("commits %d, changes %v, want %v", len(out.Commits), kinds, want)
	}
	if last := out.Changes[3].Header; last.Version != 2 || last.Archived || *last.Title != "new" || last.UpdatedAt != created+4 {
		t.Fatalf("last change header %+v", last)
	}
}

// TestAppendResultsCarryArchivedSeq: every append result reports the
// session's archived_seq, and results without that trailer (written by
// the previous version) still decode.
func TestAppendResultsCarryArchivedSeq(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	for i := uint64(1); i <= 3; i++ {
		applyAppend(t, s, appendCmd("s", content("p", i, "x"), nil, 0))
	}
	apply(t, s, EncodeAckArchived([]ArchiveMark{{SessionID: "s", Seq: 2}}))
	r, _ := applyAppend(t, s, appendCmd("s", content("p", 4, "x"), nil, 0))
	if r.Seq != 4 || r.ArchivedSeq != 2 {
		t.Fatalf("append after ack: %+v", r)
	}
	if r, _ := applyAppend(t, s, appendCmd("s", content("p", 4, "x"), nil, 0)); r.Status != StatusDeduped || r.ArchivedSeq != 2 {
		t.Fatalf("dedupe: %+v", r)
	}
	if r, _ := applyAppend(t, s, appendCmd("s", content("p", 9, "x"), nil, 0)); r.Status != StatusProducerSeqConflict || r.ArchivedSeq != 2 {
		t.Fatalf("conflict: %+v", r)
	}
	// The previous layout: the records without the trailer.
	old := []byte{1, byte(StatusOK), 4, 4, 0, 0}
	rs, err := DecodeAppendResults(old)
	if err != nil || len(rs) != 1 || rs[0].Seq != 4 || rs[0].ArchivedSeq != 0 {
		t.Fatalf("previous layout: %+v, %v", rs, err)
	}
	full := encodeAppendResults([]AppendResult{{Status: StatusOK, Seq: 4, LastSeq: 4, ArchivedSeq: 2}})
	if !bytes.HasPrefix(full, old) {
		t.Fatalf("the trailer is not after the previous layout: %v", full)
	}
}
