package e2e

import (
	"fmt"
	"testing"

	"starcite/test/harness"
)

// TestContractReadRoutes: GET /v1/sessions/{id} and GET
// /v1/sessions/{id}/events in none mode (docs/api.md#read-events,
// docs/decisions.md#d8).
func TestContractReadRoutes(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	created := createOK(t, n, `{"id":"r250","title":"reads","metadata":{"k":"v"}}`)
	createOK(t, n, `{"id":"empty"}`)
	const total = 250
	for i := 1; i <= total; i++ {
		body := fmt.Sprintf(`{"type":"t%d","payload":{"i":%d},"producer_id":"p","producer_seq":%d}`, i%3, i, i)
		if i == 7 {
			body = `{"type":"t1","payload":{"i":7},"producer_id":"p","producer_seq":7,"source":"agent","idempotency_key":"ik-7",` +
				`"refs":{"to_seq":"6","request_id":"req"},"metadata":{"role":"w"}}`
		}
		wantAppend(t, appendReq(t, n, "r250", body), int64(i), int64(i), false)
	}

	t.Run("session", func(t *testing.T) {
		s := getSession(t, n, "r250")
		wantJSON(t, "session", s, fmt.Sprintf(`{"id":"r250","title":"reads","tenant_id":"service","creator_principal":%s,
			"metadata":{"k":"v"},"created_at":%q,"updated_at":%q,"version":1,"archived":false,"last_seq":%d,"archived_seq":%s}`,
			serviceCreator, created["created_at"], created["created_at"], total, s["archived_seq"]))
		wantTimestamp(t, "created_at", s["created_at"])
		if a := num(t, "archived_seq", s["archived_seq"]); a < 0 || a > total {
			t.Errorf("archived_seq %d outside 0..%d", a, total)
		}
		e := getSession(t, n, "empty")
		wantJSON(t, "last_seq", e["last_seq"], `0`)
		wantJSON(t, "archived_seq", e["archived_seq"], `0`)
		wantJSON(t, "title", e["title"], `null`)
		wantJSON(t, "metadata", e["metadata"], `{}`)
		// Deduped appends do not move last_seq.
		wantAppend(t, appendReq(t, n, "r250", fmt.Sprintf(`{"type":"t%d","payload":{"i":%d},"producer_id":"p","producer_seq":%d}`,
			total%3, total, total)), total, total, true)
		wantJSON(t, "last_seq after dedupe", getSession(t, n, "r250")["last_seq"], fmt.Sprint(total))
		r := do(t, n, "GET", "/v1/sessions/nope", nil, nil)
		wantErr(t, r, 404, "session_not_found", msgSessionNotFound)
		wantErr(t, do(t, n, "GET", "/v1/sessions/R250", nil, nil), 404, "session_not_found", msgSessionNotFound)
	})

	t.Run("event objects", func(t *testing.T) {
		evs, next, last := eventsOf(t, n, "r250", "")
		if len(evs) != 100 || next == nil || last != total {
			t.Fatalf("default page: %d events, next_cursor %v, last_seq %d", len(evs), next, last)
		}
		for i, ev := range evs {
			seq := int64(i + 1)
			wantTimestamp(t, fmt.Sprintf("event %d inserted_at", seq), ev["inserted_at"])
			if seq == 7 {
				wantJSON(t, "event 7", ev, fmt.Sprintf(`{"seq":7,"cursor":7,"type":"t1","payload":{"i":7},"actor":"service:service","producer_id":"p",
					"producer_seq":7,"source":"agent","metadata":{"role":"w","starcite_principal":%s},"refs":{"to_seq":"6","request_id":"req"},
					"idempotency_key":"ik-7","inserted_at":%q,"tenant_id":"service"}`, servicePrincipal, ev["inserted_at"]))
				continue
			}
			wantJSON(t, fmt.Sprintf("event %d", seq), ev, fmt.Sprintf(`{"seq":%d,"cursor":%d,"type":"t%d","payload":{"i":%d},"actor":"service:service",
				"producer_id":"p","producer_seq":%d,"metadata":{"starcite_principal":%s},"refs":{},"idempotency_key":null,
				"inserted_at":%q,"tenant_id":"service"}`, seq, seq, seq%3, seq, seq, servicePrincipal, ev["inserted_at"]))
		}
	})

	seqsOf := func(t *testing.T, evs []map[string]any) []int64 {
		t.Helper()
		out := make([]int64, len(evs))
		for i, e := range evs {
			out[i] = num(t, "seq", e["seq"])
		}
		return out
	}
	// wantRange asserts a page holding seqs from..to (none when from > to)
	// and its next_cursor: the last seq returned, or null when empty.
	wantRange := func(t *testing.T, id, query string, from, to, lastSeq int64) {
		t.Helper()
		evs, next, last := eventsOf(t, n, id, query)
		got := seqsOf(t, evs)
		ok := int64(len(got)) == max(0, to-from+1)
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == from+int64(i)
		}
		if !ok {
			t.Errorf("?%s: seqs %v, want %d..%d", query, got, from, to)
		}
		var wantNext any
		if from <= to {
			wantNext = mustJSON(t, fmt.Sprint(to))
		}
		if (next == nil) != (wantNext == nil) || next != nil && !sameJSON(next, wantNext) {
			t.Errorf("?%s: next_cursor %#v, want %v", query, next, wantNext)
		}
		if last != lastSeq {
			t.Errorf("?%s: last_seq %d, want %d", query, last, lastSeq)
		}
	}

	t.Run("cursor and limit", func(t *testing.T) {
		for _, c := range []struct {
			query    string
			from, to int64
		}{
			{"", 1, 100},
			{"cursor=0", 1, 100},
			{"limit=100", 1, 100},
			{"cursor=0&limit=1", 1, 1},
			{"limit=1000", 1, total},
			{"limit=999", 1, total},
			{"limit=250", 1, total},
			{"limit=249", 1, 249},
			{"cursor=1", 2, 101},
			{"cursor=100", 101, 200},
			{"cursor=200", 201, total},
			{"cursor=249", 250, total},
			{"cursor=249&limit=1000", 250, total},
			{"cursor=250", 1, 0},
			{"cursor=251", 1, 0},
			{"cursor=100000", 1, 0},
			{"cursor=9223372036854775807", 1, 0},
			{"cursor=%2B5", 6, 105},
			{"cursor=005&limit=3", 6, 8},
			{"cursor=10&limit=%2B2", 11, 12},
		} {
			t.Run(c.query, func(t *testing.T) { wantRange(t, "r250", c.query, c.from, c.to, total) })
		}
		t.Run("empty session", func(t *testing.T) {
			wantRange(t, "empty", "", 1, 0, 0)
			wantRange(t, "empty", "cursor=5&limit=5", 1, 0, 0)
		})
	})

	t.Run("paging through 250 events with limit 100", func(t *testing.T) {
		var all []int64
		cursor := int64(0)
		pages := 0
		for {
			pages++
			if pages > 10 {
				t.Fatal("no end")
			}
			evs, next, last := eventsOf(t, n, "r250", fmt.Sprintf("cursor=%d&limit=100", cursor))
			if last != total {
				t.Fatalf("last_seq %d", last)
			}
			if len(evs) == 0 {
				if next != nil {
					t.Fatalf("empty page with next_cursor %v", next)
				}
				break
			}
			got := seqsOf(t, evs)
			if next == nil || num(t, "next_cursor", next) != got[len(got)-1] {
				t.Fatalf("page from %d: next_cursor %v, last event %d", cursor, next, got[len(got)-1])
			}
			all = append(all, got...)
			cursor = num(t, "next_cursor", next)
		}
		if pages != 4 || len(all) != total {
			t.Fatalf("%d pages, %d events", pages, len(all))
		}
		for i, s := range all {
			if s != int64(i+1) {
				t.Fatalf("event %d has seq %d", i+1, s)
			}
		}
	})

	t.Run("invalid parameters", func(t *testing.T) {
		for _, q := range []string{
			"cursor=-1", "cursor=bad", "cursor=1.5", "cursor=", "cursor=9223372036854775808", "cursor=18446744073709551616",
			"cursor=1e2", "cursor=%201", "cursor=+1", "cursor=1x", "cursor[]=1", "cursor[a]=1",
			"cursor=-1&limit=0", "limit=0&cursor=bad",
		} {
			t.Run(q, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions/r250/events?"+q, nil, nil), 400, "invalid_cursor", msgInvalidCursor)
			})
		}
		for _, q := range []string{
			"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=1.5", "limit=", "limit=10x", "limit=%205", "limit=+5",
			"limit=99999999999999999999", "limit[]=5", "cursor=5&limit=0",
		} {
			t.Run(q, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions/r250/events?"+q, nil, nil), 400, "invalid_limit", msgInvalidLimit)
			})
		}
	})

	t.Run("unknown session", func(t *testing.T) {
		for _, q := range []string{"", "?cursor=0", "?cursor=5&limit=10"} {
			wantErr(t, do(t, n, "GET", "/v1/sessions/nope/events"+q, nil, nil), 404, "session_not_found", msgSessionNotFound)
		}
	})
}
