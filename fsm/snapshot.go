package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Every snapshot starts with a magic whose digit is the format version.
// Format 2 added the header's updated_at, version and archived flag and
// the request id of the last header change. Format 1 snapshots still
// restore (updated_at = created_at, version 1, not archived), and as long
// as no session header was changed since its create this build still
// writes format 1: a node of the previous build can then still read the
// snapshots of this one (a rolling upgrade, a rollback) until someone
// updates or archives a session. Event objects of an earlier layout are
// brought to the current one when read (upgradeEventJSON).
const (
	snapshotMagic   = "STCSNAP2"
	snapshotMagicV1 = "STCSNAP1"
)

// Snapshot is an immutable view of a State: taken under the state lock
// (cheap: slice headers and producer maps are copied, event bytes are
// shared) and written to disk without it, while new entries apply.
type Snapshot struct {
	sessions []snapSession
	v1       bool // every header is as its create left it: write format 1
}

type snapSession struct {
	info      SessionInfo
	createReq uint64
	changeReq uint64
	events    []Event
	producers []producerEntry
}

type producerEntry struct {
	id string
	producerCursor
}

// Snapshot captures the state. Sessions and producers are sorted so that
// replicas with equal state write byte-identical snapshots.
func (s *State) Snapshot() *Snapshot {
	sn := &Snapshot{sessions: make([]snapSession, 0, len(s.sessions)), v1: true}
	for _, ss := range s.sessions {
		h := &ss.info.Header
		sn.v1 = sn.v1 && h.Version == 1 && !h.Archived && h.UpdatedAt == h.CreatedAt && ss.changeReq == 0
		ps := ss.producers.entries()
		sn.sessions = append(sn.sessions, snapSession{info: ss.info, createReq: ss.createReq, changeReq: ss.changeReq,
			events: ss.events[:len(ss.events):len(ss.events)], producers: ps})
	}
	sort.Slice(sn.sessions, func(i, j int) bool { return sn.sessions[i].info.ID < sn.sessions[j].info.ID })
	return sn
}

// Write writes the snapshot: the magic, a session count, then one
// length-prefixed frame per session.
func (sn *Snapshot) Write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	magic, encode := snapshotMagic, encodeSnapSession
	if sn.v1 {
		magic, encode = snapshotMagicV1, encodeSnapSessionV1
	}
	if _, err := bw.WriteString(magic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	head := encoder{}
	head.uvarint(uint64(len(sn.sessions)))
	if _, err := bw.Write(head.b); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	var e encoder
	for i := range sn.sessions {
		e.b = e.b[:0]
		encode(&e, &sn.sessions[i])
		frame := encoder{}
		frame.uvarint(uint64(len(e.b)))
		if _, err := bw.Write(frame.b); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		if _, err := bw.Write(e.b); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// encodeSnapSession writes one session: first its core (header, counters,
// request ids, producer cursors: everything but the events, which is what
// an idle session keeps when its events all live in the archive), then
// its hot events.
func encodeSnapSession(e *encoder, s *snapSession) {
	e.header(&s.info.Header)
	e.uvarint(s.info.LastSeq)
	e.uvarint(s.info.ArchivedSeq)
	e.uvarint(s.createReq)
	e.uvarint(s.changeReq)
	e.uvarint(uint64(len(s.producers)))
	for _, p := range s.producers {
		e.string(p.id)
		e.uvarint(p.producerSeq)
		e.uvarint(p.sessionSeq)
		e.hash(p.hash)
		e.uvarint(p.requestID)
	}
	e.uvarint(uint64(len(s.events)))
	for _, ev := range s.events {
		e.bytes(ev.JSON) // seq is implied: ArchivedSeq+1, +2, ...
	}
}

// encodeSnapSessionV1 writes one session in format 1: the header fields a
// create sets, counters, create request id, events, producers.
func encodeSnapSessionV1(e *encoder, s *snapSession) {
	h := &s.info.Header
	e.string(h.ID)
	e.string(h.TenantID)
	e.optString(h.Title)
	e.string(h.Creator.TenantID)
	e.string(h.Creator.ID)
	e.string(h.Creator.Type)
	e.bytes(h.Metadata)
	e.varint(h.CreatedAt)
	e.uvarint(s.info.LastSeq)
	e.uvarint(s.info.ArchivedSeq)
	e.uvarint(s.createReq)
	e.uvarint(uint64(len(s.events)))
	for _, ev := range s.events {
		e.bytes(ev.JSON)
	}
	e.uvarint(uint64(len(s.producers)))
	for _, p := range s.producers {
		e.string(p.id)
		e.uvarint(p.producerSeq)
		e.uvarint(p.sessionSeq)
		e.hash(p.hash)
		e.uvarint(p.requestID)
	}
}

// ReadSnapshot rebuilds a State from what Write wrote.
func ReadSnapshot(r io.Reader) (*State, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	var restore func(s *State, frame []byte) error
	switch string(magic) {
	case snapshotMagic:
		restore = (*State).restoreSession
	case snapshotMagicV1:
		restore = (*State).restoreSessionV1
	default:
		return nil, fmt.Errorf("read snapshot: unknown format %q (this build reads %s and %s; "+
			"a newer format needs the build that wrote it)", magic, snapshotMagicV1, snapshotMagic)
	}
	n, err := readUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("read snapshot session count: %w", err)
	}
	s := NewState()
	for i := uint64(0); i < n; i++ {
		size, err := readUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("read snapshot session %d: %w", i, err)
		}
		// Copy rather than pre-allocate: a corrupt length must cost only
		// the bytes actually present.
		var frame bytes.Buffer
		if _, err := io.CopyN(&frame, br, int64(min(size, 1<<62))); err != nil {
			return nil, fmt.Errorf("read snapshot session %d: %w", i, err)
		}
		if err := restore(s, frame.Bytes()); err != nil {
			return nil, fmt.Errorf("read snapshot session %d: %w", i, err)
		}
	}
	return s, nil
}

func readUvarint(br *bufio.Reader) (uint64, error) {
	v, err := binary.ReadUvarint(br)
	if errors.Is(err, io.EOF) {
		return 0, io.ErrUnexpectedEOF
	}
	return v, err
}

func (s *State) restoreSession(frame []byte) error {
	d := decoder{b: frame}
	ss := &session{producers: newProducerSet()}
	ss.info.Header = d.header()
	ss.info.LastSeq = d.uvarint()
	ss.info.ArchivedSeq = d.uvarint()
	ss.createReq = d.uvarint()
	ss.changeReq = d.uvarint()
	if err := d.snapProducers(ss); err != nil {
		return err
	}
	if err := d.snapEvents(ss); err != nil {
		return err
	}
	return s.addRestored(ss, &d)
}

// restoreSessionV1 reads a session of a format 1 snapshot: the header
// fields of that time, counters, create request id, events, producers.
func (s *State) restoreSessionV1(frame []byte) error {
	d := decoder{b: frame}
	ss := &session{producers: newProducerSet()}
	h := &ss.info.Header
	h.ID = d.string()
	h.TenantID = d.string()
	h.Title = d.optString()
	h.Creator.TenantID = d.string()
	h.Creator.ID = d.string()
	h.Creator.Type = d.string()
	h.Metadata = d.bytes()
	h.CreatedAt = d.varint()
	h.UpdatedAt, h.Version = h.CreatedAt, 1
	ss.info.LastSeq = d.uvarint()
	ss.info.ArchivedSeq = d.uvarint()
	ss.createReq = d.uvarint()
	if err := d.snapEvents(ss); err != nil {
		return err
	}
	if err := d.snapProducers(ss); err != nil {
		return err
	}
	return s.addRestored(ss, &d)
}

// snapEvents reads a session's hot events, which must be exactly the
// seqs ArchivedSeq+1 .. LastSeq.
func (d *decoder) snapEvents(ss *session) error {
	in := &ss.info
	nev := d.count(1)
	if d.err == nil && uint64(nev) != in.LastSeq-in.ArchivedSeq {
		return fmt.Errorf("session %q: %d hot events for seqs %d..%d", in.ID, nev, in.ArchivedSeq+1, in.LastSeq)
	}
	if nev > 0 {
		ss.events = make([]Event, nev)
	}
	for i := range ss.events {
		ev := Event{Seq: in.ArchivedSeq + 1 + uint64(i), JSON: d.bytes()}
		if d.err == nil && (!bytes.HasPrefix(ev.JSON, appendSeqPrefix(nil, ev.Seq)) || ev.JSON[len(ev.JSON)-1] != '}') {
			return fmt.Errorf("session %q: event %d does not start with its seq", in.ID, ev.Seq)
		}
		if d.err == nil {
			ev.JSON = upgradeEventJSON(ev.Seq, ev.JSON) // written by an earlier version
		}
		ss.events[i] = ev
		ss.hotBytes += int64(len(ev.JSON) + eventOverhead)
	}
	return d.err
}

// snapProducers reads a session's producer cursors. It runs after the
// counters are known (a cursor may not point past LastSeq).
func (d *decoder) snapProducers(ss *session) error {
	in := &ss.info
	np := d.count(36)
	if np > MaxProducers {
		return fmt.Errorf("session %q: %d producers", in.ID, np)
	}
	entries := make([]producerEntry, 0, np)
	seen := make(map[string]bool, np)
	for i := 0; i < np && d.err == nil; i++ {
		id := d.string()
		c := producerCursor{producerSeq: d.uvarint(), sessionSeq: d.uvarint(), hash: d.hash(), requestID: d.uvarint()}
		if d.err != nil {
			break
		}
		if c.producerSeq == 0 || c.sessionSeq == 0 || c.sessionSeq > in.LastSeq {
			return fmt.Errorf("session %q: producer %q cursor out of range", in.ID, id)
		}
		if seen[id] {
			return fmt.Errorf("session %q: producer %q listed twice", in.ID, id)
		}
		seen[id] = true
		entries = append(entries, producerEntry{id: id, producerCursor: c})
	}
	if d.err != nil {
		return d.err
	}
	ss.producers.restore(entries)
	return nil
}

// addRestored checks what is left of a session frame and adds the session.
func (s *State) addRestored(ss *session, d *decoder) error {
	in := &ss.info
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("session %q: %d trailing bytes", in.ID, len(d.b))
	}
	if in.ArchivedSeq > in.LastSeq {
		return fmt.Errorf("session %q: archived seq %d above last seq %d", in.ID, in.ArchivedSeq, in.LastSeq)
	}
	if _, dup := s.sessions[in.ID]; dup {
		return fmt.Errorf("session %q: listed twice", in.ID)
	}
	ss.meta, in.Metadata = parseMetadata(in.Metadata)
	s.sessions[in.ID] = ss
	s.hotBytes += ss.hotBytes
	s.hotEvents += int64(len(ss.events))
	s.producerBytes += ss.producers.bytes
	if len(ss.events) > 0 {
		s.pending[in.ID] = struct{}{}
	}
	return nil
}
