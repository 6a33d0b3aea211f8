package fsm

import (
	"bytes"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"starcite/fsm/jsonc"
)

// content builds an event content whose payload carries text, so two
// contents differ exactly when their texts (or producers) differ.
func content(producer string, seq uint64, text string) Content {
	return Content{Type: "msg", Payload: []byte(`{"text":` + strconv.Quote(text) + `}`),
		Actor: "service:service", ProducerID: producer, ProducerSeq: seq,
		Metadata: []byte(`{}`), Refs: []byte(`{}`)}
}

func appendCmd(session string, c Content, expected *uint64, req uint64) AppendEvent {
	return AppendEvent{RequestID: req, SessionID: session, ProducerID: c.ProducerID,
		ProducerSeq: c.ProducerSeq, ExpectedSeq: expected, Hash: c.Hash(),
		Body: AppendBody(nil, &c, 1_700_000_000_000_000+int64(c.ProducerSeq), "acme")}
}

func createCmd(id string, req uint64) []byte {
	title := "T " + id
	return EncodeCreateSession(&CreateSession{RequestID: req, Header: Header{ID: id, TenantID: "acme",
		Title: &title, Creator: Principal{TenantID: "acme", ID: "u1", Type: "user"},
		Metadata: []byte(`{"k":"v"}`), CreatedAt: 1_700_000_000_000_000}})
}

func apply(t testing.TB, s *State, cmd []byte) (Result, []Commit) {
	t.Helper()
	var out Output
	r := s.Apply(cmd, &out)
	return r, out.Commits
}

func applyAppend(t testing.TB, s *State, a AppendEvent) (AppendResult, []Commit) {
	t.Helper()
	r, commits := apply(t, s, EncodeAppendEvent(&a))
	rs, err := DecodeAppendResults(r.Data)
	if err != nil || len(rs) != 1 {
		t.Fatalf("decode results: %v (%d)", err, len(rs))
	}
	if Status(r.Value) != rs[0].Status {
		t.Fatalf("result value %d != status %v", r.Value, rs[0].Status)
	}
	return rs[0], commits
}

func u64(v uint64) *uint64 { return &v }

func TestCreateSession(t *testing.T) {
	tests := []struct {
		name string
		cmds [][]byte
		want Status
	}{
		{"new", [][]byte{createCmd("s1", 1)}, StatusOK},
		{"duplicate id", [][]byte{createCmd("s1", 1), createCmd("s1", 2)}, StatusSessionExists},
		{"retry of the same request", [][]byte{createCmd("s1", 7), createCmd("s1", 7)}, StatusOK},
		{"zero request id never matches", [][]byte{createCmd("s1", 0), createCmd("s1", 0)}, StatusSessionExists},
		{"malformed", [][]byte{createCmd("s1", 1)[:10]}, StatusMalformed},
		{"empty entry", [][]byte{{}}, StatusMalformed},
		{"unknown kind", [][]byte{{99, 1, 2}}, StatusMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			var r Result
			for _, c := range tt.cmds {
				r, _ = apply(t, s, c)
			}
			if Status(r.Value) != tt.want {
				t.Fatalf("status = %v, want %v", Status(r.Value), tt.want)
			}
		})
	}
	s := NewState()
	apply(t, s, createCmd("s1", 1))
	info, ok := s.Session("s1")
	if !ok || info.TenantID != "acme" || *info.Title != "T s1" || info.LastSeq != 0 || string(info.Metadata) != `{"k":"v"}` {
		t.Fatalf("session = %+v", info)
	}
}

// TestAppendRules walks one session through every producer rule of
// docs/api.md#producer-sequencing and docs/api.md#expected-seq, with
// docs/decisions.md#d4 (an exact retry dedupes before the expected_seq
// check).
func TestAppendRules(t *testing.T) {
	steps := []struct {
		name     string
		session  string
		c        Content
		expected *uint64
		req      uint64
		want     AppendResult
	}{
		{"unknown session", "nope", content("p", 1, "a"), nil, 0, AppendResult{Status: StatusSessionNotFound}},
		{"new producer must start at 1", "s", content("p", 2, "a"), nil, 0,
			AppendResult{Status: StatusProducerSeqConflict, Expected: 1, Actual: 2}},
		{"first append", "s", content("p", 1, "a"), nil, 0, AppendResult{Status: StatusOK, Seq: 1, LastSeq: 1}},
		{"next producer seq", "s", content("p", 2, "b"), nil, 0, AppendResult{Status: StatusOK, Seq: 2, LastSeq: 2}},
		{"exact retry dedupes", "s", content("p", 2, "b"), nil, 0, AppendResult{Status: StatusDeduped, Seq: 2, LastSeq: 2}},
		{"same seq other content", "s", content("p", 2, "X"), nil, 0,
			AppendResult{Status: StatusProducerReplayConflict, LastSeq: 2}},
		{"older seq", "s", content("p", 1, "a"), nil, 0,
			AppendResult{Status: StatusProducerSeqConflict, LastSeq: 2, Expected: 3, Actual: 1}},
		{"gap", "s", content("p", 4, "d"), nil, 0,
			AppendResult{Status: StatusProducerSeqConflict, LastSeq: 2, Expected: 3, Actual: 4}},
		{"expected_seq mismatch", "s", content("p", 3, "c"), u64(1), 0,
			AppendResult{Status: StatusExpectedSeqConflict, LastSeq: 2, Expected: 1, Actual: 2}},
		{"expected_seq match", "s", content("p", 3, "c"), u64(2), 0, AppendResult{Status: StatusOK, Seq: 3, LastSeq: 3}},
		{"exact retry with stale expected_seq dedupes", "s", content("p", 3, "c"), u64(2), 0,
			AppendResult{Status: StatusDeduped, Seq: 3, LastSeq: 3}},
		{"replay conflict with stale expected_seq reports expected_seq", "s", content("p", 3, "Z"), u64(2), 0,
			AppendResult{Status: StatusExpectedSeqConflict, LastSeq: 3, Expected: 2, Actual: 3}},
		{"expected_seq 0 on non-empty session", "s", content("q", 1, "x"), u64(0), 0,
			AppendResult{Status: StatusExpectedSeqConflict, LastSeq: 3, Expected: 0, Actual: 3}},
		{"second producer starts at 1", "s", content("q", 1, "x"), nil, 42, AppendResult{Status: StatusOK, Seq: 4, LastSeq: 4}},
		{"our own retry is not reported as deduped", "s", content("q", 1, "x"), nil, 42, AppendResult{Status: StatusOK, Seq: 4, LastSeq: 4}},
		{"a client retry of it is", "s", content("q", 1, "x"), nil, 43, AppendResult{Status: StatusDeduped, Seq: 4, LastSeq: 4}},
		{"only the last producer seq dedupes", "s", content("p", 2, "b"), nil, 0,
			AppendResult{Status: StatusProducerSeqConflict, LastSeq: 4, Expected: 4, Actual: 2}},
		{"producer continues after others", "s", content("p", 4, "d"), nil, 0, AppendResult{Status: StatusOK, Seq: 5, LastSeq: 5}},
	}
	s := NewState()
	apply(t, s, createCmd("s", 1))
	for _, st := range steps {
		before := cloneState(t, s)
		got, commits := applyAppend(t, s, appendCmd(st.session, st.c, st.expected, st.req))
		if got != st.want {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
		wrote := st.want.Status == StatusOK && st.want.Seq == st.want.LastSeq && len(commits) == 1
		if st.want.Status != StatusOK || st.req != 0 && st.name == "our own retry is not reported as deduped" {
			if !s.Equal(before) {
				t.Fatalf("%s: a command that wrote nothing changed the state", st.name)
			}
			if len(commits) != 0 {
				t.Fatalf("%s: %d commits for a command that wrote nothing", st.name, len(commits))
			}
		} else if !wrote {
			t.Fatalf("%s: want exactly one commit, got %d", st.name, len(commits))
		}
	}
	r := s.Events("s", 0, 100)
	if len(r.Events) != 5 || r.LastSeq != 5 {
		t.Fatalf("events = %d, last = %d", len(r.Events), r.LastSeq)
	}
	for i, ev := range r.Events {
		if ev.Seq != uint64(i+1) || !bytes.HasPrefix(ev.JSON, []byte(`{"seq":`+strconv.Itoa(i+1)+`,"cursor":`+strconv.Itoa(i+1)+`,"type":"msg"`)) {
			t.Fatalf("event %d = %d %s", i, ev.Seq, ev.JSON)
		}
	}
}

func cloneState(t testing.TB, s *State) *State {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	c, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProducerEviction(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	for i := 0; i <= MaxProducers; i++ {
		if r, _ := applyAppend(t, s, appendCmd("s", content("p"+strconv.Itoa(i), 1, "x"), nil, 0)); r.Status != StatusOK {
			t.Fatalf("producer %d: %+v", i, r)
		}
	}
	if n := s.sessions["s"].producers.len(); n != MaxProducers {
		t.Fatalf("tracked producers = %d, want %d", n, MaxProducers)
	}
	// p0 had the oldest last append: forgotten, so its exact retry is a
	// new event and its next seq must start again at 1.
	r, _ := applyAppend(t, s, appendCmd("s", content("p0", 2, "y"), nil, 0))
	if r.Status != StatusProducerSeqConflict || r.Expected != 1 {
		t.Fatalf("forgotten producer seq 2: %+v", r)
	}
	r, _ = applyAppend(t, s, appendCmd("s", content("p0", 1, "x"), nil, 0))
	if r.Status != StatusOK || r.Seq != MaxProducers+2 {
		t.Fatalf("forgotten producer retry: %+v", r)
	}
	// p0 coming back pushed out the next oldest, p1; p2 is still known.
	if r, _ := applyAppend(t, s, appendCmd("s", content("p2", 1, "x"), nil, 0)); r.Status != StatusDeduped {
		t.Fatalf("p2 retry: %+v", r)
	}
	if r, _ := applyAppend(t, s, appendCmd("s", content("p1", 2, "x"), nil, 0)); r.Status != StatusProducerSeqConflict || r.Expected != 1 {
		t.Fatalf("p1 after eviction: %+v", r)
	}
}

func TestEvictProducerTieBreak(t *testing.T) {
	ps := newProducerSet()
	ps.restore([]producerEntry{{"c", producerCursor{sessionSeq: 9}}, {"a", producerCursor{sessionSeq: 5}},
		{"b", producerCursor{sessionSeq: 5}}})
	if ps.oldest.id != "b" || ps.oldest.next.id != "a" || ps.newest.id != "c" {
		t.Fatalf("want b (the larger id on a tie), a, c; oldest %s newest %s", ps.oldest.id, ps.newest.id)
	}
}

func TestAckArchived(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	for i := uint64(1); i <= 10; i++ {
		applyAppend(t, s, appendCmd("s", content("p", i, "x"), nil, 0))
	}
	full := s.Stats()
	tests := []struct {
		name         string
		ack          uint64
		wantArchived uint64
		wantHot      int64
	}{
		{"partial", 4, 4, 6},
		{"not backwards", 2, 4, 6},
		{"clamped to last_seq", 99, 10, 0},
	}
	for _, tt := range tests {
		apply(t, s, EncodeAckArchived([]ArchiveMark{{SessionID: "s", Seq: tt.ack}, {SessionID: "missing", Seq: 3}}))
		info, _ := s.Session("s")
		st := s.Stats()
		if info.ArchivedSeq != tt.wantArchived || st.HotEvents != tt.wantHot {
			t.Fatalf("%s: archived %d hot %d", tt.name, info.ArchivedSeq, st.HotEvents)
		}
		r := s.Events("s", 0, 100)
		if len(r.Events) != int(tt.wantHot) || (len(r.Events) > 0 && r.Events[0].Seq != tt.wantArchived+1) {
			t.Fatalf("%s: hot events %v", tt.name, r.Events)
		}
	}
	st := s.Stats()
	if st.HotBytes != 0 || st.PendingSessions != 0 || full.HotBytes == 0 {
		t.Fatalf("after full ack: %+v (before %+v)", st, full)
	}
	// Appends continue after eviction.
	if r, _ := applyAppend(t, s, appendCmd("s", content("p", 11, "x"), nil, 0)); r.Seq != 11 {
		t.Fatalf("append after ack: %+v", r)
	}
	if r := s.Events("s", 10, 5); len(r.Events) != 1 || r.Events[0].Seq != 11 {
		t.Fatalf("events after 10: %+v", r)
	}
}

func TestAppendEventsBatch(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("a", 1))
	apply(t, s, createCmd("b", 2))
	batch := []AppendEvent{
		appendCmd("a", content("p", 1, "1"), nil, 0),
		appendCmd("b", content("p", 1, "1"), nil, 0),
		appendCmd("a", content("p", 1, "1"), nil, 0), // dedupes against the first item
		appendCmd("a", content("p", 3, "3"), nil, 0), // gap
		appendCmd("zz", content("p", 1, "1"), nil, 0),
		appendCmd("a", content("p", 2, "2"), u64(1), 0),
	}
	r, commits := apply(t, s, EncodeAppendEvents(batch))
	rs, err := DecodeAppendResults(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{StatusOK, StatusOK, StatusDeduped, StatusProducerSeqConflict, StatusSessionNotFound, StatusOK}
	for i, w := range want {
		if rs[i].Status != w {
			t.Fatalf("item %d: %v, want %v", i, rs[i].Status, w)
		}
	}
	if len(commits) != 3 || commits[2].SessionID != "a" || commits[2].Event.Seq != 2 || commits[2].LastSeq != 2 {
		t.Fatalf("commits = %+v", commits)
	}
	// A batch whose tail is corrupt applies nothing.
	before := cloneState(t, s)
	bad := EncodeAppendEvents([]AppendEvent{appendCmd("a", content("p", 3, "3"), nil, 0), appendCmd("b", content("p", 2, "2"), nil, 0)})
	if r, _ := apply(t, s, bad[:len(bad)-3]); Status(r.Value) != StatusMalformed || !s.Equal(before) {
		t.Fatalf("truncated batch: %v, changed=%v", Status(r.Value), !s.Equal(before))
	}
}

func TestList(t *testing.T) {
	s := NewState()
	for i, id := range []string{"c", "a", "e", "b", "d"} {
		tenant := "acme"
		if id == "d" {
			tenant = "other"
		}
		meta := `{"n":"` + strconv.Itoa(i%2) + `","num":1}`
		apply(t, s, EncodeCreateSession(&CreateSession{Header: Header{ID: id, TenantID: tenant, Metadata: []byte(meta)}}))
	}
	ids := func(ss []SessionInfo) string {
		var b bytes.Buffer
		for _, x := range ss {
			b.WriteString(x.ID)
		}
		return b.String()
	}
	tests := []struct {
		name string
		q    ListQuery
		want string
	}{
		{"all tenants", ListQuery{Limit: 10}, "abcde"},
		{"limit keeps smallest", ListQuery{Limit: 2}, "ab"},
		{"tenant fence", ListQuery{TenantID: "acme", Limit: 10}, "abce"},
		{"after", ListQuery{After: "b", Limit: 10}, "cde"},
		{"filter", ListQuery{Filters: map[string]string{"n": "0"}, Limit: 10}, "cde"},
		{"filter is type exact", ListQuery{Filters: map[string]string{"num": "1"}, Limit: 10}, ""},
		{"only id", ListQuery{OnlyID: "e", TenantID: "acme", Limit: 10}, "e"},
		{"only id of other tenant", ListQuery{OnlyID: "d", TenantID: "acme", Limit: 10}, ""},
		{"zero limit", ListQuery{}, ""},
	}
	for _, tt := range tests {
		if got := ids(s.List(tt.q)); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPendingCycles(t *testing.T) {
	s := NewState()
	for _, id := range []string{"a", "b", "c"} {
		apply(t, s, createCmd(id, 0))
		for i := uint64(1); i <= 3; i++ {
			applyAppend(t, s, appendCmd(id, content("p", i, "x"), nil, 0))
		}
	}
	p := s.Pending("", 2, 2)
	if len(p) != 2 || p[0].SessionID != "a" || p[1].SessionID != "b" || len(p[0].Events) != 2 || p[0].TenantID != "acme" {
		t.Fatalf("first round: %+v", p)
	}
	p = s.Pending("b", 2, 10)
	if len(p) != 2 || p[0].SessionID != "c" || p[1].SessionID != "a" || len(p[0].Events) != 3 {
		t.Fatalf("second round: %+v", p)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := randomState(t, rand.New(rand.NewSource(1)), 400)
	var a, b bytes.Buffer
	if err := s.Snapshot().Write(&a); err != nil {
		t.Fatal(err)
	}
	r, err := ReadSnapshot(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Equal(s) || r.Stats() != s.Stats() {
		t.Fatal("restored state differs")
	}
	if err := r.Snapshot().Write(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("snapshot of the restored state is not byte-identical")
	}
	for _, n := range []int{0, 3, len(a.Bytes()) / 2, len(a.Bytes()) - 1} {
		if _, err := ReadSnapshot(bytes.NewReader(a.Bytes()[:n])); err == nil {
			t.Fatalf("truncated snapshot (%d bytes) accepted", n)
		}
	}
}

// TestSnapshotIsolation: a snapshot captured before further applies and
// evictions still writes the state as it was.
func TestSnapshotIsolation(t *testing.T) {
	s := randomState(t, rand.New(rand.NewSource(2)), 200)
	want := cloneState(t, s)
	sn := s.Snapshot()
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 200; i++ {
		s.Apply(randomCommand(rng, s), nil)
	}
	var buf bytes.Buffer
	if err := sn.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		t.Fatal("snapshot changed after later applies")
	}
}

// TestReplayIsDeterministic: the same log gives the same state, whether
// applied from scratch or from a snapshot taken halfway.
func TestReplayIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	gen := NewState()
	var log [][]byte
	for i := 0; i < 3000; i++ {
		cmd := randomCommand(rng, gen)
		gen.Apply(cmd, nil)
		log = append(log, cmd)
	}
	a, b := NewState(), NewState()
	var resultsA, resultsB []Result
	for i, cmd := range log {
		r := a.Apply(cmd, nil)
		resultsA = append(resultsA, r)
		if i == len(log)/2 {
			b = cloneState(t, a)
			resultsB = append(resultsB, resultsA...)
			continue
		}
		if i > len(log)/2 {
			r := b.Apply(cmd, nil)
			resultsB = append(resultsB, r)
		}
	}
	if !a.Equal(gen) || !b.Equal(a) {
		t.Fatal("replayed states differ")
	}
	for i := range resultsA {
		if resultsA[i].Value != resultsB[i].Value || !bytes.Equal(resultsA[i].Data, resultsB[i].Data) {
			t.Fatalf("result %d differs", i)
		}
	}
	checkInvariants(t, a)
}

// randomState applies n random commands to a new state.
func randomState(t testing.TB, rng *rand.Rand, n int) *State {
	s := NewState()
	for i := 0; i < n; i++ {
		s.Apply(randomCommand(rng, s), nil)
	}
	checkInvariants(t, s)
	return s
}

// randomCommand mostly makes valid progress (so states grow) and
// sometimes sends conflicts, retries, acks and garbage.
func randomCommand(rng *rand.Rand, s *State) []byte {
	sid := "s" + strconv.Itoa(rng.Intn(6))
	producer := "p" + strconv.Itoa(rng.Intn(4))
	next := uint64(1)
	if ss, ok := s.sessions[sid]; ok {
		if c, ok := ss.producers.get(producer); ok {
			next = c.producerSeq + 1
		}
	}
	switch k := rng.Intn(20); {
	case k < 2:
		return createCmd(sid, uint64(rng.Intn(3)))
	case k < 14:
		seq := next
		if rng.Intn(8) == 0 {
			seq = uint64(rng.Intn(5))
		}
		var exp *uint64
		if rng.Intn(6) == 0 {
			exp = u64(uint64(rng.Intn(10)))
		}
		return EncodeAppendEvent(ptr(appendCmd(sid, content(producer, seq, strconv.Itoa(rng.Intn(3))), exp, uint64(rng.Intn(3)))))
	case k < 16:
		var batch []AppendEvent
		for i := 0; i < 1+rng.Intn(4); i++ {
			batch = append(batch, appendCmd(sid, content(producer, next+uint64(i), "b"), nil, 0))
		}
		return EncodeAppendEvents(batch)
	case k < 17:
		var exp *uint64
		if rng.Intn(2) == 0 {
			exp = u64(uint64(rng.Intn(4)))
		}
		meta := []string{"", `{}`, `{"n":"1"}`, `{"k":null,"m":[1]}`}[rng.Intn(4)]
		title := []*string{nil, ptr(""), ptr("t")}[rng.Intn(3)]
		return update(sid, uint64(rng.Intn(3)), created+rng.Int63n(100), title, meta == "" || rng.Intn(2) == 0, meta, exp)
	case k < 18:
		return archive(sid, uint64(rng.Intn(3)), created+rng.Int63n(100), rng.Intn(2) == 0)
	case k < 19:
		var last uint64
		if ss, ok := s.sessions[sid]; ok {
			last = ss.info.LastSeq
		}
		return EncodeAckArchived([]ArchiveMark{{SessionID: sid, Seq: uint64(rng.Int63n(int64(last) + 2))}})
	default:
		b := make([]byte, rng.Intn(40))
		rng.Read(b)
		return b
	}
}

func ptr[T any](v T) *T { return &v }

// checkInvariants asserts what must hold after any sequence of commands.
func checkInvariants(t testing.TB, s *State) {
	t.Helper()
	var hotBytes, hotEvents, producerBytes int64
	for id, ss := range s.sessions {
		in := ss.info
		if in.ID != id || in.Version == 0 || in.UpdatedAt < in.CreatedAt {
			t.Fatalf("%s: header %+v", id, in.Header)
		}
		if ss.meta.Kind != jsonc.Object || !bytes.Equal(ss.meta.Append(nil), in.Metadata) {
			t.Fatalf("%s: parsed metadata differs from %s", id, in.Metadata)
		}
		if in.ArchivedSeq > in.LastSeq {
			t.Fatalf("%s: archived %d > last %d", id, in.ArchivedSeq, in.LastSeq)
		}
		if uint64(len(ss.events)) != in.LastSeq-in.ArchivedSeq {
			t.Fatalf("%s: %d hot events for (%d, %d]", id, len(ss.events), in.ArchivedSeq, in.LastSeq)
		}
		var b int64
		for i, ev := range ss.events {
			if ev.Seq != in.ArchivedSeq+1+uint64(i) {
				t.Fatalf("%s: event %d has seq %d", id, i, ev.Seq)
			}
			if !bytes.HasPrefix(ev.JSON, []byte(fmt.Sprintf(`{"seq":%d,`, ev.Seq))) {
				t.Fatalf("%s: event %d JSON %s", id, ev.Seq, ev.JSON)
			}
			b += int64(len(ev.JSON) + eventOverhead)
		}
		if b != ss.hotBytes {
			t.Fatalf("%s: hot bytes %d, counted %d", id, ss.hotBytes, b)
		}
		_, pending := s.pending[id]
		if pending != (len(ss.events) > 0) {
			t.Fatalf("%s: pending=%v with %d hot events", id, pending, len(ss.events))
		}
		checkProducers(t, id, &ss.producers, in.LastSeq)
		producerBytes += ss.producers.bytes
		hotBytes += ss.hotBytes
		hotEvents += int64(len(ss.events))
	}
	if hotBytes != s.hotBytes || hotEvents != s.hotEvents || producerBytes != s.producerBytes {
		t.Fatalf("totals %d/%d/%d, counted %d/%d/%d", s.hotBytes, s.hotEvents, s.producerBytes,
			hotBytes, hotEvents, producerBytes)
	}
}

// checkProducers checks a session's producer cursors: in range, at most
// MaxProducers, linked in forgetting order (session seq ascending, the
// larger id first on a tie) and costed.
func checkProducers(t testing.TB, id string, ps *producerSet, lastSeq uint64) {
	t.Helper()
	if ps.len() > MaxProducers {
		t.Fatalf("%s: %d producers", id, ps.len())
	}
	n, bytes := 0, int64(0)
	var prev *producerNode
	for x := ps.oldest; x != nil; prev, x = x, x.next {
		c := x.cursor
		if c.sessionSeq == 0 || c.sessionSeq > lastSeq || c.producerSeq == 0 {
			t.Fatalf("%s: producer %s cursor %+v with last %d", id, x.id, c, lastSeq)
		}
		if x.prev != prev || ps.byID[x.id] != x {
			t.Fatalf("%s: producer %s badly linked", id, x.id)
		}
		if prev != nil && (prev.cursor.sessionSeq > c.sessionSeq ||
			(prev.cursor.sessionSeq == c.sessionSeq && prev.id < x.id)) {
			t.Fatalf("%s: producer %s (seq %d) after %s (seq %d)", id, x.id, c.sessionSeq, prev.id, prev.cursor.sessionSeq)
		}
		n++
		bytes += producerCost(x.id)
	}
	if n != ps.len() || ps.newest != prev || bytes != ps.bytes {
		t.Fatalf("%s: %d linked producers of %d, %d bytes counted of %d", id, n, ps.len(), bytes, ps.bytes)
	}
}

func TestEventJSONParsesBack(t *testing.T) {
	src, key := "agent", "k1"
	c := Content{Type: "t", Payload: []byte(`{"a":[1,2.5,"x\n"]}`), Actor: "user:u", ProducerID: "w",
		ProducerSeq: 8, Source: &src, Metadata: []byte(`{"m":{}}`), Refs: []byte(`{"to_seq":"5"}`), IdempotencyKey: &key}
	js := EventJSON(42, AppendBody(nil, &c, 1_772_366_401_123_456, "acme"))
	want := `{"seq":42,"cursor":42,"type":"t","payload":{"a":[1,2.5,"x\n"]},"actor":"user:u","producer_id":"w","producer_seq":8,` +
		`"source":"agent","metadata":{"m":{}},"refs":{"to_seq":"5"},"idempotency_key":"k1",` +
		`"inserted_at":"2026-03-01T12:00:01.123456Z","tenant_id":"acme"}`
	if string(js) != want {
		t.Fatalf("event JSON\n got %s\nwant %s", js, want)
	}
	se, err := ParseEvent(js)
	if err != nil {
		t.Fatal(err)
	}
	if got := se.JSON("ignored"); !bytes.Equal(got, js) {
		t.Fatalf("re-rendered\n got %s\nwant %s", got, js)
	}
	// An upstream archive line: other key order, no tenant_id, no Z, seconds.
	up := `{"inserted_at":"2026-03-01T12:00:01","refs":{},"metadata":{},"idempotency_key":null,"source":null,` +
		`"producer_seq":1,"producer_id":"w","actor":"user:u","payload":{"b":1, "a":2},"type":"t","seq":3}`
	se, err = ParseEvent([]byte(up))
	if err != nil {
		t.Fatal(err)
	}
	want = `{"seq":3,"cursor":3,"type":"t","payload":{"a":2,"b":1},"actor":"user:u","producer_id":"w","producer_seq":1,` +
		`"metadata":{},"refs":{},"idempotency_key":null,"inserted_at":"2026-03-01T12:00:01.000000Z","tenant_id":"acme"}`
	if got := string(se.JSON("acme")); got != want {
		t.Fatalf("upstream line\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{`[]`, `{"seq":0}`, `{"seq":1,"type":"t"}`, `not json`} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%s) accepted", bad)
		}
	}
	if _, err := jsonc.Parse(js); err != nil {
		t.Fatalf("event JSON is not valid: %v", err)
	}
	// The previous layout (no cursor, "source":null), as older logs,
	// snapshots and archives hold it, reads as the current one; a null
	// source nested in the payload stays.
	c.Source = nil
	c.Payload = []byte(`{"n":{"source":null},"source":null}`)
	prev := `{"seq":42,` + string(c.AppendJSON(nil)) + `,"inserted_at":"2026-03-01T12:00:01.123456Z","tenant_id":"acme"}`
	cur := EventJSON(42, AppendBody(nil, &c, 1_772_366_401_123_456, "acme"))
	if bytes.Contains(cur, []byte(`"producer_seq":8,"source"`)) || !bytes.Contains(cur, []byte(`{"n":{"source":null},"source":null}`)) {
		t.Fatalf("without a source: %s", cur)
	}
	for _, got := range [][]byte{upgradeEventJSON(42, []byte(prev)), EventJSON(42, []byte(prev[len(`{"seq":42,`):len(prev)-1])),
		upgradeEventJSON(42, cur)} {
		if !bytes.Equal(got, cur) {
			t.Fatalf("previous layout\n got %s\nwant %s", got, cur)
		}
	}
}

func BenchmarkApplyAppend(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s := NewState()
			s.Apply(createCmd("s", 1), nil)
			cmds := make([][]byte, 0, b.N/batch+1)
			for i := 0; i < b.N; i += batch {
				var as []AppendEvent
				for j := 0; j < batch; j++ {
					c := content("p", uint64(i+j+1), "hello world, this is a typical two hundred byte payload for the benchmark......")
					as = append(as, appendCmd("s", c, nil, 0))
				}
				if batch == 1 {
					cmds = append(cmds, EncodeAppendEvent(&as[0]))
				} else {
					cmds = append(cmds, EncodeAppendEvents(as))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var out Output
			for _, cmd := range cmds {
				out.Commits = out.Commits[:0]
				s.Apply(cmd, &out)
			}
			b.StopTimer()
			if got := s.Stats().HotEvents; got < int64(b.N) {
				b.Fatalf("applied %d of %d", got, b.N)
			}
		})
	}
}

// TestProducerEvictionMatchesScan: the constant-time eviction forgets the
// producer the earlier build's scan forgot (smallest session seq, the
// larger id on a tie), so replicas of both builds stay equal, also when
// the set was rebuilt from a snapshot halfway.
func TestProducerEvictionMatchesScan(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	model := map[string]producerCursor{} // the earlier build's cursors
	scanEvict := func() {
		var victim string
		var low uint64
		first := true
		for id, c := range model {
			if first || c.sessionSeq < low || (c.sessionSeq == low && id > victim) {
				victim, low, first = id, c.sessionSeq, false
			}
		}
		delete(model, victim)
	}
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < MaxProducers+3000; i++ {
		if i == MaxProducers+1500 {
			s = cloneState(t, s)
		}
		p := "p" + strconv.Itoa(rng.Intn(MaxProducers+500))
		seq := uint64(1)
		if c, ok := model[p]; ok {
			seq = c.producerSeq + 1
		}
		r, _ := applyAppend(t, s, appendCmd("s", content(p, seq, strconv.Itoa(i)), nil, 0))
		if r.Status != StatusOK {
			t.Fatalf("append %d (%s/%d): %+v", i, p, seq, r)
		}
		model[p] = producerCursor{producerSeq: seq, sessionSeq: r.Seq}
		if len(model) > MaxProducers {
			scanEvict()
		}
	}
	ps := &s.sessions["s"].producers
	checkProducers(t, "s", ps, s.sessions["s"].info.LastSeq)
	if ps.len() != len(model) {
		t.Fatalf("%d producers, the scan keeps %d", ps.len(), len(model))
	}
	for id, c := range model {
		if got, ok := ps.get(id); !ok || got.sessionSeq != c.sessionSeq || got.producerSeq != c.producerSeq {
			t.Fatalf("producer %s: %+v (known %v), the scan has %+v", id, got, ok, c)
		}
	}
}

// TestProducerCursorsCost: cursors count toward the memory budget and
// stop counting when forgotten.
func TestProducerCursorsCost(t *testing.T) {
	s := NewState()
	apply(t, s, createCmd("s", 1))
	long := strings.Repeat("p", 256)
	applyAppend(t, s, appendCmd("s", content(long, 1, "x"), nil, 0))
	applyAppend(t, s, appendCmd("s", content(long, 2, "x"), nil, 0))
	if got, want := s.Stats().ProducerBytes, producerCost(long); got != want {
		t.Fatalf("producer bytes %d, want %d", got, want)
	}
	for i := 0; i < MaxProducers; i++ {
		applyAppend(t, s, appendCmd("s", content("q"+strconv.Itoa(i), 1, "x"), nil, 0))
	}
	var want int64
	for i := 0; i < MaxProducers; i++ {
		want += producerCost("q" + strconv.Itoa(i))
	}
	if got := s.Stats().ProducerBytes; got != want {
		t.Fatalf("after evicting the long id: producer bytes %d, want %d", got, want)
	}
}

// TestForwardable: only the commands a client request causes may be
// forwarded by a peer.
func TestForwardable(t *testing.T) {
	title := "t"
	a := appendCmd("s", content("p", 1, "x"), nil, 0)
	for _, tt := range []struct {
		cmd  []byte
		want bool
	}{
		{createCmd("s", 1), true},
		{EncodeAppendEvent(&a), true},
		{EncodeAppendEvents([]AppendEvent{a}), true},
		{EncodeUpdateSession(&UpdateSession{SessionID: "s", SetTitle: true, Title: &title}), true},
		{EncodeSetArchived(&SetArchived{SessionID: "s", Archived: true}), true},
		{EncodeAckArchived([]ArchiveMark{{SessionID: "s", Seq: 1}}), false},
		{nil, false},
		{[]byte{99}, false},
	} {
		if got := Forwardable(tt.cmd); got != tt.want {
			t.Errorf("%s: forwardable %v, want %v", CommandName(tt.cmd), got, tt.want)
		}
	}
}
