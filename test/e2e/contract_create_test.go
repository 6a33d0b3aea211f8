package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"starcite/test/harness"
)

// TestContractCreate: POST /v1/sessions in none mode (docs/api.md#create,
// docs/decisions.md#d1, docs/decisions.md#d2).
func TestContractCreate(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})

	// checkCreated asserts a 201 body and the stored session behind it:
	// exactly the 7 keys, no tenant_id, the none-mode creator, last_seq 0,
	// microsecond timestamps with updated_at == created_at.
	checkCreated := func(t *testing.T, m map[string]any, wantID, wantTitle, wantMeta string) string {
		t.Helper()
		id, _ := m["id"].(string)
		switch {
		case wantID == "" && !generatedIDRe.MatchString(id):
			t.Errorf("generated id %#v does not match %s", m["id"], generatedIDRe)
		case wantID != "" && id != wantID:
			t.Errorf("id %#v, want %q", m["id"], wantID)
		}
		wantJSON(t, "title", m["title"], wantTitle)
		wantJSON(t, "creator_principal", m["creator_principal"], serviceCreator)
		wantJSON(t, "metadata", m["metadata"], wantMeta)
		wantJSON(t, "last_seq", m["last_seq"], `0`)
		created := wantTimestamp(t, "created_at", m["created_at"])
		if m["updated_at"] != m["created_at"] {
			t.Errorf("updated_at %#v != created_at %#v", m["updated_at"], m["created_at"])
		}
		if id == "" {
			return id
		}
		s := getSession(t, n, id)
		wantJSON(t, "stored id", s["id"], fmt.Sprintf("%q", id))
		wantJSON(t, "stored title", s["title"], wantTitle)
		wantJSON(t, "stored tenant_id", s["tenant_id"], `"service"`)
		wantJSON(t, "stored creator_principal", s["creator_principal"], serviceCreator)
		wantJSON(t, "stored metadata", s["metadata"], wantMeta)
		if s["created_at"] != created {
			t.Errorf("stored created_at %#v, create said %q", s["created_at"], created)
		}
		wantJSON(t, "stored last_seq", s["last_seq"], `0`)
		wantJSON(t, "stored archived_seq", s["archived_seq"], `0`)
		return id
	}
	absent := func(t *testing.T, id string) {
		t.Helper()
		wantErr(t, do(t, n, "GET", "/v1/sessions/"+pathEscape(id), nil, nil), 404, "session_not_found", msgSessionNotFound)
	}

	t.Run("fields", func(t *testing.T) {
		for _, c := range []struct {
			name, body, id, title, meta string
		}{
			{"id given", `{"id":"c-given"}`, "c-given", `null`, `{}`},
			{"id absent", `{}`, "", `null`, `{}`},
			{"id null", `{"id":null}`, "", `null`, `{}`},
			{"id with any characters", `{"id":"c sp/ace?é#%\t\"x"}`, "c sp/ace?é#%\t\"x", `null`, `{}`},
			{"title string", `{"id":"c-title","title":"Draft"}`, "c-title", `"Draft"`, `{}`},
			{"title empty string", `{"id":"c-title-empty","title":""}`, "c-title-empty", `""`, `{}`},
			{"title null", `{"id":"c-title-null","title":null}`, "c-title-null", `null`, `{}`},
			{"title absent", `{"id":"c-title-absent"}`, "c-title-absent", `null`, `{}`},
			{"metadata object stored verbatim", `{"id":"c-meta","metadata":{"workflow":"legal","n":1,"f":2.5,"b":true,"z":null,"deep":{"l":[1,"x",{"y":[]}]},"starcite_principal":"client"}}`,
				"c-meta", `null`, `{"workflow":"legal","n":1,"f":2.5,"b":true,"z":null,"deep":{"l":[1,"x",{"y":[]}]},"starcite_principal":"client"}`},
			{"metadata empty object", `{"id":"c-meta-empty","metadata":{}}`, "c-meta-empty", `null`, `{}`},
			{"metadata null", `{"id":"c-meta-null","metadata":null}`, "c-meta-null", `null`, `{}`},
			{"metadata tenant_id is not enforced", `{"id":"c-meta-tenant","metadata":{"tenant_id":"acme"}}`, "c-meta-tenant", `null`, `{"tenant_id":"acme"}`},
			{"all fields", `{"id":"c-all","title":"T","metadata":{"a":"b"}}`, "c-all", `"T"`, `{"a":"b"}`},
			{"id of one space", `{"id":" "}`, " ", `null`, `{}`},
			{"surrounding whitespace", " \r\n\t{ \"id\" : \"c-ws\" , \"title\" : \"\\u00e9\" }\n ", "c-ws", `"é"`, `{}`},
			{"numbers keep their nature", `{"id":"c-nums","metadata":{"i":1,"f":1.0,"e":1e2,"big":123456789012345678901234567890,"neg":-0.5,"z":0}}`,
				"c-nums", `null`, `{"i":1,"f":1.0,"e":100.0,"big":123456789012345678901234567890,"neg":-0.5,"z":0}`},
			{"unknown fields ignored", `{"id":"c-unknown","tenant_id":"evil","creator_principal":{"tenant_id":"evil","id":"x","type":"user"},"last_seq":5,"created_at":"2000-01-01T00:00:00.000000Z","updated_at":"x","archived_seq":3}`,
				"c-unknown", `null`, `{}`},
		} {
			t.Run(c.name, func(t *testing.T) {
				checkCreated(t, createOK(t, n, c.body), c.id, c.title, c.meta)
			})
		}
	})

	t.Run("generated ids are distinct", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 20; i++ {
			id := checkCreated(t, createOK(t, n, `{"title":"gen"}`), "", `"gen"`, `{}`)
			if seen[id] {
				t.Fatalf("generated id %s twice", id)
			}
			seen[id] = true
		}
	})

	t.Run("empty body generates an id", func(t *testing.T) {
		checkCreated(t, createOK(t, n, ``), "", `null`, `{}`)
		// No body and no Content-Type at all.
		r := do(t, n, "POST", "/v1/sessions", nil, nil)
		m := wantStatus(t, r, 201)
		wantKeys(t, r.String(), m, createKeys)
		checkCreated(t, m, "", `null`, `{}`)
	})

	t.Run("invalid fields", func(t *testing.T) {
		for _, c := range []struct {
			body, code, msg, id string // id: a session that must not exist afterwards
		}{
			{`{"id":1}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":1.5}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":""}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":{}}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":{"id":"x"}}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":[]}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":["c-arr"]}`, "invalid_event", msgInvalidEvent, "c-arr"},
			{`{"id":true}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":false}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":"c-bad-title-num","title":1}`, "invalid_event", msgInvalidEvent, "c-bad-title-num"},
			{`{"id":"c-bad-title-obj","title":{}}`, "invalid_event", msgInvalidEvent, "c-bad-title-obj"},
			{`{"id":"c-bad-title-arr","title":["x"]}`, "invalid_event", msgInvalidEvent, "c-bad-title-arr"},
			{`{"id":"c-bad-title-bool","title":false}`, "invalid_event", msgInvalidEvent, "c-bad-title-bool"},
			{`{"id":"c-bad-meta-str","metadata":"x"}`, "invalid_metadata", msgInvalidMetadata, "c-bad-meta-str"},
			{`{"id":"c-bad-meta-arr","metadata":[]}`, "invalid_metadata", msgInvalidMetadata, "c-bad-meta-arr"},
			{`{"id":"c-bad-meta-arr2","metadata":[{"a":1}]}`, "invalid_metadata", msgInvalidMetadata, "c-bad-meta-arr2"},
			{`{"id":"c-bad-meta-num","metadata":1}`, "invalid_metadata", msgInvalidMetadata, "c-bad-meta-num"},
			{`{"id":"c-bad-meta-bool","metadata":true}`, "invalid_metadata", msgInvalidMetadata, "c-bad-meta-bool"},
			{`{"title":7}`, "invalid_event", msgInvalidEvent, ""},
			{`{"metadata":"x"}`, "invalid_metadata", msgInvalidMetadata, ""},
			// Check order (docs/api.md#create): id, then title, then
			// metadata.
			{`{"id":1,"title":1,"metadata":"x"}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":"","metadata":"x"}`, "invalid_event", msgInvalidEvent, ""},
			{`{"metadata":[],"id":false}`, "invalid_event", msgInvalidEvent, ""},
			{`{"id":"c-order-title","title":{},"metadata":"x"}`, "invalid_event", msgInvalidEvent, "c-order-title"},
			{`{"metadata":1,"title":2}`, "invalid_event", msgInvalidEvent, ""},
		} {
			t.Run(c.body, func(t *testing.T) {
				wantErr(t, do(t, n, "POST", "/v1/sessions", c.body, nil), 400, c.code, c.msg)
				if c.id != "" {
					absent(t, c.id)
				}
			})
		}
	})

	t.Run("malformed or non-object JSON", func(t *testing.T) {
		for _, body := range []string{
			`{`, `}`, `{"id":}`, `{"id":"c-mal-1",}`, `{"id":"c-mal-2"} x`, `{"id":"c-mal-3"}{}`, `{'id':'c-mal-4'}`,
			`{"id":"c-mal-5"`, `nul`, `tru`, `{"id":"c-mal-6","title":"unterminated}`, `{id:"c-mal-7"}`,
			`[]`, `[{"id":"c-mal-8"}]`, `"c-mal-9"`, `""`, `1`, `0`, `-1.5`, `null`, `true`, `false`,
		} {
			t.Run(body, func(t *testing.T) {
				wantErr(t, do(t, n, "POST", "/v1/sessions", body, nil), 400, "invalid_session", msgInvalidSession)
			})
		}
		for i := 1; i <= 9; i++ {
			absent(t, fmt.Sprintf("c-mal-%d", i))
		}
	})

	t.Run("duplicate id", func(t *testing.T) {
		orig := createOK(t, n, `{"id":"c-dup","title":"orig","metadata":{"v":1}}`)
		for _, body := range []string{
			`{"id":"c-dup"}`,
			`{"id":"c-dup","title":"new","metadata":{"v":2}}`,
			`{"id":"c-dup","title":null,"metadata":null}`,
		} {
			wantErr(t, do(t, n, "POST", "/v1/sessions", body, nil), 409, "session_exists", msgSessionExists)
		}
		s := getSession(t, n, "c-dup")
		wantJSON(t, "title", s["title"], `"orig"`)
		wantJSON(t, "metadata", s["metadata"], `{"v":1}`)
		if s["created_at"] != orig["created_at"] {
			t.Errorf("created_at changed: %v -> %v", orig["created_at"], s["created_at"])
		}
	})

	t.Run("content type", func(t *testing.T) {
		// JSON for application/json, application/*+json and no Content-Type
		// at all (docs/decisions.md#d1); a JSON body is really read (id and
		// title).
		for i, ct := range []string{
			"application/json",
			"application/json; charset=utf-8",
			"application/json;charset=UTF-8",
			"application/vnd.api+json",
			"application/vnd.api+json; charset=utf-8",
			"application/merge-patch+json",
			"application/json ; charset=utf-8",
			"APPLICATION/JSON",
			"",
		} {
			t.Run("accepted "+ct, func(t *testing.T) {
				id := fmt.Sprintf("c-ct-ok-%d", i)
				r := do(t, n, "POST", "/v1/sessions", fmt.Sprintf(`{"id":%q,"title":"ct","metadata":{"i":%d}}`, id, i),
					harness.Header{"Content-Type": ct})
				m := wantStatus(t, r, 201)
				wantKeys(t, r.String(), m, createKeys)
				checkCreated(t, m, id, `"ct"`, fmt.Sprintf(`{"i":%d}`, i))
			})
		}
		for i, ct := range []string{
			"text/plain",
			"text/plain; charset=utf-8",
			"application/x-www-form-urlencoded",
			"multipart/form-data",
			"multipart/form-data; boundary=xyz",
			"text/json",
			"application/xml",
			"application/octet-stream",
		} {
			t.Run("refused "+ct, func(t *testing.T) {
				id := fmt.Sprintf("c-ct-bad-%d", i)
				r := do(t, n, "POST", "/v1/sessions", fmt.Sprintf(`{"id":%q}`, id), harness.Header{"Content-Type": ct})
				wantErr(t, r, 415, "unsupported_media_type", anyMessage)
				absent(t, id)
			})
		}
		t.Run("refused form body", func(t *testing.T) {
			r := do(t, n, "POST", "/v1/sessions", "id=c-form&title=x",
				harness.Header{"Content-Type": "application/x-www-form-urlencoded"})
			wantErr(t, r, 415, "unsupported_media_type", anyMessage)
			absent(t, "c-form")
		})
		t.Run("refused well-formed multipart body", func(t *testing.T) {
			body := "--xyz\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nc-multipart\r\n--xyz--\r\n"
			r := do(t, n, "POST", "/v1/sessions", body, harness.Header{"Content-Type": "multipart/form-data; boundary=xyz"})
			wantErr(t, r, 415, "unsupported_media_type", anyMessage)
			absent(t, "c-multipart")
		})
		t.Run("no query-string fallback", func(t *testing.T) {
			// Body fields are never read from the query string
			// (docs/decisions.md#d1).
			r := do(t, n, "POST", "/v1/sessions?id=c-query&title=q", `{}`, nil)
			m := wantStatus(t, r, 201)
			wantKeys(t, r.String(), m, createKeys)
			checkCreated(t, m, "", `null`, `{}`)
			absent(t, "c-query")
		})
		t.Run("_method ignored", func(t *testing.T) {
			r := do(t, n, "POST", "/v1/sessions", `{"id":"c-method","_method":"DELETE"}`, nil)
			m := wantStatus(t, r, 201)
			checkCreated(t, m, "c-method", `null`, `{}`)
		})
		t.Run("Accept ignored", func(t *testing.T) {
			r := do(t, n, "POST", "/v1/sessions", `{"id":"c-accept"}`, harness.Header{"Accept": "text/html"})
			m := wantStatus(t, r, 201)
			checkCreated(t, m, "c-accept", `null`, `{}`)
		})
	})

	t.Run("body size", func(t *testing.T) {
		// body builds a create body of exactly size bytes, padded with a
		// field the API ignores (the title is limited to 4 KiB).
		body := func(id string, size int) string {
			head := fmt.Sprintf(`{"id":%q,"padding":"`, id)
			return head + strings.Repeat("x", size-len(head)-2) + `"}`
		}
		for _, size := range []int{maxBody + 1, maxBody + 1000, 3 * maxBody} {
			t.Run(fmt.Sprintf("%d bytes is 413", size), func(t *testing.T) {
				id := fmt.Sprintf("c-too-big-%d", size)
				b := body(id, size)
				if len(b) != size {
					t.Fatalf("body is %d bytes", len(b))
				}
				wantErr(t, rawPost(t, n, "/v1/sessions", "application/json", []byte(b)), 413, "payload_too_large", anyMessage)
				absent(t, id)
			})
		}
		t.Run("413 reaches an ordinary HTTP client", func(t *testing.T) {
			// The 413 must be readable by a client that is still sending its
			// body (RFC 9112 §9.6): Go's net/http client, 20 times.
			b := body("c-too-big-client", maxBody+1)
			for i := 0; i < 20; i++ {
				r, err := tryDo(n, "POST", "/v1/sessions", b, nil)
				if err != nil {
					t.Fatalf("attempt %d: no response, the connection failed instead: %v", i+1, err)
				}
				wantErr(t, r, 413, "payload_too_large", anyMessage)
			}
			absent(t, "c-too-big-client")
		})
		t.Run("8000000 bytes is accepted", func(t *testing.T) {
			b := body("c-max", maxBody)
			if len(b) != maxBody {
				t.Fatalf("body is %d bytes", len(b))
			}
			r := do(t, n, "POST", "/v1/sessions", b, nil)
			checkCreated(t, wantStatus(t, r, 201), "c-max", `null`, `{}`)
			getSession(t, n, "c-max")
		})
		t.Run("node still serves", func(t *testing.T) {
			checkCreated(t, createOK(t, n, `{"id":"c-after-big"}`), "c-after-big", `null`, `{}`)
		})
	})

	t.Run("field size limits", func(t *testing.T) {
		// docs/api.md#limits: the limit is accepted, one byte more is
		// not (bytes of UTF-8: é counts two).
		pad := func(n int) string { return strings.Repeat("a", n-2) + "é" }
		meta := func(n int) string { return `{"k":"` + strings.Repeat("m", n-len(`{"k":""}`)) + `"}` }
		m := wantStatus(t, do(t, n, "POST", "/v1/sessions", `{"id":"c-title-max","title":"`+pad(4096)+`"}`, nil), 201)
		if m["title"] != pad(4096) {
			t.Errorf("title of 4096 bytes not stored as sent")
		}
		wantErr(t, do(t, n, "POST", "/v1/sessions", `{"id":"c-title-over","title":"`+pad(4097)+`"}`, nil),
			400, "invalid_event", msgInvalidEvent)
		absent(t, "c-title-over")
		checkCreated(t, wantStatus(t, do(t, n, "POST", "/v1/sessions", `{"id":"c-meta-max","metadata":`+meta(65536)+`}`, nil), 201),
			"c-meta-max", `null`, meta(65536))
		wantErr(t, do(t, n, "POST", "/v1/sessions", `{"id":"c-meta-over","metadata":`+meta(65537)+`}`, nil),
			400, "invalid_metadata", msgInvalidMetadata)
		absent(t, "c-meta-over")
		// The canonical form counts: whitespace and key order do not.
		spaced := strings.Replace(meta(65536), `{"k":`, `{ "k" : `, 1)
		wantStatus(t, do(t, n, "POST", "/v1/sessions", `{"id":"c-meta-spaced","metadata":`+spaced+`}`, nil), 201)
	})

	t.Run("concurrent creates of one id", func(t *testing.T) {
		// Decided by consensus: exactly one wins, the others get 409.
		const k = 20
		results := make(chan resp, k)
		var wg sync.WaitGroup
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := tryDo(n, "POST", "/v1/sessions", fmt.Sprintf(`{"id":"c-race","title":"t%d"}`, i), nil)
				if err != nil {
					t.Error(err)
					return
				}
				results <- r
			}()
		}
		wg.Wait()
		close(results)
		won := 0
		var title any
		for r := range results {
			if r.status == 201 {
				won++
				title = object(t, r)["title"]
				continue
			}
			wantErr(t, r, 409, "session_exists", msgSessionExists)
		}
		if won != 1 {
			t.Fatalf("%d creates of c-race succeeded, want exactly 1", won)
		}
		if s := getSession(t, n, "c-race"); s["title"] != title {
			t.Errorf("stored title %v, the winner was %v", s["title"], title)
		}
	})

	t.Run("chunked bodies", func(t *testing.T) {
		r := rawChunked(t, n, "/v1/sessions", []byte(`{"id":"c-chunked","title":"ch"}`))
		m := wantStatus(t, r, 201)
		checkCreated(t, m, "c-chunked", `"ch"`, `{}`)
		head := `{"id":"c-chunked-big","padding":"`
		b := head + strings.Repeat("x", maxBody+1-len(head)-2) + `"}`
		wantErr(t, rawChunked(t, n, "/v1/sessions", []byte(b)), 413, "payload_too_large", anyMessage)
		absent(t, "c-chunked-big")
		head = `{"id":"c-chunked-max","padding":"`
		b = head + strings.Repeat("x", maxBody-len(head)-2) + `"}`
		wantKeys(t, "create", wantStatus(t, rawChunked(t, n, "/v1/sessions", []byte(b)), 201), createKeys)
	})

	t.Run("create never injects into metadata", func(t *testing.T) {
		// starcite_principal is injected on append, never on create
		// (docs/api.md#append).
		checkCreated(t, createOK(t, n, `{"id":"c-no-inject","metadata":{"k":"v"}}`), "c-no-inject", `null`, `{"k":"v"}`)
	})
}
