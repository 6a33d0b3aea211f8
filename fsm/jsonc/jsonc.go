// Package jsonc is the canonical JSON encoding Starcite stores events in.
//
// Clients send JSON in any key order and spacing; the API promises that two
// appends are "the same content" when their decoded JSON is structurally
// equal (docs/api.md#producer-sequencing). Parsing into a Value and writing
// it back with Append gives one byte string per structure: object keys
// sorted byte-wise and de-duplicated (last wins), no insignificant
// whitespace, minimal string escapes, integers as written and floats in
// plain decimal notation. The dedupe hash, the Raft log, tail frames and
// every archive adapter use this form, so an event reads back
// byte-identical from any tier.
//
// The parser is strict: UTF-8 is validated, nesting is bounded, and a few
// values that no archive backend can store (NUL characters, numbers out of
// float64 range or longer than MaxNumberLen) are rejected up front rather
// than accepted and later stuck in an archive retry loop.
package jsonc

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits enforced by Parse.
const (
	MaxDepth     = 512  // nesting of arrays and objects
	MaxNumberLen = 1000 // characters in one number literal
)

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON types.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value. Objects keep their members sorted by key
// with unique keys, so Append is the canonical encoding.
type Value struct {
	Kind    Kind
	Bool    bool
	Num     string // canonical number text
	IsInt   bool   // the literal had neither fraction nor exponent
	Str     string
	Elems   []Value
	Members []Member
}

// Member is one key/value pair of an object.
type Member struct {
	Key   string
	Value Value
}

// ErrSyntax and friends describe why Parse refused its input.
var (
	ErrSyntax   = errors.New("jsonc: invalid JSON")
	ErrDepth    = errors.New("jsonc: nesting too deep")
	ErrUTF8     = errors.New("jsonc: invalid UTF-8")
	ErrNUL      = errors.New("jsonc: NUL character in string")
	ErrNumber   = errors.New("jsonc: number out of range")
	ErrTrailing = errors.New("jsonc: data after the top-level value")
)

// Parse decodes exactly one JSON value (surrounding whitespace allowed).
func Parse(b []byte) (Value, error) {
	p := parser{b: b}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.i != len(p.b) {
		return Value{}, ErrTrailing
	}
	return v, nil
}

// Canonical parses b and returns its canonical encoding.
func Canonical(b []byte) ([]byte, error) {
	v, err := Parse(b)
	if err != nil {
		return nil, err
	}
	return v.Append(nil), nil
}

// Get returns the member of an object with the given key.
func (v Value) Get(key string) (Value, bool) {
	if v.Kind != Object {
		return Value{}, false
	}
	i := sort.Search(len(v.Members), func(i int) bool { return v.Members[i].Key >= key })
	if i < len(v.Members) && v.Members[i].Key == key {
		return v.Members[i].Value, true
	}
	return Value{}, false
}

// Set returns a copy of object v with key set to val (members stay sorted).
func (v Value) Set(key string, val Value) Value {
	i := sort.Search(len(v.Members), func(i int) bool { return v.Members[i].Key >= key })
	out := Value{Kind: Object, Members: make([]Member, 0, len(v.Members)+1)}
	out.Members = append(out.Members, v.Members[:i]...)
	out.Members = append(out.Members, Member{Key: key, Value: val})
	if i < len(v.Members) && v.Members[i].Key == key {
		i++
	}
	out.Members = append(out.Members, v.Members[i:]...)
	return out
}

// Merge returns object v with every member of object patch set on it: a
// shallow merge in which patch's members replace v's of the same key
// (nested objects whole) and v's other members are kept. Both must be
// objects; the result shares their member values.
func (v Value) Merge(patch Value) Value {
	out := Value{Kind: Object, Members: make([]Member, 0, len(v.Members)+len(patch.Members))}
	i, j := 0, 0
	for i < len(v.Members) || j < len(patch.Members) {
		switch {
		case j == len(patch.Members) || (i < len(v.Members) && v.Members[i].Key < patch.Members[j].Key):
			out.Members = append(out.Members, v.Members[i])
			i++
		case i == len(v.Members) || patch.Members[j].Key < v.Members[i].Key:
			out.Members = append(out.Members, patch.Members[j])
			j++
		default: // same key: the patch wins
			out.Members = append(out.Members, patch.Members[j])
			i++
			j++
		}
	}
	return out
}

// StringValue returns a JSON string value.
func StringValue(s string) Value { return Value{Kind: String, Str: s} }

// Append writes the canonical encoding of v to dst.
func (v Value) Append(dst []byte) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.Bool {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return append(dst, v.Num...)
	case String:
		return AppendString(dst, v.Str)
	case Array:
		dst = append(dst, '[')
		for i, e := range v.Elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.Append(dst)
		}
		return append(dst, ']')
	default:
		dst = append(dst, '{')
		for i, m := range v.Members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, m.Key)
			dst = append(dst, ':')
			dst = m.Value.Append(dst)
		}
		return append(dst, '}')
	}
}

const hexDigits = "0123456789abcdef"

// AppendString writes s as a JSON string with the minimal escapes:
// quote, backslash and control characters. s must be valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

type parser struct {
	b []byte
	i int
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (Value, error) {
	if p.i >= len(p.b) {
		return Value{}, ErrSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.string()
		return Value{Kind: String, Str: s}, err
	case c == 't':
		return Value{Kind: Bool, Bool: true}, p.literal("true")
	case c == 'f':
		return Value{Kind: Bool}, p.literal("false")
	case c == 'n':
		return Value{Kind: Null}, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return Value{}, ErrSyntax
	}
}

func (p *parser) literal(word string) error {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return ErrSyntax
	}
	p.i += len(word)
	return nil
}

func (p *parser) object(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, ErrDepth
	}
	p.i++ // '{'
	v := Value{Kind: Object}
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return Value{}, ErrSyntax
		}
		key, err := p.string()
		if err != nil {
			return Value{}, err
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return Value{}, ErrSyntax
		}
		p.i++
		p.skipSpace()
		val, err := p.value(depth)
		if err != nil {
			return Value{}, err
		}
		v.Members = append(v.Members, Member{Key: key, Value: val})
		p.skipSpace()
		if p.i >= len(p.b) {
			return Value{}, ErrSyntax
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] != '}' {
			return Value{}, ErrSyntax
		}
		p.i++
		v.Members = sortUnique(v.Members)
		return v, nil
	}
}

// sortUnique orders members by key and keeps the last of duplicate keys,
// as a decoder into a map would.
func sortUnique(ms []Member) []Member {
	slices.SortStableFunc(ms, func(a, b Member) int { return strings.Compare(a.Key, b.Key) })
	out := ms[:0]
	for i := range ms {
		if i+1 < len(ms) && ms[i+1].Key == ms[i].Key {
			continue
		}
		out = append(out, ms[i])
	}
	return out
}

func (p *parser) array(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, ErrDepth
	}
	p.i++ // '['
	v := Value{Kind: Array}
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.skipSpace()
		e, err := p.value(depth)
		if err != nil {
			return Value{}, err
		}
		v.Elems = append(v.Elems, e)
		p.skipSpace()
		if p.i >= len(p.b) {
			return Value{}, ErrSyntax
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] != ']' {
			return Value{}, ErrSyntax
		}
		p.i++
		return v, nil
	}
}

func (p *parser) number() (Value, error) {
	start := p.i
	isInt := true
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return Value{}, ErrSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		isInt = false
		p.i++
		if p.digits() == 0 {
			return Value{}, ErrSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		isInt = false
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return Value{}, ErrSyntax
		}
	}
	lit := string(p.b[start:p.i])
	if len(lit) > MaxNumberLen {
		return Value{}, ErrNumber
	}
	if isInt {
		if lit == "-0" {
			lit = "0"
		}
		return Value{Kind: Number, Num: lit, IsInt: true}, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return Value{}, ErrNumber
	}
	return Value{Kind: Number, Num: FormatFloat(f)}, nil
}

// FormatFloat is the canonical text of a float: plain decimal notation that
// always carries a fraction, so it never reads back as an integer, and that
// survives a round trip through a Postgres jsonb column unchanged.
func FormatFloat(f float64) string {
	if f == 0 {
		return "0.0" // -0.0 too: numeric columns have no negative zero
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s
		}
	}
	return s + ".0"
}

func (p *parser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// string decodes a JSON string starting at the opening quote.
func (p *parser) string() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", ErrUTF8
			}
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			if c == 0 {
				return "", ErrNUL
			}
			return "", ErrSyntax
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", ErrUTF8
			}
			return string(buf), nil
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return "", ErrSyntax
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := p.unicodeEscape()
				if err != nil {
					return "", err
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", ErrSyntax
			}
		case c < 0x20:
			if c == 0 {
				return "", ErrNUL
			}
			return "", ErrSyntax
		default:
			buf = append(buf, c)
			p.i++
		}
	}
	return "", ErrSyntax
}

// unicodeEscape reads the hex digits after \u (and a following low
// surrogate escape when the first is a high surrogate).
func (p *parser) unicodeEscape() (rune, error) {
	r1, ok := p.hex4()
	if !ok {
		return 0, ErrSyntax
	}
	if r1 == 0 {
		return 0, ErrNUL
	}
	if !utf16.IsSurrogate(r1) {
		return r1, nil
	}
	if r1 >= 0xDC00 || p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
		return 0, fmt.Errorf("%w: unpaired surrogate", ErrUTF8)
	}
	p.i += 2
	r2, ok := p.hex4()
	if !ok {
		return 0, ErrSyntax
	}
	r := utf16.DecodeRune(r1, r2)
	if r == utf8.RuneError {
		return 0, fmt.Errorf("%w: unpaired surrogate", ErrUTF8)
	}
	return r, nil
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
