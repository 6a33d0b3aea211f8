package edge

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

var bodySeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `"x"`, `{"id":`, `{} {}`,
	`{"id":"ses-1","title":"Draft","metadata":{"b":1,"a":{"y":2.50}}}`,
	`{"id":"","title":1,"metadata":[]}`, `{"id":null,"title":null,"metadata":null}`,
	`{"id":"a","id":5}`, `{"id":"a\u0000"}`, "{\"id\":\"\xff\"}",
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1}`,
	`{"type":"t","payload":{"b":[1.50,-0],"a":"\u00e9"},"producer_id":"w","producer_seq":"+007","actor":"user:u-42",` +
		`"source":"s","metadata":{"z":1,"starcite_principal":{"x":1,"tenant_id":"evil"}},` +
		`"refs":{"to_seq":"5","step":0,"request_id":"r","sequence_id":null},"idempotency_key":"k","expected_seq":"-0"}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1,"metadata":{"starcite_principal":"x"}}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1.0}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":9223372036854775808}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1,"metadata":1,"refs":[]}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1,"refs":{"to_seq":-1}}`,
	`{"type":"t","payload":{},"producer_id":"w","producer_seq":1,"expected_seq":1e3}`,
	`{"type":"","payload":[],"producer_id":"","producer_seq":0}`,
}

func FuzzDecodeCreateBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeCreateBody(body)
		if len(bytes.Trim(body, " \t\r\n")) == 0 {
			if err != nil || b.ID != nil || b.Title != nil || string(b.Metadata) != "{}" || b.badID || b.badTitle || b.badMetadata {
				t.Fatalf("blank body %q decoded as %+v, %v", body, b, err)
			}
			return
		}
		if v, perr := jsonc.Parse(body); perr != nil || v.Kind != jsonc.Object {
			if err != errInvalidSession {
				t.Fatalf("non-object %q: error %v, want invalid_session", body, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("object %q refused: %v", body, err)
		}
		m := decodeStdObject(t, body)

		id, present := m["id"]
		s, isString := id.(string)
		switch {
		case !present || id == nil:
			if b.ID != nil || b.badID {
				t.Fatalf("absent id decoded as %v, bad=%v", b.ID, b.badID)
			}
		case isString && s != "":
			if b.ID == nil || *b.ID != s || b.badID {
				t.Fatalf("id %q decoded as %v, bad=%v", s, b.ID, b.badID)
			}
		default:
			if b.ID != nil || !b.badID {
				t.Fatalf("bad id %#v not flagged", id)
			}
		}

		title, present := m["title"]
		s, isString = title.(string)
		switch {
		case !present || title == nil:
			if b.Title != nil || b.badTitle {
				t.Fatalf("absent title decoded as %v, bad=%v", b.Title, b.badTitle)
			}
		case isString:
			if b.Title == nil || *b.Title != s || b.badTitle {
				t.Fatalf("title %q decoded as %v, bad=%v", s, b.Title, b.badTitle)
			}
		default:
			if b.Title != nil || !b.badTitle {
				t.Fatalf("bad title %#v not flagged", title)
			}
		}

		md, present := m["metadata"]
		obj, isObject := md.(map[string]any)
		switch {
		case !present || md == nil:
			if string(b.Metadata) != "{}" || b.badMetadata {
				t.Fatalf("absent metadata decoded as %s, bad=%v", b.Metadata, b.badMetadata)
			}
		case isObject:
			if want := canonicalOf(t, obj); string(b.Metadata) != want || b.badMetadata {
				t.Fatalf("metadata decoded as %s, want %s", b.Metadata, want)
			}
		default:
			if !b.badMetadata {
				t.Fatalf("bad metadata %#v not flagged", md)
			}
		}
	})
}

func FuzzDecodeAppendBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s), "acme", "u-42", "user")
	}
	f.Add([]byte(`{"type":"t","payload":{},"producer_id":"w","producer_seq":1,"actor":"agent:a:b"}`), "t", "a:b", "agent")
	f.Fuzz(func(t *testing.T, body []byte, tenant, id, typ string) {
		// Principals come from verified JSON claims: valid UTF-8, no NUL.
		for _, s := range []string{tenant, id, typ} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				return
			}
		}
		p := &Principal{TenantID: tenant, ID: id, Type: typ}
		b, err := decodeAppendBody(body, p)

		if v, perr := jsonc.Parse(body); perr != nil || v.Kind != jsonc.Object {
			if err != errInvalidEvent {
				t.Fatalf("non-object %q: error %v, want invalid_event", body, err)
			}
			return
		}
		m := decodeStdObject(t, body)
		if want := modelAppendError(m, p); err != want {
			t.Fatalf("decodeAppendBody(%q) error %v, model %v", body, err, want)
		}
		if err != nil {
			return
		}

		c := b.Content
		event := []byte("{" + string(c.AppendJSON(nil)) + "}")
		if !json.Valid(event) {
			t.Fatalf("content of %q is not valid JSON: %s", body, event)
		}
		if _, err := jsonc.Parse(event); err != nil {
			t.Fatalf("content of %q does not read back: %v", body, err)
		}
		h := c.Hash()
		again, err := decodeAppendBody(body, p)
		if err != nil || again.Content.Hash() != h || c.Hash() != h {
			t.Fatalf("hash of %q is not deterministic", body)
		}

		if c.Type != m["type"] || c.ProducerID != m["producer_id"] || c.Actor != p.Actor() {
			t.Fatalf("type/producer_id/actor of %q decoded as %q/%q/%q", body, c.Type, c.ProducerID, c.Actor)
		}
		if n, _ := modelJSONInt(m["producer_seq"], 1); uint64(n) != c.ProducerSeq {
			t.Fatalf("producer_seq %v decoded as %d", m["producer_seq"], c.ProducerSeq)
		}
		if !sameOptionalString(c.Source, m["source"]) || !sameOptionalString(c.IdempotencyKey, m["idempotency_key"]) {
			t.Fatalf("source/idempotency_key of %q decoded as %v/%v", body, c.Source, c.IdempotencyKey)
		}
		if ev, ok := m["expected_seq"]; ok && ev != nil {
			n, _ := modelJSONInt(ev, 0)
			if b.ExpectedSeq == nil || *b.ExpectedSeq != uint64(n) {
				t.Fatalf("expected_seq %v decoded as %v", ev, b.ExpectedSeq)
			}
		} else if b.ExpectedSeq != nil {
			t.Fatalf("absent expected_seq decoded as %d", *b.ExpectedSeq)
		}

		if want := canonicalOf(t, m["payload"]); string(c.Payload) != want {
			t.Fatalf("payload %s, want %s", c.Payload, want)
		}
		refs, _ := m["refs"].(map[string]any)
		if refs == nil {
			refs = map[string]any{}
		}
		if want := canonicalOf(t, refs); string(c.Refs) != want {
			t.Fatalf("refs %s, want %s", c.Refs, want)
		}
		if want := canonicalOf(t, modelMetadata(m["metadata"], p)); string(c.Metadata) != want {
			t.Fatalf("metadata %s, want %s", c.Metadata, want)
		}
	})
}

// The query targets check both the raw string and the query shapedQuery
// builds from the second input, against the model of query_test.go.
func FuzzParseListQuery(f *testing.F) {
	for i, s := range querySeeds {
		f.Add(s, []byte{byte(i), byte(3 * i), byte(7 * i), byte(11 * i)})
	}
	f.Fuzz(func(t *testing.T, raw string, shape []byte) {
		checkListQuery(t, raw)
		checkListQuery(t, shapedQuery(shape))
	})
}

func FuzzParseTailQuery(f *testing.F) {
	for i, s := range querySeeds {
		f.Add(s, []byte{byte(i), byte(5 * i), byte(13 * i), byte(2 * i)})
	}
	f.Fuzz(func(t *testing.T, raw string, shape []byte) {
		checkSeqQueries(t, raw)
		checkSeqQueries(t, shapedQuery(shape))
	})
}

// FuzzRedactQuery checks that no access_token value survives redaction,
// that every other pair is kept byte for byte, and queryValue against the
// flat decoding upstream takes the token from.
func FuzzRedactQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	for _, s := range []string{
		"access_token=abc", "access_token=%ZZ&x=1", "access%5Ftoken=a", "access_token[]=a", "&access_token&access_token=",
		"access_token=%41+&access_token=b", "x=access_token=y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := string(redactQuery([]byte(raw)))
		in, got := strings.Split(raw, "&"), strings.Split(out, "&")
		if len(in) != len(got) {
			t.Fatalf("redactQuery(%q) = %q changed the pairs", raw, out)
		}
		want, wantPresent := "", false
		for i := range in {
			k, _, hasValue := strings.Cut(in[i], "=")
			key := modelUnescape(k)
			isToken := key == "access_token" || strings.HasPrefix(key, "access_token[") && strings.HasSuffix(key, "]")
			switch {
			case isToken && hasValue:
				if got[i] != k+"="+redacted {
					t.Fatalf("redactQuery(%q) = %q left a token in pair %d", raw, out, i)
				}
			case got[i] != in[i]:
				t.Fatalf("redactQuery(%q) = %q changed pair %d", raw, out, i)
			}
			if in[i] != "" && key == "access_token" {
				_, v, _ := strings.Cut(in[i], "=")
				want, wantPresent = modelUnescape(v), true
			}
		}
		if v, present := queryValue([]byte(raw), "access_token"); v != want || present != wantPresent {
			t.Fatalf("queryValue(%q) = %q, %v; want %q, %v", raw, v, present, want, wantPresent)
		}
	})
}

// decodeStdObject decodes a body jsonc accepted with encoding/json, the
// independent reading the fuzz targets compare against.
func decodeStdObject(t *testing.T, body []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("encoding/json cannot decode %q: %v", body, err)
	}
	return m
}

func canonicalOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jsonc.Canonical(b)
	if err != nil {
		t.Fatalf("canonical of %s: %v", b, err)
	}
	return string(c)
}

func sameOptionalString(got *string, want any) bool {
	if want == nil {
		return got == nil
	}
	return got != nil && *got == want
}

// modelJSONInt reads an integer of at least lo and at most 2^63-1 given as
// a JSON integer or a string Integer.parse reads whole.
func modelJSONInt(v any, lo int64) (int64, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return 0, false
		}
		s = string(v)
	case string:
		s = v
	default:
		return 0, false
	}
	return modelInteger(s, lo, math.MaxInt64)
}

// modelAppendError is upstream's append validation (docs/api.md#append)
// over a plain decoding of the body.
func modelAppendError(m map[string]any, p *Principal) *apiError {
	typ, _ := m["type"].(string)
	if _, ok := m["payload"].(map[string]any); !ok || typ == "" {
		return errInvalidEvent
	}
	_, hasID := m["producer_id"]
	_, hasSeq := m["producer_seq"]
	if !hasID || !hasSeq {
		return errInvalidEvent
	}
	if id, _ := m["producer_id"].(string); id == "" {
		return errInvalidEvent
	}
	if _, ok := modelJSONInt(m["producer_seq"], 1); !ok {
		return errInvalidEvent
	}
	if a, ok := m["actor"]; ok && a != nil && a != p.Actor() {
		return errInvalidEvent
	}
	if s, ok := m["source"]; ok && s != nil && (s == "" || !isJSONString(s)) {
		return errInvalidEvent
	}
	if md, ok := m["metadata"]; ok && md != nil && !isJSONObject(md) {
		return errInvalidMetadata
	}
	if r, ok := m["refs"]; ok && r != nil {
		refs, ok := r.(map[string]any)
		if !ok {
			return errInvalidRefs
		}
		for _, k := range []string{"to_seq", "step"} {
			if v := refs[k]; v != nil {
				if _, ok := modelJSONInt(v, 0); !ok {
					return errInvalidEvent
				}
			}
		}
		for _, k := range []string{"request_id", "sequence_id"} {
			if v := refs[k]; v != nil && !isJSONString(v) {
				return errInvalidEvent
			}
		}
	}
	if k, ok := m["idempotency_key"]; ok && k != nil && (k == "" || !isJSONString(k)) {
		return errInvalidEvent
	}
	if e, ok := m["expected_seq"]; ok && e != nil {
		if _, ok := modelJSONInt(e, 0); !ok {
			return errInvalidEvent
		}
	}
	return nil
}

func isJSONString(v any) bool { _, ok := v.(string); return ok }
func isJSONObject(v any) bool { _, ok := v.(map[string]any); return ok }

// modelMetadata injects starcite_principal the plain way.
func modelMetadata(md any, p *Principal) map[string]any {
	out := map[string]any{}
	if m, ok := md.(map[string]any); ok {
		for k, v := range m {
			out[k] = v
		}
	}
	sp := map[string]any{}
	if m, ok := out[principalKey].(map[string]any); ok {
		for k, v := range m {
			sp[k] = v
		}
	}
	sp["tenant_id"], sp["actor"], sp["principal_type"], sp["principal_id"] = p.TenantID, p.Actor(), p.Type, p.ID
	out[principalKey] = sp
	return out
}

// FuzzDecodePatchBody: any body decodes to one of the two documented
// errors or to an update that changes something, with canonical metadata
// within the limit and an expected version of at least 1.
func FuzzDecodePatchBody(f *testing.F) {
	for _, s := range append(bodySeeds, `{"title":null}`, `{"metadata":{"a":1},"expected_version":"2"}`, `{"metadata":{}}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodePatchBody(body)
		switch {
		case err == errInvalidSession || err == errInvalidMetadata:
			return
		case err != nil:
			t.Fatalf("%q: undocumented error %v", body, err)
		}
		if !b.setTitle && b.metadata == nil {
			t.Fatalf("%q: an update that changes nothing", body)
		}
		if b.metadata != nil {
			c, perr := jsonc.Canonical(b.metadata)
			if perr != nil || !bytes.Equal(c, b.metadata) || b.metadata[0] != '{' || len(b.metadata) > fsm.MaxMetadataBytes {
				t.Fatalf("%q: metadata %s", body, b.metadata)
			}
		}
		if b.expectedVersion != nil && *b.expectedVersion == 0 {
			t.Fatalf("%q: expected version 0", body)
		}
	})
}
