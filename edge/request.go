package edge

import (
	"bytes"
	"math"
	"strings"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// contentTypeOK reports whether a request body with this Content-Type
// header is read as JSON (docs/decisions.md#d1). Clients that send no
// Content-Type at all still get their JSON parsed; anything that is not
// JSON gets a 415 rather than upstream's silent "body ignored".
func contentTypeOK(contentType []byte) bool {
	mediaType := contentType
	if i := bytes.IndexByte(mediaType, ';'); i >= 0 {
		mediaType = mediaType[:i]
	}
	mediaType = bytes.Trim(mediaType, " \t")
	if len(mediaType) == 0 {
		// "; charset=utf-8" names no media type at all, which is not "absent".
		return len(bytes.Trim(contentType, " \t")) == 0
	}
	slash := bytes.IndexByte(mediaType, '/')
	if slash < 0 || !bytes.EqualFold(mediaType[:slash], []byte("application")) {
		return false
	}
	subtype := mediaType[slash+1:]
	if !isToken(subtype) {
		return false
	}
	// Like upstream's parser, any subtype ending in +json counts, even a
	// bare "+json".
	const suffix = "+json"
	return bytes.EqualFold(subtype, []byte("json")) ||
		len(subtype) >= len(suffix) && bytes.EqualFold(subtype[len(subtype)-len(suffix):], []byte(suffix))
}

// isToken reports whether b is an RFC 9110 token, so that a subtype with
// spaces or separators in it is not mistaken for JSON.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// emptyObject is the stored form of an absent object field. Its capacity is
// its length so that appending to it can never write into shared memory.
var emptyObject = []byte("{}")[:2:2]

// createBody is a decoded create request. The field checks are reported as
// flags rather than errors because the handler interleaves them with the
// session-lock check (docs/api.md#create: id, lock, title, metadata).
type createBody struct {
	ID       *string // nil: generate one (or use the token's locked session)
	Title    *string
	Metadata []byte // canonical JSON object

	// A field that is present but of the wrong shape.
	badID, badTitle, badMetadata bool
}

// decodeCreateBody decodes a create request body (docs/api.md#create). Only
// a body that is not a JSON object at all is an error here
// (docs/decisions.md#d2).
func decodeCreateBody(body []byte) (createBody, *apiError) {
	b := createBody{Metadata: emptyObject}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return b, nil // an empty body is an empty object, not malformed JSON
	}
	v, err := jsonc.Parse(body)
	if err != nil || v.Kind != jsonc.Object {
		return createBody{}, errInvalidSession
	}
	if m, _ := v.Get("id"); m.Kind != jsonc.Null {
		if m.Kind == jsonc.String && m.Str != "" {
			id := m.Str
			b.ID = &id
		} else {
			b.badID = true
		}
	}
	if m, _ := v.Get("title"); m.Kind != jsonc.Null {
		if m.Kind == jsonc.String && len(m.Str) <= fsm.MaxTitleBytes {
			title := m.Str
			b.Title = &title
		} else {
			b.badTitle = true
		}
	}
	if m, _ := v.Get("metadata"); m.Kind != jsonc.Null {
		if m.Kind == jsonc.Object {
			b.Metadata = m.Append(nil)
			b.badMetadata = len(b.Metadata) > fsm.MaxMetadataBytes
		} else {
			b.badMetadata = true
		}
	}
	return b, nil
}

// appendBody is a validated append request.
type appendBody struct {
	Content     fsm.Content
	ExpectedSeq *uint64
}

// principalKey is the metadata key the server owns on every event
// (docs/api.md#append).
const principalKey = "starcite_principal"

// decodeAppendBody decodes and validates an append request body
// (docs/api.md#append) for principal p. The checks run in the order of
// docs/api.md#append and the first failure decides the error code.
func decodeAppendBody(body []byte, p *Principal) (appendBody, *apiError) {
	v, err := jsonc.Parse(body)
	if err != nil || v.Kind != jsonc.Object {
		return appendBody{}, errInvalidEvent
	}
	var c fsm.Content

	typ, _ := v.Get("type")
	payload, _ := v.Get("payload")
	if typ.Kind != jsonc.String || typ.Str == "" || len(typ.Str) > fsm.MaxTypeBytes || payload.Kind != jsonc.Object {
		return appendBody{}, errInvalidEvent
	}
	c.Type = typ.Str

	producerID, hasID := v.Get("producer_id")
	producerSeq, hasSeq := v.Get("producer_seq")
	if !hasID || !hasSeq || producerID.Kind != jsonc.String || producerID.Str == "" ||
		len(producerID.Str) > fsm.MaxProducerIDBytes {
		return appendBody{}, errInvalidEvent
	}
	c.ProducerID = producerID.Str
	seq, ok := intValue(producerSeq)
	if !ok || seq == 0 {
		return appendBody{}, errInvalidEvent
	}
	c.ProducerSeq = seq

	actor, _ := v.Get("actor")
	switch {
	case actor.Kind == jsonc.Null:
		c.Actor = p.Actor()
	case actor.Kind == jsonc.String && isActor(actor.Str, p):
		// The client's copy is already a string of its own: reuse it.
		c.Actor = actor.Str
	default:
		return appendBody{}, errInvalidEvent
	}

	if c.Source, ok = optionalNonEmptyString(v, "source"); !ok {
		return appendBody{}, errInvalidEvent
	}

	metadata, _ := v.Get("metadata")
	if metadata.Kind != jsonc.Null && metadata.Kind != jsonc.Object {
		return appendBody{}, errInvalidMetadata
	}

	refs, _ := v.Get("refs")
	switch refs.Kind {
	case jsonc.Null:
	case jsonc.Object:
		if !refsOK(refs) {
			return appendBody{}, errInvalidEvent
		}
	default:
		return appendBody{}, errInvalidRefs
	}

	if c.IdempotencyKey, ok = optionalNonEmptyString(v, "idempotency_key"); !ok {
		return appendBody{}, errInvalidEvent
	}

	var expected *uint64
	if m, _ := v.Get("expected_seq"); m.Kind != jsonc.Null {
		n, ok := intValue(m)
		if !ok {
			return appendBody{}, errInvalidEvent
		}
		expected = &n
	}

	// One buffer holds the three canonical objects; each field is capped at
	// its own end so that no later append can overwrite a neighbour.
	buf := make([]byte, 0, len(body)+principalSize(p, c.Actor))
	buf = payload.Append(buf)
	c.Payload = buf[:len(buf):len(buf)]
	start := len(buf)
	buf = appendMetadata(buf, metadata, p, c.Actor)
	c.Metadata = buf[start:len(buf):len(buf)]
	if refs.Kind == jsonc.Object {
		start = len(buf)
		buf = refs.Append(buf)
		c.Refs = buf[start:len(buf):len(buf)]
	} else {
		c.Refs = emptyObject
	}
	return appendBody{Content: c, ExpectedSeq: expected}, nil
}

// isActor reports whether s is p's actor string without building it.
func isActor(s string, p *Principal) bool {
	n := len(p.Type)
	return len(s) == n+1+len(p.ID) && s[:n] == p.Type && s[n] == ':' && s[n+1:] == p.ID
}

// optionalNonEmptyString reads a member that may be absent or null, and is
// otherwise a non-empty string.
func optionalNonEmptyString(v jsonc.Value, key string) (*string, bool) {
	m, _ := v.Get(key)
	switch {
	case m.Kind == jsonc.Null:
		return nil, true
	case m.Kind == jsonc.String && m.Str != "":
		s := m.Str
		return &s, true
	default:
		return nil, false
	}
}

// refsOK checks the refs members the API gives a meaning to; their values
// are stored as sent, so "5" stays a string.
func refsOK(refs jsonc.Value) bool {
	for _, key := range [...]string{"to_seq", "step"} {
		if m, _ := refs.Get(key); m.Kind != jsonc.Null {
			if _, ok := intValue(m); !ok {
				return false
			}
		}
	}
	for _, key := range [...]string{"request_id", "sequence_id"} {
		if m, _ := refs.Get(key); m.Kind != jsonc.Null && m.Kind != jsonc.String {
			return false
		}
	}
	return true
}

// intValue reads a non-negative integer sent as a JSON integer or as a
// decimal string of one (upstream accepts both, docs/api.md#append). Floats
// never count, even 1.0, and values above 2^63-1 are refused
// (docs/decisions.md#d3).
func intValue(v jsonc.Value) (uint64, bool) {
	switch {
	case v.Kind == jsonc.Number && v.IsInt:
		return parseDecimal(v.Num)
	case v.Kind == jsonc.String:
		return parseDecimal(v.Str)
	default:
		return 0, false
	}
}

// parseDecimal parses what upstream's Integer.parse accepts as a whole
// string: an optional sign and at least one ASCII digit, leading zeros
// allowed. It fails for negative values (so "-0" is 0) and for values above
// 2^63-1, the largest seq any store in the system can hold.
func parseDecimal[S string | []byte](s S) (uint64, bool) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-uint64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg && n != 0 {
		return 0, false
	}
	return n, true
}

// principalSize is a capacity hint for the injected principal member: its
// values plus about 90 bytes of keys and punctuation around them.
func principalSize(p *Principal, actor string) int {
	return 96 + len(actor) + len(p.ID) + len(p.Type) + len(p.TenantID)
}

// appendMetadata writes the canonical encoding of the client's metadata (an
// object, or null for none) with starcite_principal injected
// (docs/api.md#append). The members are already sorted, so the merged
// object is written in one pass instead of being built as a Value first.
func appendMetadata(dst []byte, md jsonc.Value, p *Principal, actor string) []byte {
	ms := md.Members
	i := 0
	for i < len(ms) && ms[i].Key < principalKey {
		i++
	}
	dst = append(dst, '{')
	for k := range ms[:i] {
		dst = appendMember(dst, k > 0, &ms[k])
	}
	if i > 0 {
		dst = append(dst, ',')
	}
	var client jsonc.Value
	rest := ms[i:]
	if len(rest) > 0 && rest[0].Key == principalKey {
		client = rest[0].Value
		rest = rest[1:]
	}
	dst = appendPrincipal(dst, client, p, actor)
	for k := range rest {
		dst = appendMember(dst, true, &rest[k])
	}
	return append(dst, '}')
}

// appendPrincipal writes the starcite_principal member. A client object is
// merged with the server's keys winning; any other client value is
// replaced.
func appendPrincipal(dst []byte, client jsonc.Value, p *Principal, actor string) []byte {
	server := [...]jsonc.Member{ // sorted by key
		{Key: "actor", Value: jsonc.StringValue(actor)},
		{Key: "principal_id", Value: jsonc.StringValue(p.ID)},
		{Key: "principal_type", Value: jsonc.StringValue(p.Type)},
		{Key: "tenant_id", Value: jsonc.StringValue(p.TenantID)},
	}
	var extra []jsonc.Member
	if client.Kind == jsonc.Object {
		extra = client.Members
	}
	dst = jsonc.AppendString(dst, principalKey)
	dst = append(dst, ':', '{')
	i, j := 0, 0
	for n := 0; i < len(server) || j < len(extra); n++ {
		var m *jsonc.Member
		if j == len(extra) || i < len(server) && server[i].Key <= extra[j].Key {
			if j < len(extra) && server[i].Key == extra[j].Key {
				j++
			}
			m = &server[i]
			i++
		} else {
			m = &extra[j]
			j++
		}
		dst = appendMember(dst, n > 0, m)
	}
	return append(dst, '}')
}

func appendMember(dst []byte, comma bool, m *jsonc.Member) []byte {
	if comma {
		dst = append(dst, ',')
	}
	dst = jsonc.AppendString(dst, m.Key)
	dst = append(dst, ':')
	return m.Value.Append(dst)
}
