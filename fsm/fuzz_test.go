package fsm

import (
	"bytes"
	"math/rand"
	"os"
	"testing"
)

// FuzzApply feeds arbitrary bytes as one command to a populated state:
// decoding never panics, and a command reported malformed changes nothing.
func FuzzApply(f *testing.F) {
	f.Add(createCmd("s1", 1))
	f.Add(EncodeAppendEvent(ptr(appendCmd("s1", content("p", 1, "x"), nil, 0))))
	f.Add(EncodeAppendEvents([]AppendEvent{appendCmd("s1", content("p", 1, "x"), u64(0), 0)}))
	f.Add(EncodeAckArchived([]ArchiveMark{{SessionID: "s1", Seq: 1}}))
	f.Add([]byte{kindAppendEvents, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(update("s1", 1, created+1, ptr("t"), true, `{"a":1}`, u64(1)))
	f.Add(archive("s1", 1, created+1, true))
	f.Fuzz(func(t *testing.T, cmd []byte) {
		s := randomState(t, rand.New(rand.NewSource(7)), 60)
		before := cloneState(t, s)
		r := s.Apply(cmd, nil)
		if Status(r.Value) == StatusMalformed && !s.Equal(before) {
			t.Fatal("malformed command changed the state")
		}
		checkInvariants(t, s)
	})
}

// FuzzStateful drives a state with a command sequence chosen by the
// fuzzer: every invariant holds after each command, and a snapshot taken
// at the end restores to an equal state with a byte-identical snapshot.
func FuzzStateful(f *testing.F) {
	f.Add(int64(1), uint16(50))
	f.Add(int64(99), uint16(500))
	f.Fuzz(func(t *testing.T, seed int64, n uint16) {
		rng := rand.New(rand.NewSource(seed))
		s := NewState()
		for i := 0; i < int(n%800); i++ {
			s.Apply(randomCommand(rng, s), nil)
			checkInvariants(t, s)
		}
		var a, b bytes.Buffer
		if err := s.Snapshot().Write(&a); err != nil {
			t.Fatal(err)
		}
		r, err := ReadSnapshot(bytes.NewReader(a.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Snapshot().Write(&b); err != nil {
			t.Fatal(err)
		}
		if !r.Equal(s) || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatal("snapshot/restore is not the identity")
		}
	})
}

// FuzzReadSnapshot: arbitrary bytes never crash the snapshot reader, and
// whatever it accepts satisfies the invariants.
func FuzzReadSnapshot(f *testing.F) {
	var buf bytes.Buffer
	if err := randomState(f, rand.New(rand.NewSource(3)), 40).Snapshot().Write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic + "\x01\x05hello"))
	if v1, err := os.ReadFile("testdata/snapshot-v1.bin"); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadSnapshot(bytes.NewReader(b))
		if err == nil {
			checkInvariants(t, s)
		}
	})
}

// FuzzParseHeader: arbitrary bytes never crash the header decoder, and a
// header it accepts survives a re-encoding unchanged.
func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, &Header{ID: "s", TenantID: "t", Title: ptr("x"), Metadata: []byte(`{}`),
		CreatedAt: 1, UpdatedAt: 2, Version: 3, Archived: true}))
	f.Add([]byte{headerFormat, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		again, err := ParseHeader(AppendHeader(nil, &h))
		if err != nil || !headersEqual(&again, &h) {
			t.Fatalf("%+v does not survive re-encoding: %+v, %v", h, again, err)
		}
	})
}
