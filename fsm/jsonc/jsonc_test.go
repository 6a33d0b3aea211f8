package jsonc

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		// Objects: sorted byte-wise, duplicates resolved last-wins.
		{"sorted keys", `{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{"byte-wise order", `{"é":1,"z":2,"Z":3,"aa":4,"a":5,"":6}`, `{"":6,"Z":3,"a":5,"aa":4,"z":2,"é":1}`},
		{"duplicate last wins", `{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
		{"duplicate replaces whole value", `{"a":{"x":1},"a":{"y":2}}`, `{"a":{"y":2}}`},
		{"duplicate of different kind", `{"a":[1],"a":"s"}`, `{"a":"s"}`},
		{"nested objects sorted", `{"z":{"d":1,"c":[{"f":1,"e":2}]}}`, `{"z":{"c":[{"e":2,"f":1}],"d":1}}`},
		{"empty object", `{ }`, `{}`},
		{"empty array", `[ ]`, `[]`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},

		// Whitespace: the four JSON whitespace bytes, anywhere between tokens.
		{"whitespace", " \t\n\r{ \"a\" :\t[ 1 ,\n2 ] , \"b\" : { } }\r\n ", `{"a":[1,2],"b":{}}`},

		// Literals.
		{"true", `true`, `true`},
		{"false", `false`, `false`},
		{"null", ` null `, `null`},

		// Strings: minimal escapes on output.
		{"simple escapes", `"\"\\\/\b\f\n\r\t"`, `"\"\\/\b\f\n\r\t"`},
		{"unicode escape ascii", `"\u0041\u0062"`, `"Ab"`},
		{"unicode escape latin", `"\u00e9\u00E9"`, `"éé"`},
		{"unicode escape control", `"\u001f\u0001"`, `"\u001f\u0001"`},
		{"del and line separator stay raw", `"\u007f\u2028"`, "\"\x7f\u2028\""},
		{"raw utf-8 kept", `"héllo 世界 😀"`, `"héllo 世界 😀"`},
		{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
		{"surrogate pair upper hex", `"\uD83D\uDE00x"`, `"😀x"`},
		{"escape then raw utf-8", `"\n世"`, "\"\\n世\""},
		{"escaped key", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{"escaped duplicate key", `{"a":1,"\u0061":2}`, `{"a":2}`},

		// Integers are kept as written (no range limit), floats are canonical.
		{"int", `1`, `1`},
		{"negative int", `-12`, `-12`},
		{"zero", `0`, `0`},
		{"negative zero int", `-0`, `0`},
		{"big int", `123456789012345678901234567890`, `123456789012345678901234567890`},
		{"big negative int", `-98765432109876543210987654321`, `-98765432109876543210987654321`},
		{"float", `1.0`, `1.0`},
		{"float trailing zeros", `1.00`, `1.0`},
		{"exponent makes float", `1e0`, `1.0`},
		{"exponent upper plus", `1E+0`, `1.0`},
		{"exponent scales", `1.5e2`, `150.0`},
		{"negative exponent", `25e-1`, `2.5`},
		{"small float plain", `1e-7`, `0.0000001`},
		{"large float plain", `1e21`, `1000000000000000000000.0`},
		{"negative zero float", `-0.0`, `0.0`},
		{"negative zero exponent", `-0e5`, `0.0`},
		{"float fraction", `0.1`, `0.1`},
		{"shortest round trip", `0.30000000000000004`, `0.30000000000000004`},
		{"float precision beyond float64", `1.00000000000000000001`, `1.0`},
		{"underflow to zero", `1e-400`, `0.0`},
		{"numbers in containers", `{"i":1,"f":1.0,"e":1e0,"z":-0}`, `{"e":1.0,"f":1.0,"i":1,"z":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonical(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonical(%q) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := Canonical(got)
			if err != nil || string(again) != string(got) {
				t.Fatalf("Canonical not idempotent: %q -> %q (%v)", got, again, err)
			}
		})
	}
}

func TestIntAndFloatDiffer(t *testing.T) {
	i, _ := Canonical([]byte(`{"n":1}`))
	f, _ := Canonical([]byte(`{"n":1.0}`))
	if string(i) == string(f) {
		t.Fatalf("1 and 1.0 have the same canonical form %s", i)
	}
	v, err := Parse([]byte(`[1,1.0,1e0,-0,1000000000000000000000]`))
	if err != nil {
		t.Fatal(err)
	}
	wantInt := []bool{true, false, false, true, true}
	for k, e := range v.Elems {
		if e.Kind != Number || e.IsInt != wantInt[k] {
			t.Errorf("elem %d (%s): kind %d IsInt %v, want number IsInt %v", k, e.Num, e.Kind, e.IsInt, wantInt[k])
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, ErrSyntax},
		{"only whitespace", " \n\t", ErrSyntax},
		{"form feed is not whitespace", "\f{}", ErrSyntax},
		{"vertical tab is not whitespace", "{}\v", ErrTrailing},
		{"second value", `{} {}`, ErrTrailing},
		{"trailing garbage", `[1]x`, ErrTrailing},
		{"literal prefix", `truex`, ErrTrailing},
		{"truncated literal", `nul`, ErrSyntax},
		{"capitalised literal", `True`, ErrSyntax},
		{"trailing comma object", `{"a":1,}`, ErrSyntax},
		{"trailing comma array", `[1,]`, ErrSyntax},
		{"leading comma", `[,1]`, ErrSyntax},
		{"missing colon", `{"a" 1}`, ErrSyntax},
		{"missing value", `{"a":}`, ErrSyntax},
		{"key without value", `{"a"}`, ErrSyntax},
		{"unquoted key", `{a:1}`, ErrSyntax},
		{"non-string key", `{1:1}`, ErrSyntax},
		{"missing comma object", `{"a":1 "b":2}`, ErrSyntax},
		{"missing comma array", `[1 2]`, ErrSyntax},
		{"unclosed object", `{"a":1`, ErrSyntax},
		{"unclosed array", `[1`, ErrSyntax},
		{"unclosed string", `"abc`, ErrSyntax},
		{"dangling backslash", `"abc\`, ErrSyntax},
		{"single quotes", `'a'`, ErrSyntax},

		// Numbers.
		{"leading zero top level", `01`, ErrTrailing},
		{"leading zero in array", `[01]`, ErrSyntax},
		{"bare minus", `-`, ErrSyntax},
		{"double minus", `--1`, ErrSyntax},
		{"plus sign", `+1`, ErrSyntax},
		{"leading dot", `.5`, ErrSyntax},
		{"trailing dot", `1.`, ErrSyntax},
		{"empty exponent", `1e`, ErrSyntax},
		{"signed empty exponent", `1e+`, ErrSyntax},
		{"hex", `0x10`, ErrTrailing},
		{"NaN", `NaN`, ErrSyntax},
		{"Infinity", `-Infinity`, ErrSyntax},
		{"float overflow", `1e400`, ErrNumber},
		{"negative float overflow", `-1e400`, ErrNumber},
		{"overflow in container", `{"a":[2e308]}`, ErrNumber},
		{"number too long int", strings.Repeat("1", MaxNumberLen+1), ErrNumber},
		{"number too long float", "0." + strings.Repeat("1", MaxNumberLen-1), ErrNumber},

		// Strings.
		{"unknown escape", `"\x"`, ErrSyntax},
		{"short unicode escape", `"\u12"`, ErrSyntax},
		{"bad hex in unicode escape", `"\u12G4"`, ErrSyntax},
		{"raw control char", "\"a\x01b\"", ErrSyntax},
		{"raw tab", "\"a\tb\"", ErrSyntax},
		{"raw newline after escape", "\"\\n\nb\"", ErrSyntax},
		{"raw NUL", "\"a\x00b\"", ErrNUL},
		{"raw NUL after escape", "\"\\n\x00\"", ErrNUL},
		{"escaped NUL", `"a\u0000b"`, ErrNUL},
		{"escaped NUL in key", `{"\u0000":1}`, ErrNUL},
		{"invalid byte", "\"\xff\"", ErrUTF8},
		{"invalid byte after escape", "\"\\n\xff\"", ErrUTF8},
		{"invalid byte in key", "{\"\xfe\":1}", ErrUTF8},
		{"truncated sequence", "\"\xe2\x82\"", ErrUTF8},
		{"truncated sequence before escape", "\"\xe2\x82\\u00ac\"", ErrUTF8},
		{"overlong encoding", "\"\xc0\xaf\"", ErrUTF8},
		{"utf-8 encoded surrogate", "\"\xed\xa0\x80\"", ErrUTF8},
		{"lone high surrogate", `"\ud83d"`, ErrUTF8},
		{"high surrogate then char", `"\ud83dx"`, ErrUTF8},
		{"high surrogate then other escape", `"\ud83d\n"`, ErrUTF8},
		{"two high surrogates", `"\ud83d\ud83d"`, ErrUTF8},
		{"high surrogate then BMP escape", `"\ud83d\u0041"`, ErrUTF8},
		{"high surrogate then NUL escape", `"\ud83d\u0000"`, ErrUTF8},
		{"lone low surrogate", `"\ude00"`, ErrUTF8},
		{"reversed pair", `"\ude00\ud83d"`, ErrUTF8},
		{"high surrogate then bad hex", `"\ud83d\uZZZZ"`, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, %v; want error %v", tt.in, v.Append(nil), err, tt.want)
			}
		})
	}
}

func TestNumberLengthLimit(t *testing.T) {
	longest := strings.Repeat("9", MaxNumberLen)
	got, err := Canonical([]byte(longest))
	if err != nil || string(got) != longest {
		t.Fatalf("a %d-digit integer must be kept verbatim: %v", MaxNumberLen, err)
	}
	if _, err := Canonical([]byte("-" + longest)); !errors.Is(err, ErrNumber) {
		t.Fatalf("the sign counts towards MaxNumberLen: got %v", err)
	}
	// The longest canonical float text (the smallest subnormal) must itself
	// be accepted, or canonical bytes would not read back.
	got, err = Canonical([]byte("5e-324"))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := Canonical(got); err != nil || string(again) != string(got) {
		t.Fatalf("subnormal does not round-trip: %v", err)
	}
}

func TestDepthLimit(t *testing.T) {
	nest := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	objects := func(n int) string {
		return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"arrays at limit", nest("[", "]", MaxDepth), nil},
		{"arrays over limit", nest("[", "]", MaxDepth+1), ErrDepth},
		{"objects at limit", objects(MaxDepth), nil},
		{"objects over limit", objects(MaxDepth + 1), ErrDepth},
		{"mixed over limit", "[" + objects(MaxDepth) + "]", ErrDepth},
		{"scalar at limit", strings.Repeat("[", MaxDepth) + `"x"` + strings.Repeat("]", MaxDepth), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"/", `"/"`},
		{"<>&", `"<>&"`},
		{"\u2028é😀", "\"\u2028é😀\""},
	}
	for _, tt := range tests {
		if got := AppendString([]byte("x"), tt.in); string(got) != "x"+tt.want {
			t.Errorf("AppendString(%q) = %s, want x%s", tt.in, got, tt.want)
		}
	}
}

func TestFormatFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{negZero(), "0.0"},
		{1, "1.0"},
		{-2, "-2.0"},
		{0.5, "0.5"},
		{1e21, "1000000000000000000000.0"},
		{1e-7, "0.0000001"},
		{123.456, "123.456"},
	}
	for _, tt := range tests {
		if got := FormatFloat(tt.in); got != tt.want {
			t.Errorf("FormatFloat(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

func TestGetSet(t *testing.T) {
	v, err := Parse([]byte(`{"b":2,"d":4}`))
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := v.Get("d"); !ok || m.Num != "4" {
		t.Fatalf("Get(d) = %+v, %v", m, ok)
	}
	for _, k := range []string{"a", "c", "e", ""} {
		if _, ok := v.Get(k); ok {
			t.Fatalf("Get(%q) found a missing key", k)
		}
	}
	if _, ok := StringValue("s").Get("s"); ok {
		t.Fatal("Get on a non-object must find nothing")
	}

	tests := []struct {
		key  string
		want string
	}{
		{"a", `{"a":"x","b":2,"d":4}`},
		{"c", `{"b":2,"c":"x","d":4}`},
		{"e", `{"b":2,"d":4,"e":"x"}`},
		{"b", `{"b":"x","d":4}`},
		{"d", `{"b":2,"d":"x"}`},
	}
	for _, tt := range tests {
		if got := v.Set(tt.key, StringValue("x")).Append(nil); string(got) != tt.want {
			t.Errorf("Set(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
	if got := v.Append(nil); string(got) != `{"b":2,"d":4}` {
		t.Fatalf("Set modified its receiver: %s", got)
	}
	if got := (Value{Kind: Object}).Set("k", Value{Kind: Null}).Append(nil); string(got) != `{"k":null}` {
		t.Fatalf("Set on empty object = %s", got)
	}
}

func TestMerge(t *testing.T) {
	tests := []struct{ base, patch, want string }{
		{`{}`, `{}`, `{}`},
		{`{"a":1}`, `{}`, `{"a":1}`},
		{`{}`, `{"a":1}`, `{"a":1}`},
		{`{"a":1,"c":3}`, `{"b":2,"d":4}`, `{"a":1,"b":2,"c":3,"d":4}`},
		{`{"a":1,"b":2}`, `{"b":null}`, `{"a":1,"b":null}`},
		{`{"a":{"x":1,"y":2}}`, `{"a":{"z":3}}`, `{"a":{"z":3}}`},
		{`{"b":1}`, `{"a":[1],"b":"s","c":true}`, `{"a":[1],"b":"s","c":true}`},
	}
	for _, tt := range tests {
		base, err1 := Parse([]byte(tt.base))
		patch, err2 := Parse([]byte(tt.patch))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got := base.Merge(patch).Append(nil); string(got) != tt.want {
			t.Errorf("%s merged with %s = %s, want %s", tt.base, tt.patch, got, tt.want)
		}
		if got := base.Append(nil); string(got) != tt.base {
			t.Errorf("Merge modified its receiver: %s", got)
		}
	}
}

func TestAppendToExisting(t *testing.T) {
	v, err := Parse([]byte(`{"a":[true,false,null,"s",1.5]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Append([]byte("prefix:")); string(got) != `prefix:{"a":[true,false,null,"s",1.5]}` {
		t.Fatalf("Append = %s", got)
	}
}
