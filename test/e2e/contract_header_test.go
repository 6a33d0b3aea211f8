package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestContractSessionHeader: the session header routes of
// docs/api.md#session-object against a real node: the one header shape of
// create, GET, PATCH, archive, unarchive and list items; PATCH's merge,
// versioning, compare-and-set and validation; archive flag semantics; the
// archived list filter; the append reply's cursors.
func TestContractSessionHeader(t *testing.T) {
	n := harness.StartNode(t, harness.Options{Env: map[string]string{"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "100"}})

	created := createOK(t, n, `{"id":"h1","title":"Draft","metadata":{"workflow":"contract","keep":{"a":1},"drop":1}}`)
	createdAt := wantTimestamp(t, "created_at", created["created_at"])
	wantJSON(t, "create", created, fmt.Sprintf(`{"id":"h1","title":"Draft","tenant_id":"service","creator_principal":%s,
		"metadata":{"drop":1,"keep":{"a":1},"workflow":"contract"},"created_at":%q,"updated_at":%q,"version":1,
		"archived":false,"last_seq":0}`, serviceCreator, createdAt, createdAt))

	patch := func(t *testing.T, id string, body any) resp {
		t.Helper()
		return do(t, n, "PATCH", "/v1/sessions/"+id, body, nil)
	}
	header := func(t *testing.T, r resp, status int, keys string) map[string]any {
		t.Helper()
		m := wantStatus(t, r, status)
		wantKeys(t, r.String(), m, keys)
		if m["created_at"] != createdAt && m["id"] == "h1" {
			t.Errorf("%s: created_at %v differs from the create's %s", r, m["created_at"], createdAt)
		}
		return m
	}

	t.Run("get", func(t *testing.T) {
		m := header(t, do(t, n, "GET", "/v1/sessions/h1", nil, nil), 200, sessionKeys)
		wantJSON(t, "get", m, fmt.Sprintf(`{"id":"h1","title":"Draft","tenant_id":"service","creator_principal":%s,
			"metadata":{"drop":1,"keep":{"a":1},"workflow":"contract"},"created_at":%q,"updated_at":%q,"version":1,
			"archived":false,"last_seq":0,"archived_seq":0}`, serviceCreator, createdAt, createdAt))
	})

	var lastUpdated string
	t.Run("patch", func(t *testing.T) {
		m := header(t, patch(t, "h1", `{"title":"Final","metadata":{"keep":{"b":2},"drop":null,"new":[1]},"expected_version":1}`), 200, patchKeys)
		wantJSON(t, "patch", m, fmt.Sprintf(`{"id":"h1","title":"Final","tenant_id":"service","creator_principal":%s,
			"metadata":{"drop":null,"keep":{"b":2},"new":[1],"workflow":"contract"},"created_at":%q,"updated_at":%q,
			"version":2,"archived":false,"last_seq":0}`, serviceCreator, createdAt, m["updated_at"]))
		lastUpdated = wantTimestamp(t, "updated_at", m["updated_at"])
		if lastUpdated <= createdAt {
			t.Errorf("updated_at %s not after created_at %s", lastUpdated, createdAt)
		}
		// The same values again still bump the version; a string
		// expected_version counts; a null title clears it.
		m = header(t, patch(t, "h1", `{"title":"Final","expected_version":"2"}`), 200, patchKeys)
		if num(t, "version", m["version"]) != 3 || m["title"] != "Final" || m["updated_at"].(string) <= lastUpdated {
			t.Errorf("repeat: %v", m)
		}
		m = header(t, patch(t, "h1", `{"title":null,"metadata":{}}`), 200, patchKeys)
		if num(t, "version", m["version"]) != 4 || m["title"] != nil {
			t.Errorf("null title: %v", m)
		}
		lastUpdated = m["updated_at"].(string)
		got := header(t, do(t, n, "GET", "/v1/sessions/h1", nil, nil), 200, sessionKeys)
		if got["updated_at"] != lastUpdated || num(t, "version", got["version"]) != 4 {
			t.Errorf("GET after PATCH: %v", got)
		}
	})

	t.Run("patch conflict", func(t *testing.T) {
		r := patch(t, "h1", `{"title":"late","expected_version":1}`)
		if r.status != 409 || string(r.body) != `{"error":"expected_version_conflict","message":"Expected version 1, current version is 4","current_version":4}` {
			t.Errorf("%s: want the 409 with current_version", r)
		}
		if got := getSession(t, n, "h1"); got["title"] != nil || num(t, "version", got["version"]) != 4 {
			t.Errorf("a refused PATCH changed the session: %v", got)
		}
	})

	t.Run("patch validation", func(t *testing.T) {
		for _, c := range []struct {
			body, code string
		}{
			{``, "invalid_session"},
			{`{}`, "invalid_session"},
			{`{"other":1}`, "invalid_session"},
			{`[]`, "invalid_session"},
			{`{"title":`, "invalid_session"},
			{`{"title":7}`, "invalid_session"},
			{`{"title":7,"metadata":[]}`, "invalid_session"},
			{`{"metadata":null}`, "invalid_metadata"},
			{`{"metadata":"x","expected_version":0}`, "invalid_metadata"},
			{`{"metadata":{}}`, "invalid_session"},
			{`{"title":"t","expected_version":0}`, "invalid_session"},
			{`{"title":"t","expected_version":-1}`, "invalid_session"},
			{`{"title":"t","expected_version":2.0}`, "invalid_session"},
			{`{"title":"t","expected_version":"x"}`, "invalid_session"},
			{`{"title":"` + strings.Repeat("t", 4097) + `"}`, "invalid_session"},
			{`{"metadata":{"big":"` + strings.Repeat("m", 64<<10) + `"}}`, "invalid_metadata"},
		} {
			msg := msgInvalidSession
			if c.code == "invalid_metadata" {
				msg = msgInvalidMetadata
			}
			wantErr(t, patch(t, "h1", c.body), 400, c.code, msg)
			// Validation comes before the lookup.
			wantErr(t, patch(t, "nope", c.body), 400, c.code, msg)
		}
		wantErr(t, do(t, n, "PATCH", "/v1/sessions/h1", `{"title":"t"}`, harness.Header{"Content-Type": "text/plain"}),
			415, "unsupported_media_type", "Unsupported media type")
		wantErr(t, patch(t, "nope", `{"title":"t"}`), 404, "session_not_found", msgSessionNotFound)
		// Merges that would grow metadata past 64 KiB are refused whole.
		for i := 0; i < 2; i++ {
			r := patch(t, "h1", fmt.Sprintf(`{"metadata":{"part%d":"%s"}}`, i, strings.Repeat("m", 40<<10)))
			if i == 0 {
				header(t, r, 200, patchKeys)
			} else {
				wantErr(t, r, 400, "invalid_metadata", msgInvalidMetadata)
			}
		}
		if got := getSession(t, n, "h1"); num(t, "version", got["version"]) != 5 {
			t.Errorf("version after the refused merge: %v", got["version"])
		}
	})

	t.Run("concurrent patches with one expected_version", func(t *testing.T) {
		createOK(t, n, `{"id":"race"}`)
		const writers = 12
		results := make([]resp, writers)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = do(t, n, "PATCH", "/v1/sessions/race", fmt.Sprintf(`{"title":"w%d","expected_version":1}`, i), nil)
			}()
		}
		wg.Wait()
		var winner string
		for i, r := range results {
			switch r.status {
			case 200:
				if winner != "" {
					t.Errorf("two PATCHes with expected_version 1 won: %s and w%d", winner, i)
				}
				winner = fmt.Sprintf("w%d", i)
			case 409:
				if string(r.body) != `{"error":"expected_version_conflict","message":"Expected version 1, current version is 2","current_version":2}` {
					t.Errorf("%s", r)
				}
			default:
				t.Errorf("%s: want 200 or 409", r)
			}
		}
		if got := getSession(t, n, "race"); winner == "" || got["title"] != winner || num(t, "version", got["version"]) != 2 {
			t.Errorf("winner %q, session %v", winner, got)
		}
	})

	t.Run("archive", func(t *testing.T) {
		createOK(t, n, `{"id":"h2","metadata":{"k":"v"}}`)
		before := getSession(t, n, "h2")
		m := header(t, do(t, n, "POST", "/v1/sessions/h2/archive", `{}`, nil), 200, listItemKeys)
		if m["archived"] != true || num(t, "version", m["version"]) != 1 || m["updated_at"].(string) <= before["updated_at"].(string) {
			t.Errorf("archive: %v (before %v)", m, before)
		}
		again := header(t, do(t, n, "POST", "/v1/sessions/h2/archive", nil, nil), 200, listItemKeys)
		if again["archived"] != true || again["updated_at"] != m["updated_at"] {
			t.Errorf("archive again changed updated_at: %v then %v", m, again)
		}
		// Archived sessions: readable, appendable, patchable, tailable.
		got := getSession(t, n, "h2")
		if got["archived"] != true {
			t.Errorf("GET of an archived session: %v", got)
		}
		wantAppend(t, appendReq(t, n, "h2", evBody(nil)), 1, 1, false)
		p := header(t, patch(t, "h2", `{"metadata":{"n":1}}`), 200, patchKeys)
		if p["archived"] != true || num(t, "version", p["version"]) != 2 || num(t, "last_seq", p["last_seq"]) != 1 {
			t.Errorf("PATCH of an archived session: %v", p)
		}
		if evs, err := n.Tail("h2", 0, 1).Collect(1, 1, 10*time.Second); err != nil || len(evs) != 1 {
			t.Errorf("tail of an archived session: %d events, %v", len(evs), err)
		}
		un := header(t, do(t, n, "POST", "/v1/sessions/h2/unarchive", `{"ignored":true}`, harness.Header{"Content-Type": "text/plain"}), 200, listItemKeys)
		if un["archived"] != false || un["updated_at"].(string) <= p["updated_at"].(string) || num(t, "version", un["version"]) != 2 {
			t.Errorf("unarchive: %v", un)
		}
		if r := do(t, n, "POST", "/v1/sessions/h2/unarchive", nil, nil); r.status != 200 || object(t, r)["updated_at"] != un["updated_at"] {
			t.Errorf("unarchive again: %s", r)
		}
		wantErr(t, do(t, n, "POST", "/v1/sessions/nope/archive", nil, nil), 404, "session_not_found", msgSessionNotFound)
		wantErr(t, do(t, n, "POST", "/v1/sessions/nope/unarchive", nil, nil), 404, "session_not_found", msgSessionNotFound)
	})

	t.Run("list filter", func(t *testing.T) {
		for _, id := range []string{"l-a", "l-b", "l-c"} {
			createOK(t, n, fmt.Sprintf(`{"id":%q,"metadata":{"grp":"lf"}}`, id))
		}
		do(t, n, "POST", "/v1/sessions/l-b/archive", nil, nil)
		for query, want := range map[string]string{
			"":                "l-a l-c",
			"&archived=false": "l-a l-c",
			"&archived=true":  "l-b",
			"&archived=all":   "l-a l-b l-c",
		} {
			r := do(t, n, "GET", "/v1/sessions?metadata.grp=lf"+query, nil, nil)
			m := wantStatus(t, r, 200)
			var ids []string
			for i, it := range m["sessions"].([]any) {
				item := it.(map[string]any)
				wantKeys(t, fmt.Sprintf("%s: item %d", r, i), item, listItemKeys)
				ids = append(ids, item["id"].(string))
				if (item["id"] == "l-b") != (item["archived"] == true) {
					t.Errorf("%s: item %v", r, item)
				}
			}
			if strings.Join(ids, " ") != want {
				t.Errorf("%s: sessions %v, want %s", r, ids, want)
			}
		}
		for _, q := range []string{"archived=", "archived=False", "archived=1", "archived=TRUE", "archived[]=true",
			"archived[x]=all", "cursor=a&archived=yes"} {
			wantErr(t, do(t, n, "GET", "/v1/sessions?"+q, nil, nil), 400, "invalid_list_query", "Invalid list query")
		}
		// Validation order: limit, cursor, archived, metadata filters.
		wantErr(t, do(t, n, "GET", "/v1/sessions?archived=x&limit=0", nil, nil), 400, "invalid_limit", msgInvalidLimit)
		wantErr(t, do(t, n, "GET", "/v1/sessions?archived=x&cursor=", nil, nil), 400, "invalid_cursor", msgInvalidCursor)
		wantErr(t, do(t, n, "GET", "/v1/sessions?metadata.k=%00&archived=x", nil, nil), 400, "invalid_list_query", "Invalid list query")
	})

	t.Run("append reply cursors", func(t *testing.T) {
		createOK(t, n, `{"id":"cur"}`)
		for seq := int64(1); seq <= 3; seq++ {
			r := appendReq(t, n, "cur", evBody(map[string]string{"producer_seq": fmt.Sprint(seq)}))
			wantAppend(t, r, seq, seq, false)
		}
		// Once the archive holds events, committed_cursor reports it.
		var archived int64
		n.WaitFor(30*time.Second, "events to be archived", func() bool {
			archived = num(t, "archived_seq", getSession(t, n, "cur")["archived_seq"])
			return archived == 3
		})
		r := appendReq(t, n, "cur", evBody(map[string]string{"producer_seq": "4"}))
		wantAppend(t, r, 4, 4, false)
		if c := num(t, "committed_cursor", object(t, r)["committed_cursor"]); c != 3 {
			t.Errorf("%s: committed_cursor %d, want the archived seq 3", r, c)
		}
		// A dedupe answers the original seq as its cursor.
		r = appendReq(t, n, "cur", evBody(map[string]string{"producer_seq": "4"}))
		wantAppend(t, r, 4, 4, true)
		// Events read back from the archive and the hot tier alike carry
		// cursor and no null source.
		evs, _, _ := eventsOf(t, n, "cur", "")
		if len(evs) != 4 {
			t.Fatalf("events: %d", len(evs))
		}
	})
}

// TestContractCORS: a real node answers browser preflights with 204 and
// marks every answer readable by any origin (docs/api.md#cors).
func TestContractCORS(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	r := do(t, n, "OPTIONS", "/v1/sessions/x", nil, harness.Header{"Origin": "https://app.example",
		"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,content-type"})
	if r.status != 204 || len(r.body) != 0 || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		r.header.Get("Access-Control-Allow-Methods") != "GET,POST,PUT,PATCH,DELETE,OPTIONS" ||
		r.header.Get("Access-Control-Allow-Headers") != "authorization,content-type" {
		t.Errorf("preflight: %s %v", r, r.header)
	}
	for _, r := range []resp{
		do(t, n, "POST", "/v1/sessions", `{"id":"c1"}`, harness.Header{"Origin": "https://app.example"}),
		do(t, n, "GET", "/v1/sessions/nope", nil, nil),
		do(t, n, "GET", "/v1/nowhere", nil, nil),
	} {
		if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Expose-Headers") != "*" ||
			r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: CORS headers %v", r, r.header)
		}
	}
}
