package edge

import (
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeQuery(t *testing.T) {
	tests := []struct {
		raw  string
		want []string // key=value, decoded
	}{
		{"", nil},
		{"&&", nil},
		{"a=1&b=2", []string{"a=1", "b=2"}},
		{"a", []string{"a="}},
		{"a=", []string{"a="}},
		{"=x", []string{"=x"}},
		{"a=b=c", []string{"a=b=c"}},
		{"a+b=c+d", []string{"a b=c d"}},
		{"%61=%41%42", []string{"a=AB"}},
		{"k=%e2%82%AC", []string{"k=€"}},
		{"k=%26%3D", []string{"k=&="}},
		{"k=%2B+", []string{"k=+ "}},
		{"k=%", []string{"k=%"}},
		{"k=%4", []string{"k=%4"}},
		{"k=%ZZ", []string{"k=%ZZ"}},
		{"k=%G1", []string{"k=%G1"}},
		{"k=%%41", []string{"k=%A"}},
		{"k=100%", []string{"k=100%"}},
		{"k=%00", []string{"k=\x00"}},
		{"&a=1&&b&", []string{"a=1", "b="}},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range decodeQuery([]byte(tt.raw)) {
			got = append(got, string(p.key)+"="+string(p.value))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("decodeQuery(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestDecodeQueryDoesNotAlias(t *testing.T) {
	raw := []byte("a=%41&b=%42&c=plain")
	params := decodeQuery(raw)
	params[0].value = append(params[0].value, "XYZ"...)
	if string(params[1].value) != "B" || string(params[0].value) != "AXYZ" {
		t.Fatalf("decoded values share memory: %q %q", params[0].value, params[1].value)
	}
	if string(raw) != "a=%41&b=%42&c=plain" {
		t.Fatalf("decodeQuery modified its input: %q", raw)
	}
}

func TestParseListQuery(t *testing.T) {
	type want struct {
		limit   int
		cursor  string // "-" for none
		filters map[string]string
	}
	tests := []struct {
		raw  string
		err  *apiError
		want want
	}{
		{"", nil, want{100, "-", nil}},
		{"limit=1", nil, want{1, "-", nil}},
		{"limit=1000", nil, want{1000, "-", nil}},
		{"limit=+5", errInvalidLimit, want{}}, // '+' is a space
		{"limit=%2B5", nil, want{5, "-", nil}},
		{"limit=005", nil, want{5, "-", nil}},
		{"limit=3&limit=7", nil, want{7, "-", nil}},
		{"limit=", errInvalidLimit, want{}},
		{"limit", errInvalidLimit, want{}},
		{"limit=0", errInvalidLimit, want{}},
		{"limit=-1", errInvalidLimit, want{}},
		{"limit=-0", errInvalidLimit, want{}},
		{"limit=1001", errInvalidLimit, want{}},
		{"limit=1.5", errInvalidLimit, want{}},
		{"limit=abc", errInvalidLimit, want{}},
		{"limit=10x", errInvalidLimit, want{}},
		{"limit=%2B10", nil, want{10, "-", nil}},
		{"limit=%2B10%2B", errInvalidLimit, want{}},
		{"limit=%2010", errInvalidLimit, want{}},
		{"limit=99999999999999999999999", errInvalidLimit, want{}},
		{"limit[]=5", errInvalidLimit, want{}},
		{"limit[x]=5", errInvalidLimit, want{}},
		{"limit=5&limit[]=5", errInvalidLimit, want{}},
		{"limit[]=5&limit=5", nil, want{5, "-", nil}},
		{"limit=0&limit=5", nil, want{5, "-", nil}},

		{"cursor=ses-a", nil, want{100, "ses-a", nil}},
		{"cursor=a+b%2Fc", nil, want{100, "a b/c", nil}},
		{"cursor=%ZZ", nil, want{100, "%ZZ", nil}},
		{"cursor=a&cursor=b", nil, want{100, "b", nil}},
		{"cursor=", errInvalidCursor, want{}},
		{"cursor", errInvalidCursor, want{}},
		{"cursor[]=x", errInvalidCursor, want{}},
		{"cursor[x]=y", errInvalidCursor, want{}},
		{"cursor=a&cursor[]=x", errInvalidCursor, want{}},
		{"cursor[]=x&cursor=a", nil, want{100, "a", nil}},
		{"cursor[]=x&cursor=a&cursor[]=y", nil, want{100, "a", nil}},
		{"cursor=%FF", errInvalidCursor, want{}},
		{"cursor=a%00", errInvalidCursor, want{}},
		{"cursor[=x", nil, want{100, "-", nil}},
		{"[cursor]=x", nil, want{100, "-", nil}},

		{"metadata[a]=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata[a]=1&metadata[b]=&metadata[a]=2", nil, want{100, "-", map[string]string{"a": "2", "b": ""}}},
		{"metadata%5Bk%5D=v", nil, want{100, "-", map[string]string{"k": "v"}}},
		{"metadata[a.b]=1", nil, want{100, "-", map[string]string{"a.b": "1"}}},
		{"metadata[a]b]=1", nil, want{100, "-", map[string]string{"a]b": "1"}}},
		{"metadata[a[b]=1", nil, want{100, "-", map[string]string{"a[b": "1"}}},
		{"metadata=x", errInvalidMetadata, want{}},
		{"metadata", errInvalidMetadata, want{}},
		{"metadata=", errInvalidMetadata, want{}},
		{"metadata[]=x", errInvalidMetadata, want{}},
		{"metadata[a][b]=c", errInvalidMetadata, want{}},
		{"metadata[a][]=c", errInvalidMetadata, want{}},
		{"metadata[][a]=c", errInvalidMetadata, want{}},
		{"metadata[a]=1&metadata[]=x", errInvalidMetadata, want{}},
		{"metadata[]=x&metadata[a]=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata[a]=1&metadata=x", errInvalidMetadata, want{}},
		{"metadata=x&metadata[a]=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata[a][b]=c&metadata[a]=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata[a][b]=c&metadata[a]=1&metadata[a][d]=e", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata[a]=1&metadata[a][b]=c", errInvalidMetadata, want{}},
		{"metadata[a]=%FF", errInvalidMetadata, want{}},
		{"metadata[%00]=1", errInvalidMetadata, want{}},

		{"metadata.a=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata.a=1&metadata.a=2", nil, want{100, "-", map[string]string{"a": "2"}}},
		{"metadata.a.b=1", nil, want{100, "-", map[string]string{"a.b": "1"}}},
		{"metadata.a=", nil, want{100, "-", map[string]string{"a": ""}}},
		{"metadata.a", nil, want{100, "-", map[string]string{"a": ""}}},
		{"metadata.=x", nil, want{100, "-", nil}},
		{"metadata.a[]=1", nil, want{100, "-", nil}},
		{"metadata.a[b]=1", nil, want{100, "-", nil}},
		{"metadata.a=1&metadata.a[]=2", nil, want{100, "-", nil}},
		{"metadata.a[]=2&metadata.a=1", nil, want{100, "-", map[string]string{"a": "1"}}},
		{"metadata.a[b=1", nil, want{100, "-", map[string]string{"a[b": "1"}}},
		{"metadata.a=%FF", errInvalidMetadata, want{}},
		{"metadata[a]=1&metadata[b]=2&metadata.a=3", nil, want{100, "-", map[string]string{"a": "3", "b": "2"}}},
		{"metadata.a=3&metadata[a]=1", nil, want{100, "-", map[string]string{"a": "3"}}},
		{"Metadata[a]=1&metadata_a=1&meta[a]=1", nil, want{100, "-", nil}},

		// Checks run in order: limit, cursor, metadata.
		{"metadata=x&cursor=&limit=0", errInvalidLimit, want{}},
		{"metadata=x&cursor=", errInvalidCursor, want{}},
		{"limit=10&cursor=c&metadata[k]=v&metadata.j=w&other=1", nil, want{10, "c", map[string]string{"j": "w", "k": "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			q, err := parseListQuery([]byte(tt.raw))
			if err != tt.err {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			got := want{q.limit, strOrDash(q.cursor), q.filters}
			if got.limit != tt.want.limit || got.cursor != tt.want.cursor || !maps.Equal(got.filters, tt.want.filters) ||
				(got.filters == nil) != (tt.want.filters == nil) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTailQuery(t *testing.T) {
	tests := []struct {
		raw    string
		err    *apiError
		cursor uint64
		size   int
	}{
		{"", nil, 0, 1},
		{"cursor=0", nil, 0, 1},
		{"cursor=42&batch_size=100", nil, 42, 100},
		{"cursor=%2B7", nil, 7, 1},
		{"cursor=+7", errInvalidCursor, 0, 0}, // '+' is a space
		{"cursor=007", nil, 7, 1},
		{"cursor=-0", nil, 0, 1},
		{"cursor=9223372036854775807", nil, math.MaxInt64, 1},
		{"cursor=1&cursor=2", nil, 2, 1},
		{"access_token=x&cursor=3", nil, 3, 1},
		{"cursor=-1", errInvalidCursor, 0, 0},
		{"cursor=bad", errInvalidCursor, 0, 0},
		{"cursor=1.5", errInvalidCursor, 0, 0},
		{"cursor=", errInvalidCursor, 0, 0},
		{"cursor", errInvalidCursor, 0, 0},
		{"cursor=%201", errInvalidCursor, 0, 0},
		{"cursor=9223372036854775808", errInvalidCursor, 0, 0},
		{"cursor=18446744073709551616", errInvalidCursor, 0, 0},
		{"cursor[]=1", errInvalidCursor, 0, 0},
		{"cursor[a]=1", errInvalidCursor, 0, 0},
		{"batch_size=1", nil, 0, 1},
		{"batch_size=1000", nil, 0, 1000},
		{"batch_size=%2b2", nil, 0, 2},
		{"batch_size=+2", errInvalidTailBatchSize, 0, 0},
		{"batch_size=0", errInvalidTailBatchSize, 0, 0},
		{"batch_size=1001", errInvalidTailBatchSize, 0, 0},
		{"batch_size=bad", errInvalidTailBatchSize, 0, 0},
		{"batch_size=", errInvalidTailBatchSize, 0, 0},
		{"batch_size=-1", errInvalidTailBatchSize, 0, 0},
		{"batch_size[]=5", errInvalidTailBatchSize, 0, 0},
		{"batch_size=0&cursor=-1", errInvalidCursor, 0, 0},
	}
	for _, tt := range tests {
		q, err := parseTailQuery([]byte(tt.raw))
		if err != tt.err || err == nil && (q.cursor != tt.cursor || q.batchSize != tt.size) {
			t.Errorf("parseTailQuery(%q) = %+v, %v; want cursor %d batch %d, %v", tt.raw, q, err, tt.cursor, tt.size, tt.err)
		}
	}
}

func TestParseEventsQuery(t *testing.T) {
	tests := []struct {
		raw    string
		err    *apiError
		cursor uint64
		limit  int
	}{
		{"", nil, 0, 100},
		{"cursor=5&limit=10", nil, 5, 10},
		{"limit=1000", nil, 0, 1000},
		{"limit=1001", errInvalidLimit, 0, 0},
		{"limit=0", errInvalidLimit, 0, 0},
		{"limit=", errInvalidLimit, 0, 0},
		{"cursor=x", errInvalidCursor, 0, 0},
		{"cursor=9223372036854775808", errInvalidCursor, 0, 0},
		{"cursor=x&limit=0", errInvalidCursor, 0, 0},
		{"batch_size=0", nil, 0, 100},
	}
	for _, tt := range tests {
		q, err := parseEventsQuery([]byte(tt.raw))
		if err != tt.err || err == nil && (q.cursor != tt.cursor || q.limit != tt.limit) {
			t.Errorf("parseEventsQuery(%q) = %+v, %v; want cursor %d limit %d, %v", tt.raw, q, err, tt.cursor, tt.limit, tt.err)
		}
	}
}

func TestQueryValue(t *testing.T) {
	tests := []struct {
		raw     string
		want    string
		present bool
	}{
		{"", "", false},
		{"cursor=1", "", false},
		{"access_token=abc", "abc", true},
		{"access_token=a&access_token=b", "b", true},
		{"access_token=a+b%2Ec", "a b.c", true},
		{"access_token=%ZZ", "%ZZ", true},
		{"access_token=", "", true},
		{"access_token", "", true},
		{"access%5Ftoken=x", "x", true},
		{"access_token[]=x", "", false},
		{"access_token=a&access_token[]=x", "a", true},
		{"xaccess_token=x&access_tokenx=y", "", false},
		{"access_token=a=b", "a=b", true},
	}
	for _, tt := range tests {
		got, present := queryValue([]byte(tt.raw), "access_token")
		if got != tt.want || present != tt.present {
			t.Errorf("queryValue(%q) = %q, %v; want %q, %v", tt.raw, got, present, tt.want, tt.present)
		}
	}
}

func TestRedactQuery(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"", ""},
		{"cursor=1&batch_size=2", "cursor=1&batch_size=2"},
		{"access_token=eyJ.abc.def", "access_token=[REDACTED]"},
		{"cursor=1&access_token=eyJ&batch_size=2", "cursor=1&access_token=[REDACTED]&batch_size=2"},
		{"access_token=a&access_token=b", "access_token=[REDACTED]&access_token=[REDACTED]"},
		{"access_token=%ZZ%", "access_token=[REDACTED]"},
		{"access_token=", "access_token=[REDACTED]"},
		{"access_token", "access_token"},
		{"access%5ftoken=x", "access%5ftoken=[REDACTED]"},
		{"access_token[]=x&access_token[a]=y", "access_token[]=[REDACTED]&access_token[a]=[REDACTED]"},
		{"access_token=a=b&x=%ZZ", "access_token=[REDACTED]&x=%ZZ"},
		{"&&access_token=a&&", "&&access_token=[REDACTED]&&"},
		{"my_access_token=x&access_tokens=y&x=access_token", "my_access_token=x&access_tokens=y&x=access_token"},
		{"a=%2B+%20&access_token=t", "a=%2B+%20&access_token=[REDACTED]"},
	}
	for _, tt := range tests {
		if got := redactQuery([]byte(tt.raw)); string(got) != tt.want {
			t.Errorf("redactQuery(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestQueryParsersMatchModel(t *testing.T) {
	for _, raw := range querySeeds {
		checkListQuery(t, raw)
		checkSeqQueries(t, raw)
	}
	// Random mixes of the interesting keys, reproducible by the fixed seed.
	rng := rand.New(rand.NewPCG(1, 2))
	shape := make([]byte, 0, 16)
	for range 20000 {
		shape = shape[:0]
		for range 2 * (1 + rng.IntN(6)) {
			shape = append(shape, byte(rng.IntN(256)))
		}
		raw := shapedQuery(shape)
		checkListQuery(t, raw)
		checkSeqQueries(t, raw)
	}
}

// shapedQuery builds a query string from pairs of bytes, each choosing a
// key and a value from the forms the parsers treat specially. Random bytes
// rarely spell these, so the fuzz targets use it next to raw strings.
func shapedQuery(shape []byte) string {
	keys := [...]string{
		"limit", "limit[]", "cursor", "cursor[]", "cursor[x]", "batch_size", "batch_size[x]",
		"metadata", "metadata[a]", "metadata[b]", "metadata[]", "metadata[a][b]", "metadata[a][]",
		"metadata[][a]", "metadata[b][c][d]", "metadata[a]]", "metadata.a", "metadata.b", "metadata.a[]",
		"metadata.a[x]", "metadata.", "metadata%5Ba%5D", "metadata.a%5B%5D", "access_token", "x",
	}
	values := [...]string{"", "1", "0", "5", "%2B7", "+7", "-0", "1001", "x", "%FF", "%00", "a+b", "%ZZ", "9223372036854775808"}
	parts := make([]string, 0, len(shape)/2)
	for i := 0; i+1 < len(shape); i += 2 {
		key := keys[int(shape[i])%len(keys)]
		if shape[i+1] >= 0xF0 {
			parts = append(parts, key) // no '='
			continue
		}
		parts = append(parts, key+"="+values[int(shape[i+1])%len(values)])
	}
	return strings.Join(parts, "&")
}

// The model below is an independent, literal rendering of how upstream's
// framework decodes a query string into nested parameters (Plug 1.18
// Plug.Conn.Query) and how upstream validates them. The parsers above take
// shortcuts; the fuzz targets hold them to this model.

// plugLevel names a nesting level: the root, or the key prefix of a level.
type plugLevel struct {
	root bool
	name string
}

// plugEntry is one assignment at a level; key nil is a list element, value
// is a string or a plugLevel to descend into.
type plugEntry struct {
	key   *string
	value any
}

type plugDecoder map[plugLevel][]plugEntry // entries oldest first

func plugDecode(raw string) map[string]any {
	d := plugDecoder{{root: true}: nil}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		d.insert(modelUnescape(k), modelUnescape(v))
	}
	return d.finalizeMap(d[plugLevel{root: true}])
}

type plugLevelKey struct {
	level plugLevel
	key   *string
}

func (d plugDecoder) insert(key, value string) {
	rootKey := key
	keys := []plugLevelKey{{plugLevel{root: true}, &rootKey}}
	if pos := strings.IndexByte(key, '['); key != "" && key[len(key)-1] == ']' && pos > 0 {
		rootKey = key[:pos]
		level := plugLevel{name: key[:pos]}
		start := pos + 1
		sub := func(end int) *string {
			if end == start {
				return nil
			}
			s := key[start:end]
			return &s
		}
		for i := pos + 1; i < len(key); {
			if key[i] == ']' && i+1 < len(key) && key[i+1] == '[' {
				keys = append([]plugLevelKey{{level, sub(i)}}, keys...)
				level = plugLevel{name: key[:i+1]}
				i += 2
				start = i
				continue
			}
			if key[i] == ']' && i == len(key)-1 {
				keys = append([]plugLevelKey{{level, sub(i)}}, keys...)
			}
			i++
		}
	}
	var v any = value
	for _, lk := range keys {
		if entries, ok := d[lk.level]; ok {
			d[lk.level] = append(entries, plugEntry{lk.key, v})
			return
		}
		d[lk.level] = []plugEntry{{lk.key, v}}
		v = lk.level
	}
}

func (d plugDecoder) resolve(v any) any {
	level, ok := v.(plugLevel)
	if !ok {
		return v
	}
	entries := d[level]
	if entries[len(entries)-1].key == nil {
		var list []any
		for _, e := range entries {
			if e.key == nil {
				list = append(list, d.resolve(e.value))
			}
		}
		return list
	}
	return d.finalizeMap(entries)
}

func (d plugDecoder) finalizeMap(entries []plugEntry) map[string]any {
	m := make(map[string]any)
	for _, e := range entries {
		if e.key != nil {
			m[*e.key] = d.resolve(e.value)
		}
	}
	return m
}

func modelUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' {
			b.WriteByte(' ')
			continue
		}
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var modelIntegerRE = regexp.MustCompile(`^[+-]?[0-9]+$`)

// modelInteger is Integer.parse consuming the whole string, limited to
// [lo, hi].
func modelInteger(v any, lo, hi int64) (int64, bool) {
	s, ok := v.(string)
	if !ok || !modelIntegerRE.MatchString(s) {
		return 0, false
	}
	n, _ := new(big.Int).SetString(strings.TrimPrefix(s, "+"), 10)
	if n.Cmp(big.NewInt(lo)) < 0 || n.Cmp(big.NewInt(hi)) > 0 {
		return 0, false
	}
	return n.Int64(), true
}

func modelStorable(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s && !strings.Contains(s, "\x00")
}

func modelListQuery(raw string) (listQuery, *apiError) {
	params := plugDecode(raw)
	q := listQuery{limit: defaultListLimit}
	if v, ok := params["limit"]; ok {
		n, ok := modelInteger(v, 1, maxLimit)
		if !ok {
			return listQuery{}, errInvalidLimit
		}
		q.limit = int(n)
	}
	if v, ok := params["cursor"]; ok {
		s, ok := v.(string)
		if !ok || s == "" || !modelStorable(s) {
			return listQuery{}, errInvalidCursor
		}
		q.cursor = &s
	}
	filters := map[string]string{}
	if v, ok := params["metadata"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return listQuery{}, errInvalidMetadata
		}
		for k, e := range m {
			s, ok := e.(string)
			if !ok || k == "" || !modelStorable(k) || !modelStorable(s) {
				return listQuery{}, errInvalidMetadata
			}
			filters[k] = s
		}
	}
	for k, v := range params {
		s, ok := v.(string)
		if !strings.HasPrefix(k, "metadata.") || k == "metadata." || !ok {
			continue
		}
		if !modelStorable(k) || !modelStorable(s) {
			return listQuery{}, errInvalidMetadata
		}
		filters[strings.TrimPrefix(k, "metadata.")] = s
	}
	if len(filters) > 0 {
		q.filters = filters
	}
	return q, nil
}

func modelSeqQuery(raw, sizeKey string, sizeDefault, sizeMax int64) (cursor uint64, size int, err *apiError) {
	params := plugDecode(raw)
	if v, ok := params["cursor"]; ok {
		n, ok := modelInteger(v, 0, math.MaxInt64)
		if !ok {
			return 0, 0, errInvalidCursor
		}
		cursor = uint64(n)
	}
	size = int(sizeDefault)
	if v, ok := params[sizeKey]; ok {
		n, ok := modelInteger(v, 1, sizeMax)
		if !ok {
			if sizeKey == "limit" {
				return 0, 0, errInvalidLimit
			}
			return 0, 0, errInvalidTailBatchSize
		}
		size = int(n)
	}
	return cursor, size, nil
}

func checkListQuery(t *testing.T, raw string) {
	t.Helper()
	got, gotErr := parseListQuery([]byte(raw))
	want, wantErr := modelListQuery(raw)
	if gotErr != wantErr {
		t.Fatalf("parseListQuery(%q) error %v, model %v", raw, gotErr, wantErr)
	}
	if got.limit != want.limit || strOrDash(got.cursor) != strOrDash(want.cursor) ||
		!maps.Equal(got.filters, want.filters) || (got.filters == nil) != (want.filters == nil) {
		t.Fatalf("parseListQuery(%q) = %+v %q, model %+v %q", raw, got, strOrDash(got.cursor), want, strOrDash(want.cursor))
	}
}

func checkSeqQueries(t *testing.T, raw string) {
	t.Helper()
	tail, err := parseTailQuery([]byte(raw))
	cursor, size, wantErr := modelSeqQuery(raw, "batch_size", 1, maxTailBatchSize)
	if err != wantErr || err == nil && (tail.cursor != cursor || tail.batchSize != size) {
		t.Fatalf("parseTailQuery(%q) = %+v, %v; model %d %d, %v", raw, tail, err, cursor, size, wantErr)
	}
	events, err := parseEventsQuery([]byte(raw))
	cursor, size, wantErr = modelSeqQuery(raw, "limit", defaultListLimit, maxLimit)
	if err != wantErr || err == nil && (events.cursor != cursor || events.limit != size) {
		t.Fatalf("parseEventsQuery(%q) = %+v, %v; model %d %d, %v", raw, events, err, cursor, size, wantErr)
	}
}

// querySeeds are the fuzz seeds of the query parsers and the cases the
// model comparison always runs.
var querySeeds = []string{
	"", "&", "=", "==", "[", "]", "[]", "a[]", "[a]=1", "a]=1", "a[=1",
	"limit=10&cursor=abc", "limit=+5", "limit=0", "limit=1001", "limit[]=1", "limit[]=1&limit=2",
	"cursor=", "cursor[]=x", "cursor[x]=y&cursor=z", "cursor=%ZZ", "cursor=%FF", "cursor=+0&batch_size=+1000",
	"cursor=-0", "cursor=9223372036854775807", "cursor=9223372036854775808", "batch_size=1001",
	"metadata[a]=1&metadata.b=2", "metadata=x", "metadata[]=x", "metadata[a][b]=c",
	"metadata[a][b]=c&metadata[a]=1&metadata[a][d]=e", "metadata[]=x&metadata[a]=1",
	"metadata[a]=1&metadata[]=x", "metadata[][a]=1&metadata[b]=2", "metadata.a[]=1&metadata.a=2",
	"metadata.a=2&metadata.a[x]=1", "metadata.=x", "metadata[a]b]=1", "metadata[a]]=1", "metadata[a][]]=1",
	"metadata%5Ba%5D=%41+%42", "metadata[a=1", "metadata=1&metadata[a][b]=2&metadata[c]=3",
	"access_token=x&cursor=1", "limit=5&limit[a]=1&limit=6", "cursor[]=x&cursor=1&cursor[]=y",
	"batch_size[]=1&batch_size=2&batch_size[x]=3", "metadata.a[]=1&metadata.a=2&metadata.a[]=3",
}
