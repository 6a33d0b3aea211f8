package archive

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// storedLine is one NDJSON line of a chunk as stored, with its seq.
type storedLine struct {
	seq uint64
	raw []byte
}

// lineSeq returns the seq of a stored event line. Lines written by Go start
// with {"seq":N, and are read without a full parse; anything else (upstream
// lines have their own key order) is parsed.
func lineSeq(line []byte) (uint64, error) {
	const head = `{"seq":`
	if bytes.HasPrefix(line, []byte(head)) {
		rest := line[len(head):]
		n := 0
		for n < len(rest) && n < 20 && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n > 0 && n < len(rest) && (rest[n] == ',' || rest[n] == '}') && (n == 1 || rest[0] != '0') {
			if v, err := strconv.ParseUint(string(rest[:n]), 10, 64); err == nil && v > 0 {
				return v, nil
			}
		}
	}
	e, err := fsm.ParseEvent(line)
	if err != nil {
		return 0, err
	}
	return e.Seq, nil
}

// parseChunk splits an NDJSON chunk body into lines sorted by seq. Blank
// lines and a trailing newline are tolerated; a duplicate seq keeps its
// first line.
func parseChunk(body []byte) ([]storedLine, error) {
	var lines []storedLine
	sorted := true
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimRight(line, "\r \t")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		seq, err := lineSeq(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", len(lines)+1, err)
		}
		if n := len(lines); n > 0 && lines[n-1].seq >= seq {
			sorted = false
		}
		lines = append(lines, storedLine{seq: seq, raw: line})
	}
	if !sorted {
		slices.SortStableFunc(lines, func(a, b storedLine) int {
			switch {
			case a.seq < b.seq:
				return -1
			case a.seq > b.seq:
				return 1
			}
			return 0
		})
		lines = slices.CompactFunc(lines, func(a, b storedLine) bool { return a.seq == b.seq })
	}
	return lines, nil
}

// mergeChunk merges new events into the stored lines of a chunk, existing
// lines winning. It returns the new body, or changed=false when every event
// was already stored.
func mergeChunk(existing []storedLine, events []fsm.Event) (body []byte, changed bool) {
	merged := make([]storedLine, 0, len(existing)+len(events))
	i, j := 0, 0
	for i < len(existing) || j < len(events) {
		switch {
		case j == len(events) || (i < len(existing) && existing[i].seq < events[j].Seq):
			merged = append(merged, existing[i])
			i++
		case i == len(existing) || events[j].Seq < existing[i].seq:
			merged = append(merged, storedLine{seq: events[j].Seq, raw: events[j].JSON})
			changed = true
			j++
		default: // same seq: the stored line wins
			merged = append(merged, existing[i])
			i++
			j++
		}
	}
	if !changed {
		return nil, false
	}
	size := len(merged)
	for _, l := range merged {
		size += len(l.raw)
	}
	body = make([]byte, 0, size)
	for k, l := range merged {
		if k > 0 {
			body = append(body, '\n')
		}
		body = append(body, l.raw...)
	}
	return body, true
}

// renderLines returns the lines with from <= seq <= to as canonical events.
func renderLines(dst []fsm.Event, lines []storedLine, tenantID string, from, to uint64) ([]fsm.Event, error) {
	for _, l := range lines {
		if l.seq < from || l.seq > to {
			continue
		}
		e, err := fsm.ParseEvent(l.raw)
		if err != nil {
			return nil, fmt.Errorf("seq %d: %w", l.seq, err)
		}
		dst = append(dst, fsm.Event{Seq: e.Seq, JSON: e.JSON(tenantID)})
	}
	return dst, nil
}

// encodeSession renders the catalogue object of
// docs/operations.md#archive-layout.
func encodeSession(s Session) ([]byte, error) {
	if s.ID == "" {
		return nil, errors.New("empty session id")
	}
	meta, err := canonicalObject(s.Metadata)
	if err != nil {
		return nil, fmt.Errorf("session %q metadata: %w", s.ID, err)
	}
	b := make([]byte, 0, 128+len(s.ID)+len(meta))
	b = append(b, `{"id":`...)
	b = jsonc.AppendString(b, s.ID)
	b = append(b, `,"title":`...)
	if s.Title == nil {
		b = append(b, "null"...)
	} else {
		b = jsonc.AppendString(b, *s.Title)
	}
	b = append(b, `,"tenant_id":`...)
	b = jsonc.AppendString(b, s.TenantID)
	b = append(b, `,"creator_principal":`...)
	if s.Creator == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"tenant_id":`...)
		b = jsonc.AppendString(b, s.Creator.TenantID)
		b = append(b, `,"id":`...)
		b = jsonc.AppendString(b, s.Creator.ID)
		b = append(b, `,"type":`...)
		b = jsonc.AppendString(b, s.Creator.Type)
		b = append(b, '}')
	}
	b = append(b, `,"metadata":`...)
	b = append(b, meta...)
	b = append(b, `,"created_at":"`...)
	b = fsm.AppendTime(b, s.CreatedAt)
	b = append(b, `","updated_at":"`...)
	b = fsm.AppendTime(b, max(s.UpdatedAt, s.CreatedAt))
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, max(s.Version, 1), 10)
	b = append(b, `,"archived":`...)
	b = strconv.AppendBool(b, s.Archived)
	return append(b, '}'), nil
}

// canonicalObject returns the canonical form of a JSON object; empty input
// is {}.
func canonicalObject(b []byte) ([]byte, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte("{}"), nil
	}
	v, err := jsonc.Parse(b)
	if err != nil {
		return nil, err
	}
	if v.Kind != jsonc.Object {
		return nil, errors.New("not a JSON object")
	}
	return v.Append(nil), nil
}

// decodeSession reads a catalogue object, written by Go or upstream. A
// missing tenant_id is back-filled as the upstream migration did: creator's
// tenant, then metadata.tenant_id, then "service".
func decodeSession(b []byte) (Session, error) {
	v, err := jsonc.Parse(b)
	if err != nil {
		return Session{}, err
	}
	if v.Kind != jsonc.Object {
		return Session{}, errors.New("catalogue entry is not a JSON object")
	}
	var s Session
	id, ok := v.Get("id")
	if !ok || id.Kind != jsonc.String || id.Str == "" {
		return Session{}, errors.New("catalogue entry has no id")
	}
	s.ID = id.Str
	if t, ok := v.Get("title"); ok && t.Kind == jsonc.String {
		title := t.Str
		s.Title = &title
	} else if ok && t.Kind != jsonc.Null {
		return Session{}, errors.New("catalogue entry title is not a string")
	}
	s.Metadata = []byte("{}")
	if m, ok := v.Get("metadata"); ok && m.Kind == jsonc.Object {
		s.Metadata = m.Append(nil)
	} else if ok && m.Kind != jsonc.Null {
		return Session{}, errors.New("catalogue entry metadata is not an object")
	}
	if c, ok := v.Get("creator_principal"); ok {
		s.Creator = principalFrom(c)
	}
	if t, ok := v.Get("tenant_id"); ok && t.Kind == jsonc.String && t.Str != "" {
		s.TenantID = t.Str
	} else {
		s.TenantID = backfillTenant(s.Creator, v)
	}
	ca, ok := v.Get("created_at")
	if !ok || ca.Kind != jsonc.String {
		return Session{}, errors.New("catalogue entry has no created_at")
	}
	if s.CreatedAt, err = fsm.ParseTime(ca.Str); err != nil {
		return Session{}, err
	}
	// Header fields of later releases; entries written before them read
	// as never changed.
	s.UpdatedAt, s.Version = s.CreatedAt, 1
	if u, ok := v.Get("updated_at"); ok {
		if u.Kind != jsonc.String {
			return Session{}, errors.New("catalogue entry updated_at is not a string")
		}
		if s.UpdatedAt, err = fsm.ParseTime(u.Str); err != nil {
			return Session{}, err
		}
	}
	if n, ok := v.Get("version"); ok {
		if s.Version, err = strconv.ParseUint(n.Num, 10, 64); n.Kind != jsonc.Number || err != nil || s.Version == 0 {
			return Session{}, errors.New("catalogue entry version is not a positive integer")
		}
	}
	if a, ok := v.Get("archived"); ok {
		if a.Kind != jsonc.Bool {
			return Session{}, errors.New("catalogue entry archived is not a boolean")
		}
		s.Archived = a.Bool
	}
	return s, nil
}

func backfillTenant(creator *Principal, v jsonc.Value) string {
	if creator != nil && creator.TenantID != "" {
		return creator.TenantID
	}
	if m, ok := v.Get("metadata"); ok {
		if t, ok := m.Get("tenant_id"); ok && t.Kind == jsonc.String && t.Str != "" {
			return t.Str
		}
	}
	return "service"
}

// principalFrom reads a creator_principal object; nil when v is not one.
func principalFrom(v jsonc.Value) *Principal {
	if v.Kind != jsonc.Object {
		return nil
	}
	p := &Principal{}
	for key, dst := range map[string]*string{"tenant_id": &p.TenantID, "id": &p.ID, "type": &p.Type} {
		if f, ok := v.Get(key); ok && f.Kind == jsonc.String {
			*dst = f.Str
		}
	}
	return p
}
