package socket

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestLifecycleJoin: only service principals with session:read, not
// locked to a session, may join; join params are ignored.
func TestLifecycleJoin(t *testing.T) {
	e := jwtEnv(t, nil)
	read := []string{"session:read"}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"service with read", mintToken("acme", "service:ops", read), ""},
		{"svc: prefix", mintToken("acme", "svc:ops", read), ""},
		{"org: prefix", mintToken("acme", "org:acme", read), ""},
		{"user", mintToken("acme", "user:u1", allScopes), "forbidden"},
		{"agent", mintToken("acme", "agent:a1", allScopes), "forbidden"},
		{"service without read", mintToken("acme", "service:ops", []string{"session:create", "session:append"}), "forbidden_scope"},
		{"session-locked service", mintToken("acme", "service:ops", read, "session_id", "s1"), "forbidden_session"},
		{"session-locked user", mintToken("acme", "user:u1", read, "session_id", "s1"), "forbidden_session"},
		{"expired (inside the leeway)", mintToken("acme", "service:ops", read, "exp", time.Now().Unix()-1), "token_expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.socket(t, tt.token)
			if tt.reason == "" {
				join(t, c, "lifecycle", []any{"params", "are", "ignored"})
				return
			}
			joinError(t, c, "lifecycle", map[string]any{}, tt.reason)
		})
	}
}

// TestLifecycle: committed header changes arrive as lifecycle events, in
// commit order, with upstream's exact payloads; other tenants' never;
// appends produce none; in both modes.
func TestLifecycle(t *testing.T) {
	for _, e := range []*env{noneEnv(t, nil), jwtEnv(t, nil)} {
		t.Run(e.name, func(t *testing.T) {
			svc := e.token("acme", "service:watcher", []string{"session:read"})
			tenant := "acme"
			if !e.jwt {
				tenant = "service"
			}
			c := e.socket(t, svc)
			j := join(t, c, "lifecycle", map[string]any{})
			next := func(what string) map[string]any {
				t.Helper()
				f, err := c.NextOn("lifecycle", wait)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if f.Event != "lifecycle" || f.JoinRef == nil || *f.JoinRef != j || f.Ref != nil {
					t.Fatalf("%s: %s", what, f)
				}
				var p struct{ Event map[string]any }
				if err := json.Unmarshal(f.Payload, &p); err != nil || p.Event == nil {
					t.Fatalf("%s: payload %s", what, f)
				}
				return p.Event
			}
			want := func(what string, got map[string]any, exp string) {
				t.Helper()
				b, _ := json.Marshal(got)
				if !sameJSON(b, []byte(exp)) {
					t.Fatalf("%s:\n got %s\nwant %s", what, b, exp)
				}
			}

			// Another tenant's change first: the next event must be ours.
			if e.jwt {
				other := mintToken("umbrella", "service:x", allScopes)
				if st, b := e.n.Do("POST", "/v1/sessions", map[string]any{"id": "lc-other"}, e.auth(other)); st != 201 {
					t.Fatalf("create: %d %s", st, b)
				}
			}
			st, body := e.n.Do("POST", "/v1/sessions", map[string]any{"id": "lc1", "title": "Draft",
				"metadata": map[string]any{"workflow": "contract", "n": 1}}, e.auth(e.admin))
			if st != 201 {
				t.Fatalf("create: %d %s", st, body)
			}
			created := harness.JSON(t, body)
			want("first event", next("activated"), fmt.Sprintf(`{"kind":"session.activated","session_id":"lc1","tenant_id":%q}`, tenant))
			want("second event", next("created"), fmt.Sprintf(`{"kind":"session.created","session_id":"lc1","tenant_id":%q,`+
				`"title":"Draft","metadata":%s,"created_at":%q,"version":1}`, tenant, mustMarshal(created["metadata"]), created["created_at"]))

			// Appends produce nothing.
			e.appendN(t, "lc1", 1, 2)
			quiet(t, c, "after appends")

			// PATCH: the whole merged metadata, the new version.
			st, body = e.n.Do("PATCH", "/v1/sessions/lc1", map[string]any{"metadata": map[string]any{"n": 2, "extra": true}},
				e.auth(e.admin))
			if st != 200 {
				t.Fatalf("patch: %d %s", st, body)
			}
			patched := harness.JSON(t, body)
			want("update", next("updated"), fmt.Sprintf(`{"kind":"session.updated","session_id":"lc1","tenant_id":%q,`+
				`"title":"Draft","metadata":%s,"updated_at":%q,"version":2}`, tenant, mustMarshal(patched["metadata"]), patched["updated_at"]))

			// Archive and unarchive: exactly four keys; a repeat is silent.
			for _, step := range []struct{ path, kind, archived string }{
				{"archive", "session.archived", "true"}, {"archive", "", ""},
				{"unarchive", "session.unarchived", "false"}, {"unarchive", "", ""},
			} {
				if st, body := e.n.Do("POST", "/v1/sessions/lc1/"+step.path, nil, e.auth(e.admin)); st != 200 {
					t.Fatalf("%s: %d %s", step.path, st, body)
				}
				if step.kind == "" {
					quiet(t, c, "after a repeated "+step.path)
					continue
				}
				want(step.path, next(step.kind), fmt.Sprintf(`{"kind":%q,"session_id":"lc1","tenant_id":%q,"archived":%s}`,
					step.kind, tenant, step.archived))
			}
			// An archived session is still tailable (archiving only hides it
			// from the default list).
			e.n.Do("POST", "/v1/sessions/lc1/archive", nil, e.auth(e.admin))
			next("archived again")
			tc := e.socket(t, e.token("acme", "user:u1", []string{"session:read"}))
			join(t, tc, "tail:lc1", map[string]any{})
			collect(t, tc, "tail:lc1", 1, 2, 1)

		})
	}
}

// TestLifecycleTokenExpiry: the lifecycle channel ends at exp like a tail.
func TestLifecycleTokenExpiry(t *testing.T) {
	e := jwtEnv(t, nil)
	exp := time.Now().Unix() + 2
	c := e.socket(t, mintToken("acme", "service:w", []string{"session:read"}, "exp", exp))
	j := join(t, c, "lifecycle", map[string]any{})
	f, err := c.NextOn("lifecycle", wait)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, f, fmt.Sprintf(`[%q,null,"lifecycle","token_expired",{"reason":"token_expired"}]`, j))
	if now := time.Now().Unix(); now < exp {
		t.Fatalf("token_expired at %d, before exp %d", now, exp)
	}
	f, err = c.NextOn("lifecycle", wait)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, f, fmt.Sprintf(`[%q,%q,"lifecycle","phx_close",{}]`, j, j))
	joinError(t, c, "lifecycle", map[string]any{}, "token_expired")
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
