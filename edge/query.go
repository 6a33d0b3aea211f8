package edge

import (
	"bytes"
	"starcite/fsm"
	"strings"
	"unicode/utf8"
)

// Query strings are read the way upstream's framework (Plug) reads them, so
// that clients see the same parameter semantics: pairs split on '&', keys
// and values decoded as x-www-form-urlencoded ('+' is a space, a '%' not
// followed by two hex digits stays literal), the last value of a repeated
// key wins, and a key ending in ']' with a '[' after its first byte is the
// list ("k[]") or map ("k[x]") form of its root k.

// queryParam is one decoded name=value pair.
type queryParam struct {
	key, value []byte
}

// decodeQuery returns the decoded pairs of raw in order. Decoded text never
// outgrows its encoding, so one scratch buffer of len(raw) holds every
// decoded key and value that needed decoding; the rest alias raw.
func decodeQuery(raw []byte) []queryParam {
	params := make([]queryParam, 0, bytes.Count(raw, []byte{'&'})+1)
	var scratch []byte
	if bytes.IndexByte(raw, '%') >= 0 || bytes.IndexByte(raw, '+') >= 0 {
		scratch = make([]byte, 0, len(raw))
	}
	for rest := raw; len(rest) > 0; {
		var part []byte
		part, rest, _ = bytes.Cut(rest, []byte{'&'})
		if len(part) == 0 {
			continue
		}
		key, value, _ := bytes.Cut(part, []byte{'='})
		var p queryParam
		p.key, scratch = unescapeQuery(scratch, key)
		p.value, scratch = unescapeQuery(scratch, value)
		params = append(params, p)
	}
	return params
}

// unescapeQuery decodes s. When s has nothing to decode it is returned as
// is; otherwise its decoding is appended to scratch and returned capped, so
// that later appends never write into it.
func unescapeQuery(scratch, s []byte) (decoded, grown []byte) {
	if bytes.IndexByte(s, '%') < 0 && bytes.IndexByte(s, '+') < 0 {
		return s, scratch
	}
	start := len(scratch)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			scratch = append(scratch, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			scratch = append(scratch, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			scratch = append(scratch, c)
		}
	}
	return scratch[start:len(scratch):len(scratch)], scratch
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	default:
		return c - '0'
	}
}

// bracketRoot returns the root of a list or map form key ("k" of "k[]" and
// "k[a][b]"), or nil when key is a plain key.
func bracketRoot(key []byte) []byte {
	if len(key) == 0 || key[len(key)-1] != ']' {
		return nil
	}
	if i := bytes.IndexByte(key, '['); i > 0 {
		return key[:i]
	}
	return nil
}

// paramForm is what a parameter resolved to.
type paramForm uint8

const (
	paramAbsent paramForm = iota
	paramString           // a plain value
	paramNested           // a list or map form: never a valid scalar
)

// lookupParam resolves the parameter named key. A plain occurrence wins
// when it comes after the first list/map occurrence of the same root: the
// framework records a nested root once, at its first occurrence, so later
// nested occurrences only add to it.
func lookupParam(params []queryParam, key string) ([]byte, paramForm) {
	lastPlain, firstNested := -1, -1
	for i := range params {
		k := params[i].key
		if string(k) == key {
			lastPlain = i
		} else if firstNested < 0 && string(bracketRoot(k)) == key {
			firstNested = i
		}
	}
	switch {
	case lastPlain > firstNested:
		return params[lastPlain].value, paramString
	case firstNested >= 0:
		return nil, paramNested
	default:
		return nil, paramAbsent
	}
}

// Defaults and bounds of the paging parameters (docs/api.md#list,
// docs/api.md#tail-upgrade, docs/api.md#read-events).
const (
	defaultListLimit = 100
	maxLimit         = 1000
	maxTailBatchSize = 1000
)

// listQuery is the validated query of GET /v1/sessions.
type listQuery struct {
	archived fsm.ArchivedFilter
	limit    int
	cursor   *string           // exclusive lower bound on the session id
	filters  map[string]string // exact-match filters on metadata; nil for none
}

// parseListQuery validates the list query in the order of docs/api.md#list:
// limit, cursor, archived, metadata filters.
func parseListQuery(raw []byte) (listQuery, *apiError) {
	params := decodeQuery(raw)
	q := listQuery{limit: defaultListLimit}

	var ok bool
	if q.limit, ok = rangeParam(params, "limit", defaultListLimit, 1, maxLimit); !ok {
		return listQuery{}, errInvalidLimit
	}

	switch v, form := lookupParam(params, "cursor"); form {
	case paramString:
		cursor := string(v)
		if cursor == "" || !storableText(cursor) {
			return listQuery{}, errInvalidCursor
		}
		q.cursor = &cursor
	case paramNested:
		return listQuery{}, errInvalidCursor
	}

	switch v, form := lookupParam(params, "archived"); {
	case form == paramAbsent || (form == paramString && string(v) == "false"):
		q.archived = fsm.NotArchived
	case form == paramString && string(v) == "true":
		q.archived = fsm.OnlyArchived
	case form == paramString && string(v) == "all":
		q.archived = fsm.AnyArchived
	default:
		return listQuery{}, errInvalidListQuery
	}

	filters, ok := metadataFilters(params)
	if !ok {
		return listQuery{}, errInvalidMetadata
	}
	q.filters = filters
	return q, nil
}

// storableText reports whether a list parameter can be compared against
// the catalogue at all. The framework refuses a query string that is not
// UTF-8 and the catalogue holds no NUL; refusing both here keeps such bytes
// away from the archive backends, which would fail on them.
func storableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

const (
	metadataParam = "metadata"
	dottedPrefix  = "metadata."
)

// metadataFilters collects the metadata filters of a list query
// (docs/api.md#list): the bracket form metadata[k]=v must be a flat map of
// values, while malformed dotted forms metadata.k=v are skipped; for the
// same key the dotted form wins. It reports false for a bad bracket form
// and for a filter that is not storableText.
func metadataFilters(params []queryParam) (map[string]string, bool) {
	filters, ok := bracketFilters(params)
	if !ok {
		return nil, false
	}
	// Resolve every dotted root as lookupParam would, in one pass.
	type occurrences struct{ lastPlain, firstNested int }
	var dotted map[string]*occurrences
	for i := range params {
		key, nested := params[i].key, false
		if root := bracketRoot(key); root != nil {
			key, nested = root, true
		}
		if len(key) <= len(dottedPrefix) || string(key[:len(dottedPrefix)]) != dottedPrefix {
			continue
		}
		o := dotted[string(key)]
		if o == nil {
			if dotted == nil {
				dotted = make(map[string]*occurrences)
			}
			o = &occurrences{-1, -1}
			dotted[string(key)] = o
		}
		switch {
		case !nested:
			o.lastPlain = i
		case o.firstNested < 0:
			o.firstNested = i
		}
	}
	for key, o := range dotted {
		if o.lastPlain <= o.firstNested {
			continue // absent or a list/map form: ignored
		}
		value := string(params[o.lastPlain].value)
		if !storableText(key) || !storableText(value) {
			return nil, false
		}
		if filters == nil {
			filters = make(map[string]string)
		}
		filters[key[len(dottedPrefix):]] = value
	}
	return filters, true
}

// bracketFilters resolves the metadata parameter, which must be absent or
// a map of plain values. It follows the framework's nesting rules: an entry
// metadata[k][...] makes k nested only at the first occurrence of its
// metadata[k] prefix, and the level is a list, not a map, when its latest
// entry is metadata[]... .
func bracketFilters(params []queryParam) (map[string]string, bool) {
	switch _, form := lookupParam(params, metadataParam); form {
	case paramAbsent:
		return nil, true
	case paramString:
		return nil, false
	}
	type entry struct {
		value  []byte
		nested bool
	}
	entries := make(map[string]entry)
	seenDeeper := make(map[string]bool) // first subkeys with a deeper level
	latestIsList := false
	for i := range params {
		key := params[i].key
		if string(bracketRoot(key)) != metadataParam {
			continue
		}
		// key is metadata[sub]... ; sub ends at the first "][" or at the
		// final ']'.
		inner := key[len(metadataParam)+1:]
		sub, deeper := inner[:len(inner)-1], false
		if j := bytes.Index(inner, []byte("][")); j >= 0 {
			sub, deeper = inner[:j], true
		}
		if deeper {
			if seenDeeper[string(sub)] {
				continue
			}
			seenDeeper[string(sub)] = true
		}
		latestIsList = len(sub) == 0
		if len(sub) > 0 {
			entries[string(sub)] = entry{value: params[i].value, nested: deeper}
		}
	}
	if latestIsList {
		return nil, false
	}
	filters := make(map[string]string, len(entries))
	for k, e := range entries {
		value := string(e.value)
		if e.nested || !storableText(k) || !storableText(value) {
			return nil, false
		}
		filters[k] = value
	}
	return filters, true
}

// rangeParam reads an optional decimal integer parameter within [lo, hi].
func rangeParam(params []queryParam, key string, def, lo, hi int) (int, bool) {
	v, form := lookupParam(params, key)
	switch form {
	case paramAbsent:
		return def, true
	case paramString:
		n, ok := parseDecimal(v)
		if !ok || n < uint64(lo) || n > uint64(hi) {
			return 0, false
		}
		return int(n), true
	default:
		return 0, false
	}
}

// seqParam reads an optional seq cursor: a decimal integer from 0 to
// 2^63-1 (docs/decisions.md#d3), default 0.
func seqParam(params []queryParam, key string) (uint64, bool) {
	v, form := lookupParam(params, key)
	switch form {
	case paramAbsent:
		return 0, true
	case paramString:
		return parseDecimal(v)
	default:
		return 0, false
	}
}

// tailQuery is the validated query of a tail upgrade
// (docs/api.md#tail-upgrade).
type tailQuery struct {
	cursor    uint64
	batchSize int
}

// parseTailQuery validates cursor, then batch_size
// (docs/api.md#tail-upgrade).
func parseTailQuery(raw []byte) (tailQuery, *apiError) {
	params := decodeQuery(raw)
	cursor, ok := seqParam(params, "cursor")
	if !ok {
		return tailQuery{}, errInvalidCursor
	}
	size, ok := rangeParam(params, "batch_size", 1, 1, maxTailBatchSize)
	if !ok {
		return tailQuery{}, errInvalidTailBatchSize
	}
	return tailQuery{cursor: cursor, batchSize: size}, nil
}

// eventsQuery is the validated query of GET /v1/sessions/{id}/events.
type eventsQuery struct {
	cursor uint64
	limit  int
}

// parseEventsQuery validates cursor, then limit (docs/api.md#read-events).
func parseEventsQuery(raw []byte) (eventsQuery, *apiError) {
	params := decodeQuery(raw)
	cursor, ok := seqParam(params, "cursor")
	if !ok {
		return eventsQuery{}, errInvalidCursor
	}
	limit, ok := rangeParam(params, "limit", defaultListLimit, 1, maxLimit)
	if !ok {
		return eventsQuery{}, errInvalidLimit
	}
	return eventsQuery{cursor: cursor, limit: limit}, nil
}

// queryValue returns the last decoded value of the plain parameter key.
// Unlike lookupParam it ignores list and map forms: upstream takes the
// access_token from a flat decoding of the query string.
func queryValue(raw []byte, key string) (value string, present bool) {
	var scratch []byte
	for rest := raw; len(rest) > 0; {
		var part []byte
		part, rest, _ = bytes.Cut(rest, []byte{'&'})
		k, v, _ := bytes.Cut(part, []byte{'='})
		if len(part) == 0 || !keyIs(k, key) {
			continue
		}
		var decoded []byte
		decoded, scratch = unescapeQuery(scratch[:0], v)
		value, present = string(decoded), true
	}
	return value, present
}

// keyIs reports whether the encoded key k decodes to key.
func keyIs(k []byte, key string) bool {
	if len(k) < len(key) {
		return false // decoding only ever shortens
	}
	var buf [64]byte
	d, _ := unescapeQuery(buf[:0], k)
	return string(d) == key
}

// redacted replaces access_token values in logged query strings
// (docs/api.md#token-redaction).
const redacted = "[REDACTED]"

// redactQuery returns raw with the value of every access_token parameter
// replaced by [REDACTED], whatever its escapes; list and map forms of
// access_token are redacted too. All other bytes are kept as they are. raw
// itself is returned when there is nothing to redact.
func redactQuery(raw []byte) []byte {
	if !bytes.Contains(raw, []byte("access")) && bytes.IndexByte(raw, '%') < 0 {
		return raw // no key can decode to access_token
	}
	var out []byte
	copied := 0 // raw[:copied] is in out
	pos := 0
	for pos <= len(raw) {
		end := bytes.IndexByte(raw[pos:], '&')
		if end < 0 {
			end = len(raw)
		} else {
			end += pos
		}
		part := raw[pos:end]
		if eq := bytes.IndexByte(part, '='); eq >= 0 && isTokenKey(part[:eq]) {
			valueStart := pos + eq + 1
			if out == nil {
				out = make([]byte, 0, len(raw)+len(redacted))
			}
			out = append(out, raw[copied:valueStart]...)
			out = append(out, redacted...)
			copied = end
		}
		pos = end + 1
	}
	if out == nil {
		return raw
	}
	return append(out, raw[copied:]...)
}

// isTokenKey reports whether the encoded key k names access_token, plainly
// or in list/map form.
func isTokenKey(k []byte) bool {
	const name = "access_token"
	var buf [64]byte
	d, _ := unescapeQuery(buf[:0], k)
	if string(d) == name {
		return true
	}
	return string(bracketRoot(d)) == name
}
