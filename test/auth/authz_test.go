package auth

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"starcite/app/devjwt"
	"starcite/test/harness"
)

// authzNode is one jwt-mode node with sessions of two tenants:
// acme-1, acme-2 (tenant acme) and globex-1 (tenant globex).
type authzNode struct {
	n *harness.Node
}

const (
	scCreate = "session:create"
	scRead   = "session:read"
	scAppend = "session:append"
)

func newAuthzNode(t *testing.T) authzNode {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	a := authzNode{startJWTNode(t, j, nil)}
	acme := a.tok("acme", "user:u-1", scCreate)
	globex := a.tok("globex", "user:g-1", scCreate)
	for _, c := range []struct{ tok, id string }{{acme, "acme-1"}, {acme, "acme-2"}, {globex, "globex-1"}} {
		expectStatus(t, "create "+c.id, do(t, a.n, "POST", "/v1/sessions", map[string]any{"id": c.id}, bearer(c.tok)...), 201)
	}
	return a
}

func (a authzNode) tok(tenant, sub string, scopes ...string) string {
	return mint(0, "k1", claims(tenant, sub, scopes...))
}

func (a authzNode) locked(tenant, session string, scopes ...string) string {
	return mint(0, "k1", with(claims(tenant, "user:u-1", scopes...), "session_id", session))
}

func TestAuthorization(t *testing.T) {
	a := newAuthzNode(t)
	n := a.n
	all := []string{scCreate, scRead, scAppend}

	t.Run("scope missing per route", func(t *testing.T) {
		noCreate := a.tok("acme", "user:u-1", scRead, scAppend)
		noRead := a.tok("acme", "user:u-1", scCreate, scAppend)
		noAppend := a.tok("acme", "user:u-1", scCreate, scRead)
		unknownOnly := a.tok("acme", "user:u-1", "admin", "session:*")
		cases := []struct {
			name, tok, method, path string
			body                    any
		}{
			{"create without session:create", noCreate, "POST", "/v1/sessions", map[string]any{"id": "x-1"}},
			{"list without session:read", noRead, "GET", "/v1/sessions", nil},
			{"get without session:read", noRead, "GET", "/v1/sessions/acme-1", nil},
			{"events without session:read", noRead, "GET", "/v1/sessions/acme-1/events", nil},
			{"append without session:append", noAppend, "POST", "/v1/sessions/acme-1/append", appendBody("p", 1)},
			{"create with unknown scopes only", unknownOnly, "POST", "/v1/sessions", map[string]any{"id": "x-2"}},
			{"list with unknown scopes only", unknownOnly, "GET", "/v1/sessions", nil},
			{"append with unknown scopes only", unknownOnly, "POST", "/v1/sessions/acme-1/append", appendBody("p", 1)},
		}
		for _, c := range cases {
			expectError(t, c.name, do(t, n, c.method, c.path, c.body, bearer(c.tok)...), 403, "forbidden_scope", "")
		}
		// the scopes array grants like the scope string
		arr := mint(0, "k1", with(claims("acme", "user:u-1"), "scope", nil, "scopes", []string{scRead}))
		expectStatus(t, "list with the scopes array", do(t, n, "GET", "/v1/sessions", nil, bearer(arr)...), 200)
		expectError(t, "nothing created without session:create", do(t, n, "GET", "/v1/sessions/x-1", nil, bearer(a.tok("acme", "user:u-1", scRead))...), 404, "session_not_found", "")
	})

	t.Run("tenant fence", func(t *testing.T) {
		globex := a.tok("globex", "user:g-1", all...)
		for _, c := range []struct {
			name, method, path string
			body               any
		}{
			{"append to another tenant's session", "POST", "/v1/sessions/acme-1/append", appendBody("g", 1)},
			{"get another tenant's session", "GET", "/v1/sessions/acme-1", nil},
			{"events of another tenant's session", "GET", "/v1/sessions/acme-1/events", nil},
			{"malformed append body on another tenant's session", "POST", "/v1/sessions/acme-1/append", map[string]any{"type": 1}},
			{"non-JSON append body on another tenant's session", "POST", "/v1/sessions/acme-1/append", "{"},
		} {
			expectError(t, c.name, do(t, n, c.method, c.path, c.body, bearer(globex)...), 403, "forbidden_tenant", "")
		}
		// nothing was appended to acme-1
		var s struct {
			LastSeq int `json:"last_seq"`
		}
		decode(t, do(t, n, "GET", "/v1/sessions/acme-1", nil, bearer(a.tok("acme", "user:u-1", scRead))...), &s)
		if s.LastSeq != 0 {
			t.Fatalf("acme-1 last_seq %d after refused appends", s.LastSeq)
		}
		// list shows the caller's tenant only
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions", nil, bearer(globex)...)); !slices.Equal(ids, []string{"globex-1"}) {
			t.Errorf("globex lists %v", ids)
		}
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions?limit=1000", nil, bearer(a.tok("acme", "user:u-9", scRead))...)); !slices.Contains(ids, "acme-1") || !slices.Contains(ids, "acme-2") || slices.Contains(ids, "globex-1") {
			t.Errorf("acme lists %v", ids)
		}
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions", nil, bearer(a.tok("initech", "user:i-1", scRead))...)); len(ids) != 0 {
			t.Errorf("a tenant without sessions lists %v", ids)
		}
		// the same id in another tenant is taken (ids are global)
		expectError(t, "create an id another tenant holds", do(t, n, "POST", "/v1/sessions", map[string]any{"id": "acme-2"}, bearer(globex)...), 409, "session_exists", "")
	})

	t.Run("session-locked token", func(t *testing.T) {
		lock := a.locked("acme", "acme-lock", all...)
		// create: id omitted → the locked id; another id → 403; the
		// same id again → 409
		r := do(t, n, "POST", "/v1/sessions", map[string]any{"title": "mine"}, bearer(lock)...)
		expectStatus(t, "locked create without id", r, 201)
		var created struct {
			ID string `json:"id"`
		}
		decode(t, r, &created)
		if created.ID != "acme-lock" {
			t.Fatalf("locked create made %q, want acme-lock", created.ID)
		}
		expectError(t, "locked create of another id", do(t, n, "POST", "/v1/sessions", map[string]any{"id": "acme-other"}, bearer(lock)...), 403, "forbidden_session", "")
		expectError(t, "locked create of its id again", do(t, n, "POST", "/v1/sessions", map[string]any{"id": "acme-lock"}, bearer(lock)...), 409, "session_exists", "")
		expectError(t, "locked create, bad id shape before the lock", do(t, n, "POST", "/v1/sessions", map[string]any{"id": 5}, bearer(lock)...), 400, "invalid_event", "")

		for _, c := range []struct {
			name, method, path string
			body               any
		}{
			{"append to another session of the tenant", "POST", "/v1/sessions/acme-1/append", appendBody("p", 1)},
			{"append to an unknown session", "POST", "/v1/sessions/nope/append", appendBody("p", 1)},
			{"get another session", "GET", "/v1/sessions/acme-1", nil},
			{"events of another session", "GET", "/v1/sessions/acme-1/events", nil},
			{"events of an unknown session", "GET", "/v1/sessions/nope/events", nil},
			{"append to another tenant's session", "POST", "/v1/sessions/globex-1/append", appendBody("p", 1)},
		} {
			expectError(t, c.name, do(t, n, c.method, c.path, c.body, bearer(lock)...), 403, "forbidden_session", "")
		}
		expectStatus(t, "append to the locked session", do(t, n, "POST", "/v1/sessions/acme-lock/append", appendBody("p", 1), bearer(lock)...), 201)
		expectStatus(t, "get the locked session", do(t, n, "GET", "/v1/sessions/acme-lock", nil, bearer(lock)...), 200)

		// list: only the locked session, still subject to the cursor
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions?limit=1000", nil, bearer(lock)...)); !slices.Equal(ids, []string{"acme-lock"}) {
			t.Errorf("locked token lists %v", ids)
		}
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions?cursor=acme-lock", nil, bearer(lock)...)); len(ids) != 0 {
			t.Errorf("locked token lists %v after its own id", ids)
		}
		// locked to a session of another tenant: it lists nothing
		foreign := a.locked("acme", "globex-1", all...)
		if ids := listIDs(t, do(t, n, "GET", "/v1/sessions", nil, bearer(foreign)...)); len(ids) != 0 {
			t.Errorf("token locked to another tenant's session lists %v", ids)
		}
		expectError(t, "locked to another tenant's session", do(t, n, "POST", "/v1/sessions/globex-1/append", appendBody("p", 1), bearer(foreign)...), 403, "forbidden_tenant", "")
		// locked to a session that does not exist: 404 after the lock check
		ghost := a.locked("acme", "ghost", all...)
		expectError(t, "locked to a missing session", do(t, n, "POST", "/v1/sessions/ghost/append", appendBody("p", 1), bearer(ghost)...), 404, "session_not_found", "")
	})

	t.Run("check order", func(t *testing.T) {
		noAppend := a.tok("acme", "user:u-1", scCreate, scRead)
		noRead := a.tok("acme", "user:u-1", scCreate, scAppend)
		noCreate := a.tok("acme", "user:u-1", scRead, scAppend)
		globexAll := a.tok("globex", "user:g-1", all...)
		acmeAll := a.tok("acme", "user:u-1", all...)
		cases := []struct {
			name, tok, method, path string
			body                    any
			status                  int
			code                    string
		}{
			// append: lock → lookup → scope → tenant → body
			{"append: unknown session before missing scope", noAppend, "POST", "/v1/sessions/nope/append", appendBody("p", 1), 404, "session_not_found"},
			{"append: missing scope on an existing session", noAppend, "POST", "/v1/sessions/acme-1/append", appendBody("p", 1), 403, "forbidden_scope"},
			{"append: missing scope before tenant", noAppend, "POST", "/v1/sessions/globex-1/append", appendBody("p", 1), 403, "forbidden_scope"},
			{"append: malformed body on an unknown session", acmeAll, "POST", "/v1/sessions/nope/append", map[string]any{"type": 1}, 404, "session_not_found"},
			{"append: malformed body on another tenant's session", acmeAll, "POST", "/v1/sessions/globex-1/append", map[string]any{"type": 1}, 403, "forbidden_tenant"},
			{"append: malformed body, missing scope", noAppend, "POST", "/v1/sessions/acme-1/append", "{", 403, "forbidden_scope"},
			{"append: malformed body on an own session", acmeAll, "POST", "/v1/sessions/acme-1/append", map[string]any{"type": 1}, 400, "invalid_event"},
			// events: lookup → scope → tenant
			{"events: unknown session before missing scope", noRead, "GET", "/v1/sessions/nope/events", nil, 404, "session_not_found"},
			{"events: bad cursor before the session checks", noRead, "GET", "/v1/sessions/globex-1/events?cursor=x", nil, 400, "invalid_cursor"},
			// the header routes: scope → lock → lookup → tenant
			{"get: missing scope before an unknown session", noRead, "GET", "/v1/sessions/nope", nil, 403, "forbidden_scope"},
			{"get: scope before lock", a.locked("acme", "acme-1", scCreate), "GET", "/v1/sessions/nope", nil, 403, "forbidden_scope"},
			{"get: lock before lookup", a.locked("acme", "acme-1", scRead), "GET", "/v1/sessions/nope", nil, 403, "forbidden_session"},
			{"get: unknown session", a.tok("acme", "user:u-1", scRead), "GET", "/v1/sessions/nope", nil, 404, "session_not_found"},
			{"get: another tenant's session", a.tok("acme", "user:u-1", scRead), "GET", "/v1/sessions/globex-1", nil, 403, "forbidden_tenant"},
			{"patch: body before scope", noCreate, "PATCH", "/v1/sessions/globex-1", map[string]any{"title": 5}, 400, "invalid_session"},
			{"patch: read scope is not enough", noCreate, "PATCH", "/v1/sessions/acme-1", map[string]any{"title": "t"}, 403, "forbidden_scope"},
			{"patch: lock before lookup", a.locked("acme", "acme-1", all...), "PATCH", "/v1/sessions/nope", map[string]any{"title": "t"}, 403, "forbidden_session"},
			{"patch: unknown session", acmeAll, "PATCH", "/v1/sessions/nope", map[string]any{"title": "t"}, 404, "session_not_found"},
			{"patch: another tenant's session", acmeAll, "PATCH", "/v1/sessions/globex-1", map[string]any{"metadata": map[string]any{"x": 1}}, 403, "forbidden_tenant"},
			{"archive: missing scope", noCreate, "POST", "/v1/sessions/nope/archive", nil, 403, "forbidden_scope"},
			{"archive: lock before lookup", a.locked("acme", "acme-1", all...), "POST", "/v1/sessions/nope/archive", nil, 403, "forbidden_session"},
			{"archive: another tenant's session", acmeAll, "POST", "/v1/sessions/globex-1/archive", nil, 403, "forbidden_tenant"},
			{"unarchive: missing scope", noCreate, "POST", "/v1/sessions/acme-1/unarchive", nil, 403, "forbidden_scope"},
			{"unarchive: another tenant's session", acmeAll, "POST", "/v1/sessions/globex-1/unarchive", nil, 403, "forbidden_tenant"},
			// list: limit → cursor → archived → metadata → scope
			{"list: archived before scope", noRead, "GET", "/v1/sessions?archived=yes", nil, 400, "invalid_list_query"},
			{"list: bad limit before scope", noRead, "GET", "/v1/sessions?limit=0", nil, 400, "invalid_limit"},
			{"list: bad limit before bad cursor", noRead, "GET", "/v1/sessions?limit=x&cursor=", nil, 400, "invalid_limit"},
			{"list: empty cursor before scope", noRead, "GET", "/v1/sessions?cursor=", nil, 400, "invalid_cursor"},
			{"list: bad metadata filter before scope", noRead, "GET", "/v1/sessions?metadata=x", nil, 400, "invalid_metadata"},
			{"list: valid query, missing scope", noRead, "GET", "/v1/sessions?limit=5&metadata[a]=b", nil, 403, "forbidden_scope"},
			// create: scope → id → lock → title → metadata
			{"create: missing scope before a bad id", noCreate, "POST", "/v1/sessions", map[string]any{"id": 5}, 403, "forbidden_scope"},
			{"create: missing scope before a malformed body", noCreate, "POST", "/v1/sessions", "{", 403, "forbidden_scope"},
			{"create: bad id", acmeAll, "POST", "/v1/sessions", map[string]any{"id": 5}, 400, "invalid_event"},
			{"create: bad title", acmeAll, "POST", "/v1/sessions", map[string]any{"id": "t-1", "title": 5}, 400, "invalid_event"},
			{"create: lock before a bad title", a.locked("acme", "l-1", all...), "POST", "/v1/sessions", map[string]any{"id": "t-2", "title": 5}, 403, "forbidden_session"},
			{"create: bad metadata", acmeAll, "POST", "/v1/sessions", map[string]any{"id": "t-3", "metadata": 5}, 400, "invalid_metadata"},
			// tail: authentication first, then its own checks
			{"tail: lock before lookup", a.locked("acme", "acme-1", all...), "GET", "/v1/sessions/nope/tail", nil, 403, "forbidden_session"},
			{"tail: unknown session before missing scope", noRead, "GET", "/v1/sessions/nope/tail", nil, 404, "session_not_found"},
			{"tail: missing scope on an existing session", noRead, "GET", "/v1/sessions/acme-1/tail", nil, 403, "forbidden_scope"},
			{"tail: another tenant's session", globexAll, "GET", "/v1/sessions/acme-1/tail", nil, 403, "forbidden_tenant"},
		}
		upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade"}
		for _, c := range cases {
			h := bearer(c.tok)
			if len(c.path) > 5 && c.path[len(c.path)-5:] == "/tail" {
				h = append(h, upgrade...)
			}
			expectError(t, c.name, do(t, n, c.method, c.path, c.body, h...), c.status, c.code, "")
		}
	})

	t.Run("header routes", func(t *testing.T) {
		// A user token locked to its session, holding session:create,
		// may update and archive that session.
		owner := a.locked("acme", "acme-2", all...)
		r := do(t, n, "PATCH", "/v1/sessions/acme-2", map[string]any{"title": "mine", "expected_version": 1}, bearer(owner)...)
		expectStatus(t, "patch by the locked owner", r, 200)
		expectStatus(t, "archive by the locked owner", do(t, n, "POST", "/v1/sessions/acme-2/archive", nil, bearer(owner)...), 200)
		acme := a.tok("acme", "user:u-1", scRead)
		for q, want := range map[string]string{"": "acme-1", "?archived=true": "acme-2", "?archived=all": "acme-1 acme-2"} {
			ids := listIDs(t, do(t, n, "GET", "/v1/sessions"+q, nil, bearer(acme)...))
			var got []string
			for _, id := range ids {
				if id == "acme-1" || id == "acme-2" {
					got = append(got, id)
				}
			}
			if strings.Join(got, " ") != want {
				t.Errorf("acme list%s: %v, want %s", q, ids, want)
			}
		}
		globex := a.tok("globex", "user:g-1", scRead)
		for _, id := range listIDs(t, do(t, n, "GET", "/v1/sessions?archived=all", nil, bearer(globex)...)) {
			if strings.HasPrefix(id, "acme-") {
				t.Errorf("globex lists %s", id)
			}
		}
		expectStatus(t, "unarchive", do(t, n, "POST", "/v1/sessions/acme-2/unarchive", nil, bearer(owner)...), 200)
	})

	t.Run("principal from the token", func(t *testing.T) {
		svc := a.tok("acme", "svc:billing", all...)
		r := do(t, n, "POST", "/v1/sessions", map[string]any{"id": "svc-1"}, bearer(svc)...)
		expectStatus(t, "create as svc", r, 201)
		var created struct {
			Creator map[string]string `json:"creator_principal"`
		}
		decode(t, r, &created)
		if want := map[string]string{"tenant_id": "acme", "id": "billing", "type": "service"}; !mapsEqual(created.Creator, want) {
			t.Errorf("creator_principal %v, want %v", created.Creator, want)
		}
		withActor := func(actor any) map[string]any {
			b := appendBody("p", 1)
			b["actor"] = actor
			return b
		}
		expectError(t, "actor of the sub as written", do(t, n, "POST", "/v1/sessions/svc-1/append", withActor("svc:billing"), bearer(svc)...), 400, "invalid_event", "")
		expectError(t, "actor of someone else", do(t, n, "POST", "/v1/sessions/svc-1/append", withActor("service:other"), bearer(svc)...), 400, "invalid_event", "")
		expectStatus(t, "normalised actor", do(t, n, "POST", "/v1/sessions/svc-1/append", withActor("service:billing"), bearer(svc)...), 201)
		expectStatus(t, "derived actor", do(t, n, "POST", "/v1/sessions/svc-1/append", appendBody("p", 2), bearer(svc)...), 201)

		var page struct {
			Events []struct {
				Actor    string `json:"actor"`
				TenantID string `json:"tenant_id"`
				Metadata struct {
					Principal map[string]string `json:"starcite_principal"`
				} `json:"metadata"`
			} `json:"events"`
		}
		decode(t, do(t, n, "GET", "/v1/sessions/svc-1/events", nil, bearer(svc)...), &page)
		if len(page.Events) != 2 {
			t.Fatalf("%d events", len(page.Events))
		}
		want := map[string]string{"tenant_id": "acme", "actor": "service:billing", "principal_type": "service", "principal_id": "billing"}
		for i, ev := range page.Events {
			if ev.Actor != "service:billing" || ev.TenantID != "acme" || !mapsEqual(ev.Metadata.Principal, want) {
				raw, _ := json.Marshal(ev)
				t.Errorf("event %d: %s", i+1, raw)
			}
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
