package jsonc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzJSONC checks the canonical form against encoding/json, an
// independent parser: whatever jsonc accepts is JSON, reads back to the same
// structure, and is a fixed point of Canonical. It also pins the syntax to
// encoding/json's: jsonc may refuse valid JSON only for its documented
// limits, never call it a syntax error.
func FuzzJSONC(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `"s"`, `0`, `-0`, `-0.0`, `1.0`, `1e0`, `1E+2`, `1e400`, `1e-400`,
		`5e-324`, `0.30000000000000004`, `123456789012345678901234567890`,
		`{"b":1,"a":{"d":[1,2.50,{"z":null,"y":true}],"c":"x"},"a":false}`,
		` { "a" : [ 1 , 2 ] } `,
		`"\"\\\/\b\f\n\r\t\u0041\u00e9\u001f\u2028\ud83d\ude00"`,
		`"\ud83d"`, `"\ude00"`, `"\u0000"`, "\"\xff\"", "\"\x00\"", "\"é😀\"",
		`[01]`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `1.`, `.5`, `-`, `+1`, `truex`,
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		strings.Repeat("7", MaxNumberLen+1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Parse(in)
		if err != nil {
			if json.Valid(in) && (errors.Is(err, ErrSyntax) || errors.Is(err, ErrTrailing)) {
				t.Fatalf("Parse(%q) = %v, but it is valid JSON", in, err)
			}
			return
		}
		canon := v.Append(nil)
		again, err := Canonical(canon)
		if err != nil {
			t.Fatalf("canonical %q does not parse: %v", canon, err)
		}
		if !bytes.Equal(again, canon) {
			t.Fatalf("not a fixed point: %q -> %q -> %q", in, canon, again)
		}
		if !json.Valid(in) {
			t.Fatalf("jsonc accepted invalid JSON %q", in)
		}
		if !json.Valid(canon) {
			t.Fatalf("canonical form %q of %q is not valid JSON", canon, in)
		}
		want, err := decodeStd(in)
		if err != nil {
			t.Fatalf("encoding/json cannot decode %q: %v", in, err)
		}
		got, err := decodeStd(canon)
		if err != nil {
			t.Fatalf("encoding/json cannot decode canonical %q: %v", canon, err)
		}
		if msg := sameJSON(want, got); msg != "" {
			t.Fatalf("%q -> %q: %s", in, canon, msg)
		}
	})
}

func decodeStd(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// sameJSON compares a decoding of the input with a decoding of its
// canonical form; it returns what differs, or "".
func sameJSON(in, canon any) string {
	switch a := in.(type) {
	case map[string]any:
		b, ok := canon.(map[string]any)
		if !ok || len(a) != len(b) {
			return "object differs"
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok {
				return "key " + strconv.Quote(k) + " lost"
			}
			if msg := sameJSON(av, bv); msg != "" {
				return msg
			}
		}
	case []any:
		b, ok := canon.([]any)
		if !ok || len(a) != len(b) {
			return "array differs"
		}
		for i := range a {
			if msg := sameJSON(a[i], b[i]); msg != "" {
				return msg
			}
		}
	case json.Number:
		b, ok := canon.(json.Number)
		if !ok {
			return "number became another kind"
		}
		return sameNumber(string(a), string(b))
	default:
		if in != canon {
			return "scalar differs"
		}
	}
	return ""
}

// sameNumber: integers keep their literal (only -0 becomes 0), floats keep
// their float64 value and are written as FormatFloat writes them.
func sameNumber(in, canon string) string {
	isInt := !strings.ContainsAny(in, ".eE")
	if isInt != !strings.ContainsAny(canon, ".eE") {
		return "integer/float nature of " + in + " changed to " + canon
	}
	if isInt {
		if in != canon && !(in == "-0" && canon == "0") {
			return "integer " + in + " rewritten as " + canon
		}
		return ""
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil {
		return "accepted float " + in + ": " + err.Error()
	}
	if FormatFloat(f) != canon {
		return "float " + in + " written as " + canon
	}
	return ""
}
