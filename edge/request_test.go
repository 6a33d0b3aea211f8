package edge

import (
	"strconv"
	"strings"
	"testing"

	"starcite/fsm"
)

func TestContentTypeOK(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"  ", true},
		{"application/json", true},
		{"Application/JSON", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=UTF-8", true},
		{" application/json ; charset=latin1", true},
		{"application/vnd.api+json", true},
		{"application/merge-patch+json; x=y", true},
		{"APPLICATION/LD+JSON", true},
		{"application/+json", true},
		{"application/jsonx", false},
		{"application/json-seq", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"text/plain", false},
		{"text/json", false},
		{"json", false},
		{"application", false},
		{"application/", false},
		{"/json", false},
		{"application /json", false},
		{"application/ json", false},
		{"application/js on", false},
		{"application/json, text/plain", false},
		{"; charset=utf-8", false},
		{"*/*", false},
	}
	for _, tt := range tests {
		if got := contentTypeOK([]byte(tt.in)); got != tt.want {
			t.Errorf("contentTypeOK(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if !contentTypeOK(nil) {
		t.Error("an absent Content-Type must read as JSON")
	}
}

func TestDecodeCreateBody(t *testing.T) {
	type want struct {
		id, title                    string // "-" for nil
		metadata                     string
		badID, badTitle, badMetadata bool
	}
	tests := []struct {
		name string
		body string
		err  *apiError
		want want
	}{
		{"empty body", ``, nil, want{"-", "-", `{}`, false, false, false}},
		{"whitespace body", " \r\n\t", nil, want{"-", "-", `{}`, false, false, false}},
		{"empty object", `{}`, nil, want{"-", "-", `{}`, false, false, false}},
		{"all fields", `{"id":"ses-1","title":"Draft","metadata":{"b":1,"a":{"y":2,"x":1}}}`, nil,
			want{"ses-1", "Draft", `{"a":{"x":1,"y":2},"b":1}`, false, false, false}},
		{"nulls", `{"id":null,"title":null,"metadata":null}`, nil, want{"-", "-", `{}`, false, false, false}},
		{"empty title allowed", `{"title":""}`, nil, want{"-", "", `{}`, false, false, false}},
		{"unicode id", `{"id":"a/b c\u00e9"}`, nil, want{"a/b cé", "-", `{}`, false, false, false}},
		{"other fields ignored", `{"tenant_id":"x","creator_principal":{},"last_seq":5}`, nil, want{"-", "-", `{}`, false, false, false}},
		{"metadata kept apart from tenant", `{"metadata":{"tenant_id":"other"}}`, nil, want{"-", "-", `{"tenant_id":"other"}`, false, false, false}},
		{"empty id", `{"id":""}`, nil, want{"-", "-", `{}`, true, false, false}},
		{"numeric id", `{"id":5}`, nil, want{"-", "-", `{}`, true, false, false}},
		{"object id", `{"id":{}}`, nil, want{"-", "-", `{}`, true, false, false}},
		{"bool title", `{"title":true}`, nil, want{"-", "-", `{}`, false, true, false}},
		{"array title", `{"title":["x"]}`, nil, want{"-", "-", `{}`, false, true, false}},
		{"array metadata", `{"metadata":[]}`, nil, want{"-", "-", `{}`, false, false, true}},
		{"string metadata", `{"metadata":"x"}`, nil, want{"-", "-", `{}`, false, false, true}},
		{"every field bad", `{"id":1,"title":2,"metadata":3}`, nil, want{"-", "-", `{}`, true, true, true}},
		{"duplicate key last wins", `{"id":"a","id":"b"}`, nil, want{"b", "-", `{}`, false, false, false}},
		{"malformed", `{"id":`, errInvalidSession, want{}},
		{"trailing data", `{} x`, errInvalidSession, want{}},
		{"array", `[]`, errInvalidSession, want{}},
		{"string", `"x"`, errInvalidSession, want{}},
		{"null", `null`, errInvalidSession, want{}},
		{"number", `1`, errInvalidSession, want{}},
		{"invalid utf-8", "{\"id\":\"\xff\"}", errInvalidSession, want{}},
		{"NUL", `{"id":"a\u0000"}`, errInvalidSession, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decodeCreateBody([]byte(tt.body))
			if err != tt.err {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			got := want{strOrDash(b.ID), strOrDash(b.Title), string(b.Metadata), b.badID, b.badTitle, b.badMetadata}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func strOrDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

var testAppendPrincipal = Principal{TenantID: "acme", ID: "u-42", Type: "user"}

// appendPrincipalJSON is the starcite_principal object injected for testAppendPrincipal.
const appendPrincipalJSON = `{"actor":"user:u-42","principal_id":"u-42","principal_type":"user","tenant_id":"acme"}`

// contentJSON is the content of a decoded append as one JSON object.
func contentJSON(b appendBody) string {
	return "{" + string(b.Content.AppendJSON(nil)) + "}"
}

// minimalAppend is the smallest valid append body; tests add or replace members.
const minimalAppend = `"type":"t","payload":{},"producer_id":"w","producer_seq":1`

func TestDecodeAppendBody(t *testing.T) {
	content := func(fields string) string {
		return `{"type":"t","payload":{},"actor":"user:u-42","producer_id":"w","producer_seq":1,` + fields + `}`
	}
	defaults := `"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{},"idempotency_key":null`
	tests := []struct {
		name     string
		body     string
		want     string
		expected string // "-" for no expected_seq
	}{
		{"minimalAppend", `{` + minimalAppend + `}`, content(defaults), "-"},
		{"whitespace and order", " {\"producer_seq\" : 1 ,\n\"producer_id\":\"w\",\"payload\":{ },\"type\":\"t\"} ", content(defaults), "-"},
		{"payload canonical", `{"type":"t","payload":{"b":[1.50,2],"a":-0},"producer_id":"w","producer_seq":1}`,
			`{"type":"t","payload":{"a":0,"b":[1.5,2]},"actor":"user:u-42","producer_id":"w","producer_seq":1,` + defaults + `}`, "-"},
		{"producer_seq string", `{"type":"t","payload":{},"producer_id":"w","producer_seq":"1"}`, content(defaults), "-"},
		{"producer_seq plus", `{"type":"t","payload":{},"producer_id":"w","producer_seq":"+1"}`, content(defaults), "-"},
		{"producer_seq leading zeros", `{"type":"t","payload":{},"producer_id":"w","producer_seq":"001"}`, content(defaults), "-"},
		{"producer_seq max", `{"type":"t","payload":{},"producer_id":"w","producer_seq":9223372036854775807}`,
			`{"type":"t","payload":{},"actor":"user:u-42","producer_id":"w","producer_seq":9223372036854775807,` + defaults + `}`, "-"},
		{"actor given", `{` + minimalAppend + `,"actor":"user:u-42"}`, content(defaults), "-"},
		{"actor null", `{` + minimalAppend + `,"actor":null}`, content(defaults), "-"},
		{"source", `{` + minimalAppend + `,"source":"agent"}`,
			content(`"source":"agent","metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{},"idempotency_key":null`), "-"},
		{"idempotency key", `{` + minimalAppend + `,"idempotency_key":"k-1"}`,
			content(`"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{},"idempotency_key":"k-1"`), "-"},
		{"nulls are absent", `{` + minimalAppend + `,"source":null,"metadata":null,"refs":null,"idempotency_key":null,"expected_seq":null}`, content(defaults), "-"},
		{"metadata merged in order", `{` + minimalAppend + `,"metadata":{"z":1,"a":{"d":1,"c":2},"starcite_zz":true}}`,
			content(`"source":null,"metadata":{"a":{"c":2,"d":1},"starcite_principal":` + appendPrincipalJSON + `,"starcite_zz":true,"z":1},"refs":{},"idempotency_key":null`), "-"},
		{"metadata keys all before principal", `{` + minimalAppend + `,"metadata":{"a":1,"b":2}}`,
			content(`"source":null,"metadata":{"a":1,"b":2,"starcite_principal":` + appendPrincipalJSON + `},"refs":{},"idempotency_key":null`), "-"},
		{"metadata keys all after principal", `{` + minimalAppend + `,"metadata":{"x":1,"y":2}}`,
			content(`"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `,"x":1,"y":2},"refs":{},"idempotency_key":null`), "-"},
		{"client principal object merged", `{` + minimalAppend + `,"metadata":{"starcite_principal":{"tenant_id":"evil","zz":1,"actor":"x","b":[],"principal_idx":0}}}`,
			content(`"source":null,"metadata":{"starcite_principal":{"actor":"user:u-42","b":[],"principal_id":"u-42","principal_idx":0,"principal_type":"user","tenant_id":"acme","zz":1}},"refs":{},"idempotency_key":null`), "-"},
		{"client principal scalar replaced", `{` + minimalAppend + `,"metadata":{"starcite_principal":"me","k":"v"}}`,
			content(`"source":null,"metadata":{"k":"v","starcite_principal":` + appendPrincipalJSON + `},"refs":{},"idempotency_key":null`), "-"},
		{"client principal null replaced", `{` + minimalAppend + `,"metadata":{"starcite_principal":null}}`, content(defaults), "-"},
		{"refs stored as sent", `{` + minimalAppend + `,"refs":{"to_seq":"5","step":3,"request_id":"r","sequence_id":"","other":[1]}}`,
			content(`"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{"other":[1],"request_id":"r","sequence_id":"","step":3,"to_seq":"5"},"idempotency_key":null`), "-"},
		{"refs null members", `{` + minimalAppend + `,"refs":{"to_seq":null,"step":null,"request_id":null,"sequence_id":null}}`,
			content(`"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{"request_id":null,"sequence_id":null,"step":null,"to_seq":null},"idempotency_key":null`), "-"},
		{"refs zero", `{` + minimalAppend + `,"refs":{"to_seq":0,"step":"+0"}}`,
			content(`"source":null,"metadata":{"starcite_principal":` + appendPrincipalJSON + `},"refs":{"step":"+0","to_seq":0},"idempotency_key":null`), "-"},
		{"expected_seq zero", `{` + minimalAppend + `,"expected_seq":0}`, content(defaults), "0"},
		{"expected_seq int", `{` + minimalAppend + `,"expected_seq":42}`, content(defaults), "42"},
		{"expected_seq string", `{` + minimalAppend + `,"expected_seq":"+042"}`, content(defaults), "42"},
		{"expected_seq negative zero", `{` + minimalAppend + `,"expected_seq":-0}`, content(defaults), "0"},
		{"expected_seq negative zero string", `{` + minimalAppend + `,"expected_seq":"-0"}`, content(defaults), "0"},
		{"expected_seq max", `{` + minimalAppend + `,"expected_seq":"9223372036854775807"}`, content(defaults), "9223372036854775807"},
		{"unknown fields ignored", `{` + minimalAppend + `,"seq":9,"tenant_id":"x","inserted_at":"y","id":"z"}`, content(defaults), "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testAppendPrincipal
			b, err := decodeAppendBody([]byte(tt.body), &p)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got := contentJSON(b); got != tt.want {
				t.Fatalf("content\n got %s\nwant %s", got, tt.want)
			}
			expected := "-"
			if b.ExpectedSeq != nil {
				expected = strconv.FormatUint(*b.ExpectedSeq, 10)
			}
			if expected != tt.expected {
				t.Fatalf("expected_seq = %s, want %s", expected, tt.expected)
			}
		})
	}
}

func TestDecodeAppendBodyErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *apiError
	}{
		{"empty", ``, errInvalidEvent},
		{"whitespace", `  `, errInvalidEvent},
		{"malformed", `{"type":`, errInvalidEvent},
		{"array", `[]`, errInvalidEvent},
		{"null", `null`, errInvalidEvent},
		{"string", `"x"`, errInvalidEvent},
		{"empty object", `{}`, errInvalidEvent},
		{"NUL in payload", `{` + minimalAppend + `,"payload":{"a":"\u0000"}}`, errInvalidEvent},

		{"type missing", `{"payload":{},"producer_id":"w","producer_seq":1}`, errInvalidEvent},
		{"type empty", `{` + minimalAppend + `,"type":""}`, errInvalidEvent},
		{"type number", `{` + minimalAppend + `,"type":1}`, errInvalidEvent},
		{"payload missing", `{"type":"t","producer_id":"w","producer_seq":1}`, errInvalidEvent},
		{"payload array", `{` + minimalAppend + `,"payload":[]}`, errInvalidEvent},
		{"payload string", `{` + minimalAppend + `,"payload":"x"}`, errInvalidEvent},
		{"payload null", `{` + minimalAppend + `,"payload":null}`, errInvalidEvent},
		{"producer_id missing", `{"type":"t","payload":{},"producer_seq":1}`, errInvalidEvent},
		{"producer_seq missing", `{"type":"t","payload":{},"producer_id":"w"}`, errInvalidEvent},
		{"producer_id null", `{` + minimalAppend + `,"producer_id":null}`, errInvalidEvent},
		{"producer_id empty", `{` + minimalAppend + `,"producer_id":""}`, errInvalidEvent},
		{"producer_id number", `{` + minimalAppend + `,"producer_id":7}`, errInvalidEvent},

		{"producer_seq null", `{` + minimalAppend + `,"producer_seq":null}`, errInvalidEvent},
		{"producer_seq zero", `{` + minimalAppend + `,"producer_seq":0}`, errInvalidEvent},
		{"producer_seq zero string", `{` + minimalAppend + `,"producer_seq":"0"}`, errInvalidEvent},
		{"producer_seq negative", `{` + minimalAppend + `,"producer_seq":-1}`, errInvalidEvent},
		{"producer_seq negative string", `{` + minimalAppend + `,"producer_seq":"-1"}`, errInvalidEvent},
		{"producer_seq float", `{` + minimalAppend + `,"producer_seq":1.0}`, errInvalidEvent},
		{"producer_seq exponent", `{` + minimalAppend + `,"producer_seq":1e0}`, errInvalidEvent},
		{"producer_seq float string", `{` + minimalAppend + `,"producer_seq":"1.5"}`, errInvalidEvent},
		{"producer_seq word", `{` + minimalAppend + `,"producer_seq":"abc"}`, errInvalidEvent},
		{"producer_seq empty string", `{` + minimalAppend + `,"producer_seq":""}`, errInvalidEvent},
		{"producer_seq sign only", `{` + minimalAppend + `,"producer_seq":"+"}`, errInvalidEvent},
		{"producer_seq spaces", `{` + minimalAppend + `,"producer_seq":" 1"}`, errInvalidEvent},
		{"producer_seq trailing", `{` + minimalAppend + `,"producer_seq":"1x"}`, errInvalidEvent},
		{"producer_seq double sign", `{` + minimalAppend + `,"producer_seq":"++1"}`, errInvalidEvent},
		{"producer_seq bool", `{` + minimalAppend + `,"producer_seq":true}`, errInvalidEvent},
		{"producer_seq above int64", `{` + minimalAppend + `,"producer_seq":9223372036854775808}`, errInvalidEvent},
		{"producer_seq above int64 string", `{` + minimalAppend + `,"producer_seq":"9223372036854775808"}`, errInvalidEvent},
		{"producer_seq above uint64", `{` + minimalAppend + `,"producer_seq":18446744073709551616}`, errInvalidEvent},

		{"actor other", `{` + minimalAppend + `,"actor":"user:u-43"}`, errInvalidEvent},
		{"actor prefix", `{` + minimalAppend + `,"actor":"user:u-4"}`, errInvalidEvent},
		{"actor other type", `{` + minimalAppend + `,"actor":"agent:u-42"}`, errInvalidEvent},
		{"actor empty", `{` + minimalAppend + `,"actor":""}`, errInvalidEvent},
		{"actor number", `{` + minimalAppend + `,"actor":1}`, errInvalidEvent},
		{"source empty", `{` + minimalAppend + `,"source":""}`, errInvalidEvent},
		{"source number", `{` + minimalAppend + `,"source":1}`, errInvalidEvent},

		{"metadata array", `{` + minimalAppend + `,"metadata":[]}`, errInvalidMetadata},
		{"metadata string", `{` + minimalAppend + `,"metadata":"x"}`, errInvalidMetadata},
		{"metadata bool", `{` + minimalAppend + `,"metadata":false}`, errInvalidMetadata},

		{"refs array", `{` + minimalAppend + `,"refs":[]}`, errInvalidRefs},
		{"refs string", `{` + minimalAppend + `,"refs":"x"}`, errInvalidRefs},
		{"refs to_seq negative", `{` + minimalAppend + `,"refs":{"to_seq":-1}}`, errInvalidEvent},
		{"refs to_seq float", `{` + minimalAppend + `,"refs":{"to_seq":1.0}}`, errInvalidEvent},
		{"refs to_seq word", `{` + minimalAppend + `,"refs":{"to_seq":"abc"}}`, errInvalidEvent},
		{"refs to_seq object", `{` + minimalAppend + `,"refs":{"to_seq":{}}}`, errInvalidEvent},
		{"refs to_seq huge", `{` + minimalAppend + `,"refs":{"to_seq":99999999999999999999}}`, errInvalidEvent},
		{"refs step negative string", `{` + minimalAppend + `,"refs":{"step":"-2"}}`, errInvalidEvent},
		{"refs step float string", `{` + minimalAppend + `,"refs":{"step":"1.5"}}`, errInvalidEvent},
		{"refs request_id number", `{` + minimalAppend + `,"refs":{"request_id":1}}`, errInvalidEvent},
		{"refs sequence_id array", `{` + minimalAppend + `,"refs":{"sequence_id":[]}}`, errInvalidEvent},

		{"idempotency_key empty", `{` + minimalAppend + `,"idempotency_key":""}`, errInvalidEvent},
		{"idempotency_key number", `{` + minimalAppend + `,"idempotency_key":1}`, errInvalidEvent},
		{"expected_seq negative", `{` + minimalAppend + `,"expected_seq":-1}`, errInvalidEvent},
		{"expected_seq float", `{` + minimalAppend + `,"expected_seq":0.0}`, errInvalidEvent},
		{"expected_seq word", `{` + minimalAppend + `,"expected_seq":"x"}`, errInvalidEvent},
		{"expected_seq empty", `{` + minimalAppend + `,"expected_seq":""}`, errInvalidEvent},
		{"expected_seq huge", `{` + minimalAppend + `,"expected_seq":"9223372036854775808"}`, errInvalidEvent},
		{"expected_seq bool", `{` + minimalAppend + `,"expected_seq":false}`, errInvalidEvent},

		// First failure wins, in the order of docs/api.md#append.
		{"type before producer", `{"type":"","payload":{}}`, errInvalidEvent},
		{"payload before metadata", `{"type":"t","payload":1,"producer_id":"w","producer_seq":1,"metadata":1}`, errInvalidEvent},
		{"producer keys before metadata", `{"type":"t","payload":{},"producer_id":"w","metadata":1}`, errInvalidEvent},
		{"producer_seq before metadata", `{` + minimalAppend + `,"producer_seq":0,"metadata":1}`, errInvalidEvent},
		{"actor before metadata", `{` + minimalAppend + `,"actor":"x","metadata":1}`, errInvalidEvent},
		{"source before metadata", `{` + minimalAppend + `,"source":"","metadata":1}`, errInvalidEvent},
		{"metadata before refs", `{` + minimalAppend + `,"metadata":1,"refs":1}`, errInvalidMetadata},
		{"metadata before bad ref member", `{` + minimalAppend + `,"metadata":1,"refs":{"to_seq":-1}}`, errInvalidMetadata},
		{"metadata before idempotency_key", `{` + minimalAppend + `,"metadata":1,"idempotency_key":""}`, errInvalidMetadata},
		{"metadata before expected_seq", `{` + minimalAppend + `,"metadata":[],"expected_seq":-1}`, errInvalidMetadata},
		{"refs before idempotency_key", `{` + minimalAppend + `,"refs":1,"idempotency_key":""}`, errInvalidRefs},
		{"refs before expected_seq", `{` + minimalAppend + `,"refs":[],"expected_seq":"x"}`, errInvalidRefs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testAppendPrincipal
			b, err := decodeAppendBody([]byte(tt.body), &p)
			if err != tt.want {
				t.Fatalf("error = %v, want %v (content %s)", err, tt.want, contentJSON(b))
			}
		})
	}
}

func TestDecodeAppendBodyActor(t *testing.T) {
	tests := []struct {
		name  string
		p     Principal
		actor string // "" to omit
		ok    bool
	}{
		{"service derived", nonePrincipal, "", true},
		{"service given", nonePrincipal, "service:service", true},
		{"none mode other actor", nonePrincipal, "agent:drafter", false},
		{"id with colons", Principal{TenantID: "t", ID: "a:b:c", Type: "agent"}, "agent:a:b:c", true},
		{"id with colons split elsewhere", Principal{TenantID: "t", ID: "a:b:c", Type: "agent"}, "agent:a:b", false},
		{"case matters", Principal{TenantID: "t", ID: "X", Type: "user"}, "user:x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{` + minimalAppend
			if tt.actor != "" {
				body += `,"actor":"` + tt.actor + `"`
			}
			body += `}`
			b, err := decodeAppendBody([]byte(body), &tt.p)
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			if b.Content.Actor != tt.p.Actor() {
				t.Fatalf("actor = %q, want %q", b.Content.Actor, tt.p.Actor())
			}
			want := `{"starcite_principal":{"actor":` + strconv.Quote(tt.p.Actor()) + `,"principal_id":` + strconv.Quote(tt.p.ID) +
				`,"principal_type":` + strconv.Quote(tt.p.Type) + `,"tenant_id":` + strconv.Quote(tt.p.TenantID) + `}}`
			if string(b.Content.Metadata) != want {
				t.Fatalf("metadata = %s, want %s", b.Content.Metadata, want)
			}
		})
	}
}

// The decoded fields must not share writable memory: an append to one must
// never show up in another.
func TestDecodeAppendBodyFieldsIndependent(t *testing.T) {
	p := testAppendPrincipal
	b, err := decodeAppendBody([]byte(`{`+minimalAppend+`,"payload":{"a":1},"refs":{"to_seq":1}}`), &p)
	if err != nil {
		t.Fatal(err)
	}
	c := b.Content
	metadata, refs := string(c.Metadata), string(c.Refs)
	_ = append(c.Payload, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	_ = append(c.Metadata, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	if string(c.Metadata) != metadata || string(c.Refs) != refs {
		t.Fatal("appending to one field overwrote another")
	}
	b, err = decodeAppendBody([]byte(`{`+minimalAppend+`}`), &p)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(b.Content.Refs, '!')
	if string(emptyObject) != "{}" {
		t.Fatal("the shared empty object was written to")
	}
}

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"+7", 7, true},
		{"007", 7, true},
		{"-0", 0, true},
		{"-000", 0, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"000000000000000000000009223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"18446744073709551615", 0, false},
		{"99999999999999999999999", 0, false},
		{"", 0, false},
		{"+", 0, false},
		{"-", 0, false},
		{"-1", 0, false},
		{"+-1", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1_000", 0, false},
		{"0x10", 0, false},
		{"١", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDecimal(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseDecimal(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if gotB, okB := parseDecimal([]byte(tt.in)); gotB != got || okB != ok {
			t.Errorf("parseDecimal([]byte(%q)) differs from the string form", tt.in)
		}
	}
}

func BenchmarkDecodeAppendBody(b *testing.B) {
	body := []byte(`{"type":"state","payload":{"state":"running","n":` + strings.Repeat("1", 5) +
		`},"producer_id":"writer_123","producer_seq":8,"source":"agent","metadata":{"role":"worker"},` +
		`"refs":{"to_seq":41,"request_id":"req_123"},"idempotency_key":"run_123-step_8"}`)
	p := testAppendPrincipal
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeAppendBody(body, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFieldSizeLimits: each size limit of docs/api.md#limits accepts a
// value of exactly the limit and refuses one byte more, counted in bytes
// of UTF-8 (é is two), not characters.
func TestFieldSizeLimits(t *testing.T) {
	pad := func(n int) string { // n bytes, ending in a two-byte character when n >= 2
		if n < 2 {
			return strings.Repeat("a", n)
		}
		return strings.Repeat("a", n-2) + "é"
	}
	// metadataOf builds a metadata object whose canonical JSON is n bytes.
	metadataOf := func(n int) string {
		const frame = len(`{"k":""}`)
		return `{"k":"` + strings.Repeat("m", n-frame) + `"}`
	}
	p := testAppendPrincipal
	for _, tt := range []struct {
		name  string
		limit int
		ok    func(n int) bool
	}{
		{"title", fsm.MaxTitleBytes, func(n int) bool {
			b, err := decodeCreateBody([]byte(`{"title":"` + pad(n) + `"}`))
			return err == nil && !b.badTitle && len(*b.Title) == n
		}},
		{"session metadata", fsm.MaxMetadataBytes, func(n int) bool {
			b, err := decodeCreateBody([]byte(`{"metadata":` + metadataOf(n) + `}`))
			return err == nil && !b.badMetadata && len(b.Metadata) == n
		}},
		{"type", fsm.MaxTypeBytes, func(n int) bool {
			_, err := decodeAppendBody([]byte(`{`+minimalAppend+`,"type":"`+pad(n)+`"}`), &p)
			return err == nil
		}},
		{"producer_id", fsm.MaxProducerIDBytes, func(n int) bool {
			b, err := decodeAppendBody([]byte(`{`+minimalAppend+`,"producer_id":"`+pad(n)+`"}`), &p)
			return err == nil && len(b.Content.ProducerID) == n
		}},
	} {
		if !tt.ok(tt.limit) {
			t.Errorf("%s of %d bytes (the limit) refused", tt.name, tt.limit)
		}
		if tt.ok(tt.limit + 1) {
			t.Errorf("%s of %d bytes (one over) accepted", tt.name, tt.limit+1)
		}
	}
	// The refusals carry the documented codes.
	if b, _ := decodeCreateBody([]byte(`{"title":"` + pad(fsm.MaxTitleBytes+1) + `"}`)); !b.badTitle {
		t.Error("long title is not a bad title (400 invalid_event)")
	}
	if b, _ := decodeCreateBody([]byte(`{"metadata":` + metadataOf(fsm.MaxMetadataBytes+1) + `}`)); !b.badMetadata {
		t.Error("large metadata is not bad metadata (400 invalid_metadata)")
	}
	for _, body := range []string{`{` + minimalAppend + `,"type":"` + pad(fsm.MaxTypeBytes+1) + `"}`,
		`{` + minimalAppend + `,"producer_id":"` + pad(fsm.MaxProducerIDBytes+1) + `"}`} {
		if _, err := decodeAppendBody([]byte(body), &p); err != errInvalidEvent {
			t.Errorf("over-long field: %v, want invalid_event", err)
		}
	}
}
