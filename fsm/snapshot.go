package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"starcite/fsm/jsonc"
)

// snapshotMagic starts every snapshot; the digit is the format version.
const snapshotMagic = "STCSNAP1"

// Snapshot is an immutable view of a State: taken under the state lock
// (cheap: slice headers and producer maps are copied, event bytes are
// shared) and written to disk without it, while new entries apply.
type Snapshot struct {
	sessions []snapSession
}

type snapSession struct {
	info      SessionInfo
	createReq uint64
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
	sn := &Snapshot{sessions: make([]snapSession, 0, len(s.sessions))}
	for _, ss := range s.sessions {
		ps := make([]producerEntry, 0, len(ss.producers))
		for id, c := range ss.producers {
			ps = append(ps, producerEntry{id: id, producerCursor: c})
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
		sn.sessions = append(sn.sessions, snapSession{info: ss.info, createReq: ss.createReq,
			events: ss.events[:len(ss.events):len(ss.events)], producers: ps})
	}
	sort.Slice(sn.sessions, func(i, j int) bool { return sn.sessions[i].info.ID < sn.sessions[j].info.ID })
	return sn
}

// Write writes the snapshot: the magic, a session count, then one
// length-prefixed frame per session.
func (sn *Snapshot) Write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
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
		encodeSnapSession(&e, &sn.sessions[i])
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

func encodeSnapSession(e *encoder, s *snapSession) {
	in := &s.info
	e.string(in.ID)
	e.string(in.TenantID)
	e.optString(in.Title)
	e.string(in.Creator.TenantID)
	e.string(in.Creator.ID)
	e.string(in.Creator.Type)
	e.bytes(in.Metadata)
	e.varint(in.CreatedAt)
	e.uvarint(in.LastSeq)
	e.uvarint(in.ArchivedSeq)
	e.uvarint(s.createReq)
	e.uvarint(uint64(len(s.events)))
	for _, ev := range s.events {
		e.bytes(ev.JSON) // seq is implied: ArchivedSeq+1, +2, ...
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
	if string(magic) != snapshotMagic {
		return nil, fmt.Errorf("read snapshot: unknown format %q", magic)
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
		if err := s.restoreSession(frame.Bytes()); err != nil {
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
	ss := &session{producers: map[string]producerCursor{}}
	in := &ss.info
	in.ID = d.string()
	in.TenantID = d.string()
	in.Title = d.optString()
	in.Creator.TenantID = d.string()
	in.Creator.ID = d.string()
	in.Creator.Type = d.string()
	in.Metadata = d.bytes()
	in.CreatedAt = d.varint()
	in.LastSeq = d.uvarint()
	in.ArchivedSeq = d.uvarint()
	ss.createReq = d.uvarint()
	nev := d.count(1)
	if d.err == nil && uint64(nev) != in.LastSeq-in.ArchivedSeq {
		return fmt.Errorf("session %q: %d hot events for seqs %d..%d", in.ID, nev, in.ArchivedSeq+1, in.LastSeq)
	}
	if nev > 0 {
		ss.events = make([]Event, nev)
	}
	for i := range ss.events {
		ev := Event{Seq: in.ArchivedSeq + 1 + uint64(i), JSON: d.bytes()}
		if d.err == nil && !bytes.HasPrefix(ev.JSON, appendSeqPrefix(nil, ev.Seq)) {
			return fmt.Errorf("session %q: event %d does not start with its seq", in.ID, ev.Seq)
		}
		ss.events[i] = ev
		ss.hotBytes += int64(len(ev.JSON) + eventOverhead)
	}
	np := d.count(36)
	for i := 0; i < np && d.err == nil; i++ {
		id := d.string()
		c := producerCursor{producerSeq: d.uvarint(), sessionSeq: d.uvarint(), hash: d.hash(), requestID: d.uvarint()}
		if d.err == nil && (c.producerSeq == 0 || c.sessionSeq == 0 || c.sessionSeq > in.LastSeq) {
			return fmt.Errorf("session %q: producer %q cursor out of range", in.ID, id)
		}
		ss.producers[id] = c
	}
	if d.err != nil {
		return d.err
	}
	if len(ss.producers) > MaxProducers {
		return fmt.Errorf("session %q: %d producers", in.ID, len(ss.producers))
	}
	if len(d.b) != 0 {
		return fmt.Errorf("session %q: %d trailing bytes", in.ID, len(d.b))
	}
	if meta, err := jsonc.Parse(in.Metadata); err == nil && meta.Kind == jsonc.Object {
		ss.meta = meta
	} else {
		ss.meta = jsonc.Value{Kind: jsonc.Object}
	}
	s.sessions[in.ID] = ss
	s.hotBytes += ss.hotBytes
	s.hotEvents += int64(nev)
	if nev > 0 {
		s.pending[in.ID] = struct{}{}
	}
	return nil
}
