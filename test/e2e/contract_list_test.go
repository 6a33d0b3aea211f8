package e2e

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"starcite/test/harness"
)

// TestContractList: GET /v1/sessions in none mode (docs/api.md#list,
// docs/decisions.md#d7). The node holds exactly the sessions created here,
// so every page is known in full.
func TestContractList(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})

	created := map[string]map[string]any{} // id -> create reply
	create := func(id, title, meta string) {
		body := fmt.Sprintf(`{"id":%q,"metadata":%s}`, id, meta)
		if title != "" {
			body = fmt.Sprintf(`{"id":%q,"title":%q,"metadata":%s}`, id, title, meta)
		}
		created[id] = createOK(t, n, body)
	}
	// Ids chosen so that byte order differs from case-insensitive,
	// locale and code-point-naive orders.
	create("B", "Bee", `{"color":"red","n":1,"flag":true}`)
	create("a", "", `{"color":"red","n":"1","size":"L"}`)
	create("é", "e-acute", `{"color":"blue","nested":{"k":"v"}}`)
	create("Z", "", `{"color":"red","size":"L"}`)
	create("_", "", `{}`)
	create("0", "", `{"color":"green","flag":"true","n":"01"}`)
	create("a b", "", `{"color":"","sp ace":"x y"}`)
	create("ab", "", `{"k.dot":"1","k[br]":"2"}`)
	for i := 0; i < 25; i++ {
		create(fmt.Sprintf("p-%03d", i), "", fmt.Sprintf(`{"bulk":"yes","i":"%d"}`, i))
	}
	all := make([]string, 0, len(created))
	for id := range created {
		all = append(all, id)
	}
	sort.Strings(all) // byte-wise
	bulk := []string{}
	for _, id := range all {
		if strings.HasPrefix(id, "p-") {
			bulk = append(bulk, id)
		}
	}

	// list reads one page and checks every item against its create reply.
	list := func(t *testing.T, query string) (ids []string, next any) {
		t.Helper()
		path := "/v1/sessions"
		if query != "" {
			path += "?" + query
		}
		r := do(t, n, "GET", path, nil, nil)
		m := wantStatus(t, r, 200)
		wantKeys(t, r.String(), m, listPageKeys)
		items, ok := m["sessions"].([]any)
		if !ok {
			t.Fatalf("%s: sessions is not an array", r)
		}
		for i, it := range items {
			item, ok := it.(map[string]any)
			if !ok {
				t.Fatalf("%s: item %d is not an object", r, i)
			}
			wantKeys(t, fmt.Sprintf("%s: item %d", r, i), item, listItemKeys)
			id, _ := item["id"].(string)
			c := created[id]
			if c == nil {
				t.Fatalf("%s: unknown session %#v", r, item["id"])
			}
			if item["title"] != c["title"] {
				t.Errorf("%s: title of %s: %#v, created with %#v", r, id, item["title"], c["title"])
			}
			wantJSON(t, id+" tenant_id", item["tenant_id"], `"service"`)
			wantJSON(t, id+" creator_principal", item["creator_principal"], serviceCreator)
			if !sameJSON(item["metadata"], c["metadata"]) {
				t.Errorf("%s: metadata of %s: %v, created with %v", r, id, item["metadata"], c["metadata"])
			}
			wantTimestamp(t, id+" created_at", item["created_at"])
			if item["created_at"] != c["created_at"] {
				t.Errorf("%s: created_at of %s is %v, create said %v", r, id, item["created_at"], c["created_at"])
			}
			ids = append(ids, id)
		}
		if nc := m["next_cursor"]; nc != nil {
			if _, ok := nc.(string); !ok {
				t.Errorf("%s: next_cursor %#v is neither a string nor null", r, nc)
			}
		}
		return ids, m["next_cursor"]
	}
	wantPage := func(t *testing.T, query string, want []string, wantNext any) {
		t.Helper()
		ids, next := list(t, query)
		if strings.Join(ids, "|") != strings.Join(want, "|") {
			t.Errorf("?%s: ids %q, want %q", query, ids, want)
		}
		if next != wantNext {
			t.Errorf("?%s: next_cursor %#v, want %#v", query, next, wantNext)
		}
	}
	after := func(cursor string, ids []string) []string {
		var out []string
		for _, id := range ids {
			if id > cursor {
				out = append(out, id)
			}
		}
		return out
	}

	t.Run("default limit returns all in byte order", func(t *testing.T) {
		if want := []string{"0", "B", "Z", "_", "a", "a b", "ab"}; strings.Join(all[:7], "|") != strings.Join(want, "|") {
			t.Fatalf("test setup: byte order %q", all[:7])
		}
		wantPage(t, "", all, nil)
	})

	t.Run("trailing slash lists", func(t *testing.T) {
		r := do(t, n, "GET", "/v1/sessions/?limit=2", nil, nil)
		m := wantStatus(t, r, 200)
		wantKeys(t, r.String(), m, listPageKeys)
		wantJSON(t, "next_cursor", m["next_cursor"], `"B"`)
	})

	t.Run("valid limits", func(t *testing.T) {
		for _, c := range []struct {
			query string
			n     int
		}{
			{"limit=1", 1}, {"limit=2", 2}, {"limit=7", 7}, {"limit=%2B5", 5}, {"limit=007", 7},
			{"limit=1000", len(all)}, {"limit=999", len(all)},
			{fmt.Sprintf("limit=%d", len(all)-1), len(all) - 1},
			{fmt.Sprintf("limit=%d", len(all)), len(all)}, // full page, nothing follows: null
			{fmt.Sprintf("limit=%d", len(all)+1), len(all)},
		} {
			t.Run(c.query, func(t *testing.T) {
				want := all[:c.n]
				var next any
				if c.n < len(all) {
					next = want[len(want)-1]
				}
				wantPage(t, c.query, want, next)
			})
		}
	})

	t.Run("invalid limits", func(t *testing.T) {
		for _, q := range []string{
			"limit=", "limit=0", "limit=-1", "limit=1001", "limit=1.5", "limit=abc", "limit=10x",
			"limit=%205", // " 5"
			"limit=+5",   // '+' decodes to a space: " 5"
			"limit=5%20", "limit=%2B", "limit=%2B%2B5", "limit=%2B-5", "limit=-0", "limit=00", "limit=1e2", "limit=0x10", "limit=5.0",
			"limit=99999999999999999999", "limit=9223372036854775808", "limit=%2D1", "limit=%EF%BC%95", // fullwidth 5
			"limit[]=5", "limit[a]=5",
		} {
			t.Run(q, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions?"+q, nil, nil), 400, "invalid_limit", msgInvalidLimit)
			})
		}
	})

	t.Run("cursor", func(t *testing.T) {
		for _, c := range []struct{ query, cursor string }{
			{"cursor=a", "a"},
			{"cursor=C", "C"},
			{"cursor=0", "0"},
			{"cursor=%2F", "/"},
			{"cursor=a+b", "a b"},
			{"cursor=a%20b", "a b"},
			{"cursor=p-010", "p-010"},
			{"cursor=p-0105", "p-0105"},
			{"cursor=%C3%A9", "é"},
			{"cursor=%C3%A9%C3%A9", "éé"},
			{"cursor=zzz", "zzz"},
		} {
			t.Run(c.query, func(t *testing.T) {
				wantPage(t, c.query, after(c.cursor, all), nil)
			})
		}
		t.Run("with limit", func(t *testing.T) {
			wantPage(t, "cursor=B&limit=2", []string{"Z", "_"}, "_")
			wantPage(t, "limit=2&cursor=_", []string{"a", "a b"}, "a b")
			rest := after("p-020", all)
			wantPage(t, fmt.Sprintf("cursor=p-020&limit=%d", len(rest)), rest, nil)
			wantPage(t, fmt.Sprintf("cursor=p-020&limit=%d", len(rest)-1), rest[:len(rest)-1], rest[len(rest)-2])
		})
		for _, q := range []string{"cursor=", "cursor[]=x", "cursor[]=", "cursor[a]=x", "cursor[]=a&cursor[]=b", "limit=5&cursor="} {
			t.Run("invalid "+q, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions?"+q, nil, nil), 400, "invalid_cursor", msgInvalidCursor)
			})
		}
	})

	t.Run("metadata filters", func(t *testing.T) {
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"metadata[color]=red", []string{"B", "Z", "a"}},
			{"metadata.color=red", []string{"B", "Z", "a"}},
			{"metadata[color]=blue", []string{"é"}},
			{"metadata[color]=Red", nil},
			{"metadata[color]=red&metadata[size]=L", []string{"Z", "a"}},
			{"metadata.color=red&metadata.size=L", []string{"Z", "a"}},
			{"metadata[color]=red&metadata.size=L", []string{"Z", "a"}},
			{"metadata[color]=red&metadata[missing]=x", nil},
			{"metadata[color]=red&cursor=B", []string{"Z", "a"}},
			// Type-exact: query values are strings.
			{"metadata[n]=1", []string{"a"}},
			{"metadata.n=1", []string{"a"}},
			{"metadata[n]=01", []string{"0"}},
			{"metadata[flag]=true", []string{"0"}},
			{"metadata[nested]=v", nil},
			{"metadata[nested]=%7B%22k%22%3A%22v%22%7D", nil},
			{"metadata[color]=", []string{"a b"}},
			{"metadata[sp+ace]=x+y", []string{"a b"}},
			{"metadata[sp%20ace]=x%20y", []string{"a b"}},
			{"metadata.sp%20ace=x%20y", []string{"a b"}},
			{"metadata[i]=7", []string{"p-007"}},
			{"metadata[bulk]=yes", bulk},
			{"metadata[missing]=x", nil},
			// For the same key the dotted form wins, whatever the order.
			{"metadata[color]=blue&metadata.color=red", []string{"B", "Z", "a"}},
			{"metadata.color=red&metadata[color]=blue", []string{"B", "Z", "a"}},
			{"metadata.color=green&metadata[color]=red&metadata[size]=L", nil},
			// Invalid dotted forms are silently ignored.
			{"metadata.color[]=red", all},
			{"metadata.=x", all},
			{"metadata.color[x]=red", all},
			{"metadata.a[]=1", all},
			{"metadata.color[]=blue&metadata[color]=red", []string{"B", "Z", "a"}},
			{"metadata.=x&metadata.color=blue", []string{"é"}},
		} {
			t.Run(c.query, func(t *testing.T) {
				wantPage(t, c.query, c.want, nil)
			})
		}
		t.Run("with limit", func(t *testing.T) {
			wantPage(t, "metadata[color]=red&limit=2", []string{"B", "Z"}, "Z")
			wantPage(t, "metadata[color]=red&limit=3", []string{"B", "Z", "a"}, nil)
			wantPage(t, "metadata[color]=red&limit=2&cursor=Z", []string{"a"}, nil)
		})
		for _, q := range []string{
			"metadata=x", "metadata=", "metadata[]=x", "metadata[]=", "metadata[a][b]=c", "metadata[color][]=red",
			"metadata[color]=red&metadata[a][b]=c", "metadata[]=x&metadata[]=y",
		} {
			t.Run("invalid "+q, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions?"+q, nil, nil), 400, "invalid_metadata", msgInvalidMetadata)
			})
		}
	})

	t.Run("validation order", func(t *testing.T) {
		for _, c := range []struct{ query, code, msg string }{
			{"limit=0&cursor=&metadata=x", "invalid_limit", msgInvalidLimit},
			{"metadata=x&cursor=&limit=0", "invalid_limit", msgInvalidLimit},
			{"metadata[a][b]=c&limit=abc", "invalid_limit", msgInvalidLimit},
			{"cursor[]=x&limit=1001", "invalid_limit", msgInvalidLimit},
			{"cursor=&metadata=x", "invalid_cursor", msgInvalidCursor},
			{"metadata=x&cursor=", "invalid_cursor", msgInvalidCursor},
			{"metadata[]=x&cursor[]=y&limit=5", "invalid_cursor", msgInvalidCursor},
			{"limit=5&metadata=x", "invalid_metadata", msgInvalidMetadata},
			{"cursor=a&metadata[]=x", "invalid_metadata", msgInvalidMetadata},
		} {
			t.Run(c.query, func(t *testing.T) {
				wantErr(t, do(t, n, "GET", "/v1/sessions?"+c.query, nil, nil), 400, c.code, c.msg)
			})
		}
	})

	t.Run("pagination walk", func(t *testing.T) {
		walk := func(t *testing.T, extra string, limit int, want []string) {
			t.Helper()
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				if page > len(want)+1 {
					t.Fatalf("limit %d: no end after %d pages", limit, page)
				}
				q := fmt.Sprintf("limit=%d%s", limit, extra)
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				ids, next := list(t, q)
				got = append(got, ids...)
				if len(ids) > limit {
					t.Fatalf("?%s: %d items", q, len(ids))
				}
				if next == nil {
					// null exactly on the last page, which is never empty
					// when anything matched (limit+1,
					// docs/decisions.md#d7).
					if len(got) != len(want) {
						t.Fatalf("?%s: next_cursor null after %d of %d", q, len(got), len(want))
					}
					if len(want) > 0 && len(ids) == 0 {
						t.Fatalf("?%s: empty last page", q)
					}
					break
				}
				if len(ids) != limit || next != ids[len(ids)-1] {
					t.Fatalf("?%s: %d items, next_cursor %#v; want a full page and the last id", q, len(ids), next)
				}
				cursor = next.(string)
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("limit %d: walked %q, want %q", limit, got, want)
			}
		}
		for _, limit := range []int{1, 2, 3, 5, 7, 11, 16, len(all) - 1, len(all), len(all) + 1, 100} {
			t.Run(fmt.Sprintf("all limit %d", limit), func(t *testing.T) { walk(t, "", limit, all) })
		}
		for _, limit := range []int{1, 4, 5, 24, 25, 26} {
			t.Run(fmt.Sprintf("filtered limit %d", limit), func(t *testing.T) { walk(t, "&metadata[bulk]=yes", limit, bulk) })
		}
		t.Run("no match", func(t *testing.T) { walk(t, "&metadata[bulk]=no", 3, nil) })
	})

	t.Run("default limit is 100", func(t *testing.T) {
		// Runs last: it adds sessions. With 130 sessions the first page
		// holds 100 and a cursor.
		extra := 130 - len(all)
		var more []string
		for i := 0; i < extra; i++ {
			id := fmt.Sprintf("q-%03d", i)
			create(id, "", `{"more":"yes"}`)
			more = append(more, id)
		}
		every := append(append([]string(nil), all...), more...)
		sort.Strings(every)
		wantPage(t, "", every[:100], every[99])
		wantPage(t, "cursor="+url.QueryEscape(every[99]), every[100:], nil)
		wantPage(t, "limit=1000", every, nil)
		wantPage(t, "metadata[more]=yes&limit=5", more[:5], more[4])
		wantPage(t, "metadata[more]=yes", more, nil)
	})
}
