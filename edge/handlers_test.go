package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"starcite/dataplane"
	"starcite/fsm"
)

// The handlers over an in-memory data plane: status, error body and the
// order of the checks of every REST route, without a Raft node.

// fakePlane is an in-memory DataPlane. Sessions are kept by id with their
// events; err, when set, is what every data method returns instead.
type fakePlane struct {
	mu       sync.Mutex
	sessions map[string]fsm.SessionInfo
	events   map[string][]fsm.Event
	err      error
	notReady string
	rd       dataplane.Readiness
	calls    []string // methods called, in order
	listed   []fsm.ListQuery
	appended []fsm.AppendEvent
}

func newFakePlane() *fakePlane {
	f := &fakePlane{sessions: map[string]fsm.SessionInfo{}, events: map[string][]fsm.Event{}}
	for _, s := range []struct{ id, tenant string }{{"s-1", "acme"}, {"s-2", "acme"}, {"g-1", "globex"}} {
		f.sessions[s.id] = fsm.SessionInfo{Header: fsm.Header{ID: s.id, TenantID: s.tenant, Metadata: []byte(`{}`),
			CreatedAt: 1_700_000_000_000_000, UpdatedAt: 1_700_000_000_000_000, Version: 1,
			Creator: fsm.Principal{TenantID: s.tenant, ID: "u-1", Type: "user"}}}
	}
	f.events["s-1"] = []fsm.Event{{Seq: 1, JSON: []byte(`{"seq":1}`)}, {Seq: 2, JSON: []byte(`{"seq":2}`)}}
	s := f.sessions["s-1"]
	s.LastSeq = 2
	f.sessions["s-1"] = s
	return f
}

func (f *fakePlane) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.err
}

func (f *fakePlane) called(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, name)
}

func (f *fakePlane) Create(_ context.Context, c *fsm.CreateSession) error {
	if err := f.call("Create"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[c.Header.ID]; ok {
		return fmt.Errorf("create session %q: %w", c.Header.ID, dataplane.ErrSessionExists)
	}
	f.sessions[c.Header.ID] = fsm.SessionInfo{Header: c.Header}
	return nil
}

func (f *fakePlane) Append(_ context.Context, a *fsm.AppendEvent) (fsm.AppendResult, error) {
	if err := f.call("Append"); err != nil {
		return fsm.AppendResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appended = append(f.appended, *a)
	seq := uint64(len(f.events[a.SessionID]) + 1)
	f.events[a.SessionID] = append(f.events[a.SessionID], fsm.Event{Seq: seq, JSON: a.Body})
	return fsm.AppendResult{Status: fsm.StatusOK, Seq: seq, LastSeq: seq}, nil
}

func (f *fakePlane) Session(_ context.Context, id string) (fsm.SessionInfo, error) {
	if err := f.call("Session"); err != nil {
		return fsm.SessionInfo{}, err
	}
	return f.lookup(id)
}

func (f *fakePlane) SessionState(_ context.Context, id string) (fsm.SessionInfo, error) {
	if err := f.call("SessionState"); err != nil {
		return fsm.SessionInfo{}, err
	}
	return f.lookup(id)
}

func (f *fakePlane) lookup(id string) (fsm.SessionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return s, fmt.Errorf("session %q: %w", id, dataplane.ErrSessionNotFound)
	}
	return s, nil
}

func (f *fakePlane) List(_ context.Context, q fsm.ListQuery) ([]fsm.SessionInfo, error) {
	if err := f.call("List"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed = append(f.listed, q)
	var out []fsm.SessionInfo
	for _, s := range f.sessions {
		if (q.TenantID == "" || s.TenantID == q.TenantID) && (q.OnlyID == "" || s.ID == q.OnlyID) && s.ID > q.After {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b fsm.SessionInfo) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), q.Limit)], nil
}

func (f *fakePlane) Events(_ context.Context, id string, after uint64, limit int, _ bool) (dataplane.Page, error) {
	if err := f.call("Events"); err != nil {
		return dataplane.Page{}, err
	}
	s, err := f.lookup(id)
	if err != nil {
		return dataplane.Page{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := dataplane.Page{TenantID: s.TenantID, LastSeq: uint64(len(f.events[id]))}
	for _, ev := range f.events[id] {
		if ev.Seq > after && len(p.Events) < limit {
			p.Events = append(p.Events, ev)
		}
	}
	return p, nil
}

// UpdateSession applies the update as the state machine does, minus the
// merge (the fake replaces metadata) and the retry recognition.
func (f *fakePlane) UpdateSession(_ context.Context, u *fsm.UpdateSession) (fsm.SessionInfo, error) {
	if err := f.call("UpdateSession"); err != nil {
		return fsm.SessionInfo{}, err
	}
	s, err := f.lookup(u.SessionID)
	if err != nil {
		return s, err
	}
	if u.ExpectedVersion != nil && *u.ExpectedVersion != s.Version {
		return s, &dataplane.ExpectedVersionConflictError{Expected: *u.ExpectedVersion, Current: s.Version}
	}
	if u.SetTitle {
		s.Title = u.Title
	}
	if u.Metadata != nil {
		s.Metadata = u.Metadata
	}
	s.Version++
	s.UpdatedAt = u.At
	f.store(s)
	return s, nil
}

func (f *fakePlane) SetArchived(_ context.Context, a *fsm.SetArchived) (fsm.SessionInfo, error) {
	if err := f.call("SetArchived"); err != nil {
		return fsm.SessionInfo{}, err
	}
	s, err := f.lookup(a.SessionID)
	if err != nil || s.Archived == a.Archived {
		return s, err
	}
	s.Archived, s.UpdatedAt = a.Archived, a.At
	f.store(s)
	return s, nil
}

func (f *fakePlane) store(s fsm.SessionInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[s.ID] = s
}

func (f *fakePlane) Health(bool) (string, dataplane.Readiness) { return f.notReady, f.rd }

// fakeAuth authenticates every request as p, or refuses it with err.
type fakeAuth struct {
	p   Principal
	err *apiError
}

func (a fakeAuth) Authenticate(*fasthttp.RequestCtx) (Principal, *apiError) { return a.p, a.err }

const allScopes = ScopeCreate | ScopeRead | ScopeAppend

// The principals of the tests: tenant acme with every scope, a read-only
// one, one locked to session s-1, and none mode's service principal.
var (
	acmeUser   = Principal{TenantID: "acme", ID: "u-1", Type: "user", Scopes: allScopes}
	acmeReader = Principal{TenantID: "acme", ID: "u-2", Type: "user", Scopes: ScopeRead}
	acmeLocked = Principal{TenantID: "acme", ID: "a-1", Type: "agent", Scopes: allScopes, SessionID: "s-1"}
	acmeNoRead = Principal{TenantID: "acme", ID: "u-3", Type: "user", Scopes: ScopeCreate | ScopeAppend}
)

// testServer is a Server over f whose log lands in logs.
func testServer(f *fakePlane, auth Authenticator, cfg Config) (*Server, *bytes.Buffer) {
	var logs bytes.Buffer
	return NewServer(cfg, f, auth, slog.New(slog.NewTextHandler(&logs, nil))), &logs
}

// request runs one request through Server.Handle in memory.
func request(s *Server, method, uri, contentType, body string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if contentType != "" {
		ctx.Request.Header.SetContentType(contentType)
	}
	ctx.Request.SetBodyString(body)
	s.Handle(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

// wantError checks an error answer: status and the exact body of the
// error catalogue.
func wantError(t *testing.T, what string, resp *fasthttp.Response, e *apiError) {
	t.Helper()
	want := `{"error":"` + e.code + `","message":"` + e.message + `"}`
	if e.message == "" {
		want = `{"error":"` + e.code + `"}`
	}
	if resp.StatusCode() != e.status || string(resp.Body()) != want {
		t.Errorf("%s: %d %s, want %d %s", what, resp.StatusCode(), resp.Body(), e.status, want)
	}
	if ct := string(resp.Header.ContentType()); ct != jsonContentType {
		t.Errorf("%s: content-type %q", what, ct)
	}
}

const appendJSON = `{"type":"t","payload":{"n":1},"producer_id":"w","producer_seq":1}`

// TestHandlerErrors: every route's refusals, in the order of its checks.
// Each case is built so that an earlier check passing wrongly, or a later
// one running first, gives a different answer.
func TestHandlerErrors(t *testing.T) {
	expired := errUnauthorized
	tests := []struct {
		name       string
		p          Principal
		authErr    *apiError
		planeErr   error
		method     string
		uri        string
		ct, body   string
		want       *apiError
		touchPlane bool // whether the data plane may be asked at all
	}{
		// POST /v1/sessions: auth, scope, content type, body, id lock.
		{name: "create unauthenticated", authErr: expired, method: "POST", uri: "/v1/sessions", ct: "text/plain", body: "x", want: expired},
		{name: "create scope before content type", p: acmeReader, method: "POST", uri: "/v1/sessions", ct: "text/plain", body: "x", want: errForbiddenScope},
		{name: "create content type before body", p: acmeUser, method: "POST", uri: "/v1/sessions", ct: "text/plain", body: "x", want: errUnsupportedMediaType},
		{name: "create bad body", p: acmeUser, method: "POST", uri: "/v1/sessions", ct: "application/json", body: "[]", want: errInvalidSession},
		{name: "create bad id", p: acmeUser, method: "POST", uri: "/v1/sessions", ct: "application/json", body: `{"id":7}`, want: errInvalidEvent},
		{name: "create id outside lock", p: acmeLocked, method: "POST", uri: "/v1/sessions", ct: "application/json", body: `{"id":"s-9","metadata":[]}`, want: errForbiddenSession},
		{name: "create bad metadata", p: acmeUser, method: "POST", uri: "/v1/sessions", ct: "application/json", body: `{"id":"s-9","metadata":[]}`, want: errInvalidMetadata},
		{name: "create taken id", p: acmeUser, method: "POST", uri: "/v1/sessions", ct: "application/json", body: `{"id":"s-1"}`, want: errSessionExists, touchPlane: true},
		{name: "create plane timeout", p: acmeUser, planeErr: dataplane.ErrTimeout, method: "POST", uri: "/v1/sessions", ct: "application/json", body: `{}`, want: errRaftTimeout, touchPlane: true},

		// GET /v1/sessions: auth, query, scope.
		{name: "list unauthenticated", authErr: expired, method: "GET", uri: "/v1/sessions?limit=0", want: expired},
		{name: "list query before scope", p: acmeNoRead, method: "GET", uri: "/v1/sessions?limit=0", want: errInvalidLimit},
		{name: "list scope", p: acmeNoRead, method: "GET", uri: "/v1/sessions", want: errForbiddenScope},
		{name: "list plane down", p: acmeUser, planeErr: dataplane.ErrUnavailable, method: "GET", uri: "/v1/sessions", want: errArchiveReadUnavailable, touchPlane: true},

		{name: "list archived before metadata filters", p: acmeUser, method: "GET", uri: "/v1/sessions?archived=False&metadata.k=%00", want: errInvalidListQuery},
		{name: "list cursor before archived", p: acmeUser, method: "GET", uri: "/v1/sessions?archived=x&cursor=", want: errInvalidCursor},
		{name: "list archived before scope", p: acmeNoRead, method: "GET", uri: "/v1/sessions?archived=", want: errInvalidListQuery},
		{name: "list archived list form", p: acmeUser, method: "GET", uri: "/v1/sessions?archived[]=true", want: errInvalidListQuery},
		{name: "list archived 1", p: acmeUser, method: "GET", uri: "/v1/sessions?archived=1", want: errInvalidListQuery},

		// GET /v1/sessions/{id}: auth, scope, lock, lookup, tenant.
		{name: "get unauthenticated", authErr: expired, method: "GET", uri: "/v1/sessions/nope", want: expired},
		{name: "get scope before lock", p: Principal{TenantID: "acme", ID: "a-2", Type: "agent", Scopes: ScopeAppend, SessionID: "s-1"},
			method: "GET", uri: "/v1/sessions/nope", want: errForbiddenScope},
		{name: "get lock before lookup", p: acmeLocked, method: "GET", uri: "/v1/sessions/nope", want: errForbiddenSession},
		{name: "get lookup", p: acmeReader, method: "GET", uri: "/v1/sessions/nope", want: errSessionNotFound, touchPlane: true},
		{name: "get tenant", p: acmeReader, method: "GET", uri: "/v1/sessions/g-1", want: errForbiddenTenant, touchPlane: true},
		{name: "get plane down", p: acmeReader, planeErr: dataplane.ErrUnavailable, method: "GET", uri: "/v1/sessions/s-1", want: errRaftUnavailable, touchPlane: true},

		// PATCH /v1/sessions/{id}: auth, content type, body, scope, lock, lookup, tenant.
		{name: "patch unauthenticated", authErr: expired, method: "PATCH", uri: "/v1/sessions/nope", ct: "text/plain", body: "x", want: expired},
		{name: "patch content type", p: acmeReader, method: "PATCH", uri: "/v1/sessions/nope", ct: "text/plain", body: "x", want: errUnsupportedMediaType},
		{name: "patch body before scope", p: acmeReader, method: "PATCH", uri: "/v1/sessions/nope", ct: "application/json", body: `{}`, want: errInvalidSession},
		{name: "patch scope before lock", p: acmeReader, method: "PATCH", uri: "/v1/sessions/nope", ct: "application/json", body: `{"title":"x"}`, want: errForbiddenScope},
		{name: "patch lock before lookup", p: acmeLocked, method: "PATCH", uri: "/v1/sessions/nope", ct: "application/json", body: `{"title":"x"}`, want: errForbiddenSession},
		{name: "patch lookup", p: acmeUser, method: "PATCH", uri: "/v1/sessions/nope", ct: "application/json", body: `{"title":"x"}`, want: errSessionNotFound, touchPlane: true},
		{name: "patch tenant", p: acmeUser, method: "PATCH", uri: "/v1/sessions/g-1", ct: "application/json", body: `{"title":"x"}`, want: errForbiddenTenant, touchPlane: true},
		{name: "patch plane timeout", p: acmeUser, planeErr: dataplane.ErrTimeout, method: "PATCH", uri: "/v1/sessions/s-1", ct: "application/json", body: `{"title":"x"}`, want: errRaftTimeout, touchPlane: true},

		// POST /v1/sessions/{id}/archive and /unarchive: auth, scope, lock, lookup, tenant; the body is ignored.
		{name: "archive unauthenticated", authErr: expired, method: "POST", uri: "/v1/sessions/nope/archive", want: expired},
		{name: "archive scope before lock", p: Principal{TenantID: "acme", ID: "a-2", Type: "agent", Scopes: ScopeRead, SessionID: "s-1"},
			method: "POST", uri: "/v1/sessions/nope/archive", ct: "text/plain", body: "x", want: errForbiddenScope},
		{name: "archive lock before lookup", p: acmeLocked, method: "POST", uri: "/v1/sessions/nope/archive", want: errForbiddenSession},
		{name: "archive lookup", p: acmeUser, method: "POST", uri: "/v1/sessions/nope/archive", ct: "text/plain", body: "x", want: errSessionNotFound, touchPlane: true},
		{name: "unarchive tenant", p: acmeUser, method: "POST", uri: "/v1/sessions/g-1/unarchive", want: errForbiddenTenant, touchPlane: true},

		// POST /v1/sessions/{id}/append: auth, session checks, content type, body.
		{name: "append session before content type", p: acmeUser, method: "POST", uri: "/v1/sessions/nope/append", ct: "text/plain", body: "x", want: errSessionNotFound, touchPlane: true},
		{name: "append scope before content type", p: acmeReader, method: "POST", uri: "/v1/sessions/s-1/append", ct: "text/plain", body: "x", want: errForbiddenScope, touchPlane: true},
		{name: "append content type before body", p: acmeUser, method: "POST", uri: "/v1/sessions/s-1/append", ct: "text/plain", body: "x", want: errUnsupportedMediaType, touchPlane: true},
		{name: "append bad body", p: acmeUser, method: "POST", uri: "/v1/sessions/s-1/append", ct: "application/json", body: `{"type":"t"}`, want: errInvalidEvent, touchPlane: true},
		{name: "append other tenant", p: acmeUser, method: "POST", uri: "/v1/sessions/g-1/append", ct: "application/json", body: appendJSON, want: errForbiddenTenant, touchPlane: true},
		{name: "append lock", p: acmeLocked, method: "POST", uri: "/v1/sessions/s-2/append", ct: "application/json", body: appendJSON, want: errForbiddenSession},

		// GET /v1/sessions/{id}/events: auth, query, session checks.
		{name: "events query before session", p: acmeUser, method: "GET", uri: "/v1/sessions/nope/events?cursor=-1", want: errInvalidCursor},
		{name: "events limit", p: acmeUser, method: "GET", uri: "/v1/sessions/s-1/events?limit=0", want: errInvalidLimit},
		{name: "events missing session", p: acmeUser, method: "GET", uri: "/v1/sessions/nope/events", want: errSessionNotFound, touchPlane: true},
		{name: "events archive down", p: acmeUser, planeErr: dataplane.ErrArchiveUnavailable, method: "GET", uri: "/v1/sessions/s-1/events", want: errArchiveReadUnavailable, touchPlane: true},

		// GET /v1/sessions/{id}/tail: auth, upgrade header, query, session checks.
		{name: "tail unauthenticated", authErr: expired, method: "GET", uri: "/v1/sessions/s-1/tail", want: expired},
		{name: "tail without upgrade", p: acmeUser, method: "GET", uri: "/v1/sessions/nope/tail?cursor=x", want: errInvalidUpgrade},

		{name: "unknown route", p: acmeUser, method: "DELETE", uri: "/v1/sessions/s-1", want: errNotFound},
		{name: "bad escape", p: acmeUser, method: "GET", uri: "/v1/sessions/%zz", want: errNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePlane()
			s, _ := testServer(f, fakeAuth{tc.p, tc.authErr}, Config{Node: "n@h", WriteNode: true})
			if tc.planeErr != nil {
				f.err = fmt.Errorf("group 3: %w", tc.planeErr)
			}
			resp := request(s, tc.method, tc.uri, tc.ct, tc.body)
			wantError(t, tc.name, resp, tc.want)
			if !tc.touchPlane && len(f.calls) > 0 {
				t.Errorf("data plane asked (%v) although an earlier check refuses", f.calls)
			}
			if tc.want == expired {
				if c := string(resp.Header.Peek("www-authenticate")); c != `Bearer realm="starcite", error="invalid_token"` {
					t.Errorf("www-authenticate %q", c)
				}
			}
			if len(f.appended) > 0 {
				t.Errorf("an append reached the data plane: %+v", f.appended)
			}
		})
	}
}

// TestHandlersSucceed: the success answers of the REST routes and what
// they ask of the data plane.
func TestHandlersSucceed(t *testing.T) {
	f := newFakePlane()
	s, _ := testServer(f, fakeAuth{p: acmeUser}, Config{Node: "n@h", WriteNode: true})

	resp := request(s, "POST", "/v1/sessions", "application/json", `{"id":"s-3","title":"T","metadata":{"k":"v"}}`)
	var created map[string]any
	if err := json.Unmarshal(resp.Body(), &created); err != nil || resp.StatusCode() != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode(), resp.Body())
	}
	if created["created_at"] != created["updated_at"] || !strings.HasSuffix(created["created_at"].(string), "Z") {
		t.Errorf("create timestamps %s", resp.Body())
	}
	delete(created, "created_at")
	delete(created, "updated_at")
	if got, _ := json.Marshal(created); string(got) != `{"archived":false,"creator_principal":{"id":"u-1","tenant_id":"acme","type":"user"},"id":"s-3","last_seq":0,"metadata":{"k":"v"},"tenant_id":"acme","title":"T","version":1}` {
		t.Errorf("create body %s", resp.Body())
	}
	if st := f.sessions["s-3"]; st.TenantID != "acme" || st.Creator.ID != "u-1" {
		t.Errorf("created session %+v", st)
	}

	// A session-locked token without an id creates its own session.
	fl := newFakePlane()
	delete(fl.sessions, "s-1")
	sl, _ := testServer(fl, fakeAuth{p: acmeLocked}, Config{})
	if resp := request(sl, "POST", "/v1/sessions", "application/json", `{}`); resp.StatusCode() != 201 || !strings.Contains(string(resp.Body()), `"id":"s-1"`) {
		t.Errorf("locked create: %d %s", resp.StatusCode(), resp.Body())
	}

	resp = request(s, "GET", "/v1/sessions?limit=1", "", "")
	if resp.StatusCode() != 200 || !strings.HasSuffix(string(resp.Body()), `],"next_cursor":"s-1"}`) || strings.Contains(string(resp.Body()), `"s-2"`) {
		t.Errorf("list: %d %s", resp.StatusCode(), resp.Body())
	}
	if q := f.listed[0]; q.TenantID != "acme" || q.Limit != 2 || q.After != "" {
		t.Errorf("list asked %+v, want tenant acme, limit+1", q)
	}
	resp = request(s, "GET", "/v1/sessions?cursor=s-2", "", "")
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"s-3"`) || !strings.HasSuffix(string(resp.Body()), `"next_cursor":null}`) {
		t.Errorf("list after s-2: %d %s", resp.StatusCode(), resp.Body())
	}

	resp = request(s, "GET", "/v1/sessions/s-1", "", "")
	if resp.StatusCode() != 200 || string(resp.Body()) != `{"id":"s-1","title":null,"tenant_id":"acme",`+
		`"creator_principal":{"tenant_id":"acme","id":"u-1","type":"user"},"metadata":{},`+
		`"created_at":"2023-11-14T22:13:20.000000Z","updated_at":"2023-11-14T22:13:20.000000Z","version":1,`+
		`"archived":false,"last_seq":2,"archived_seq":0}` {
		t.Errorf("get: %d %s", resp.StatusCode(), resp.Body())
	}
	if !f.called("SessionState") {
		t.Error("get did not read the session through SessionState")
	}

	resp = request(s, "POST", "/v1/sessions/s-1/append", "application/json; charset=utf-8", appendJSON)
	if resp.StatusCode() != 201 || string(resp.Body()) != `{"seq":3,"last_seq":3,"deduped":false,"cursor":3,"committed_cursor":0}` {
		t.Errorf("append: %d %s", resp.StatusCode(), resp.Body())
	}
	if a := f.appended[0]; a.SessionID != "s-1" || a.ProducerID != "w" || a.ProducerSeq != 1 || a.RequestID == 0 ||
		!bytes.Contains(a.Body, []byte(`"payload":{"n":1}`)) {
		t.Errorf("append command %+v", a)
	}

	resp = request(s, "GET", "/v1/sessions/s-1/events?cursor=1&limit=1", "", "")
	if resp.StatusCode() != 200 || string(resp.Body()) != `{"events":[{"seq":2}],"next_cursor":2,"last_seq":3}` {
		t.Errorf("events: %d %s", resp.StatusCode(), resp.Body())
	}
	resp = request(s, "GET", "/v1/sessions/s-2/events", "", "")
	if resp.StatusCode() != 200 || string(resp.Body()) != `{"events":[],"next_cursor":null,"last_seq":0}` {
		t.Errorf("events of an empty session: %d %s", resp.StatusCode(), resp.Body())
	}
}

// TestAuthorizeSession: the shared session checks in their order — lock,
// lookup, scope, tenant — and which of them need the lookup.
func TestAuthorizeSession(t *testing.T) {
	open := nonePrincipal
	tests := []struct {
		name   string
		p      Principal
		id     string
		scope  Scope
		want   *apiError
		lookup bool
	}{
		{"lock refuses without a lookup", acmeLocked, "s-2", ScopeRead, errForbiddenSession, false},
		{"lock allows its session", acmeLocked, "s-1", ScopeAppend, nil, true},
		{"missing before scope", acmeNoRead, "nope", ScopeRead, errSessionNotFound, true},
		{"scope before tenant", acmeNoRead, "g-1", ScopeRead, errForbiddenScope, true},
		{"tenant", acmeUser, "g-1", ScopeRead, errForbiddenTenant, true},
		{"own tenant", acmeReader, "s-2", ScopeRead, nil, true},
		{"none mode passes every check", open, "g-1", ScopeAppend, nil, true},
		{"none mode still needs the session", open, "nope", ScopeRead, errSessionNotFound, true},
	}
	for _, tc := range tests {
		f := newFakePlane()
		s, _ := testServer(f, nil, Config{})
		var ctx fasthttp.RequestCtx
		info, aerr := s.authorizeSession(&ctx, &tc.p, tc.id, tc.scope)
		if aerr != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, aerr, tc.want)
		}
		if aerr == nil && info.ID != tc.id {
			t.Errorf("%s: session %q returned for %q", tc.name, info.ID, tc.id)
		}
		if f.called("Session") != tc.lookup {
			t.Errorf("%s: looked up %v, want %v", tc.name, f.called("Session"), tc.lookup)
		}
	}
}

// TestDataError: each error of the data plane, wrapped as it travels,
// maps to its API error; only what the client cannot be told is logged.
func TestDataError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
		logged bool
	}{
		{dataplane.ErrSessionNotFound, 404, `{"error":"session_not_found","message":"Session was not found"}`, false},
		{dataplane.ErrSessionExists, 409, `{"error":"session_exists","message":"Session already exists"}`, false},
		{&dataplane.ExpectedSeqConflictError{Expected: 4, Current: 7}, 409,
			`{"error":"expected_seq_conflict","message":"Expected seq 4, current seq is 7"}`, false},
		{&dataplane.ProducerSeqConflictError{ProducerID: "w", Expected: 3, Got: 5}, 409,
			`{"error":"producer_seq_conflict","message":"Producer w expected seq 3, got 5"}`, false},
		{dataplane.ErrProducerReplayConflict, 409,
			`{"error":"producer_replay_conflict","message":"Producer sequence was already used with different event content"}`, false},
		{dataplane.ErrBacklog, 429, `{"error":"event_store_backpressure","message":"Node is backpressuring writes due to event-store capacity"}`, false},
		{&dataplane.ExpectedVersionConflictError{Expected: 2, Current: 5}, 409,
			`{"error":"expected_version_conflict","message":"Expected version 2, current version is 5","current_version":5}`, false},
		{dataplane.ErrMetadataTooLarge, 400, `{"error":"invalid_metadata","message":"Invalid metadata payload"}`, false},
		{dataplane.ErrTimeout, 503, `{"error":"raft_timeout","message":"Cluster request timed out"}`, true},
		{dataplane.ErrUnavailable, 503, `{"error":"raft_unavailable","message":"No available replicas"}`, true},
		{dataplane.ErrArchiveUnavailable, 503, `{"error":"archive_read_unavailable","message":"Archive read unavailable"}`, true},
		{dataplane.ErrReplayGap, 503, `{"error":"replay_unavailable","message":"Ordered replay unavailable"}`, true},
		{errors.New("disk on fire"), 500, `{"error":"internal_error","message":"Internal server error"}`, true},
	}
	for _, tc := range tests {
		s, logs := testServer(newFakePlane(), nil, Config{})
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/v1/sessions/s-1/append?access_token=secret")
		writeError(&ctx, s.dataError(&ctx, fmt.Errorf("append to s-1 via n2: %w", tc.err)))
		if got := string(ctx.Response.Body()); ctx.Response.StatusCode() != tc.status || got != tc.body {
			t.Errorf("%v: %d %s, want %d %s", tc.err, ctx.Response.StatusCode(), got, tc.status, tc.body)
		}
		if ra := string(ctx.Response.Header.Peek("Retry-After")); (tc.status == 429) != (ra == "1") {
			t.Errorf("%v: Retry-After %q", tc.err, ra)
		}
		if logged := logs.Len() > 0; logged != tc.logged {
			t.Errorf("%v: logged %v, want %v: %s", tc.err, logged, tc.logged, logs)
		}
		if strings.Contains(logs.String(), "secret") {
			t.Errorf("%v: the log shows the access token: %s", tc.err, logs)
		}
	}
}

// TestHealth: /health/live always answers; /health/ready answers what
// the data plane's readiness rule says, with the probe's detail for the
// consensus reasons.
func TestHealth(t *testing.T) {
	probe := dataplane.Readiness{Started: true, At: time.Now(),
		Probe: dataplane.Probe{CheckedGroups: 3, FailingGroup: 3, Result: "leader_unknown"}}
	detail := `,"detail":{"startup_mode":"write","consensus_ready?":false,"consensus_probe_fresh?":true,"consensus_probe_age_ms":0,` +
		`"checked_groups":3,"failing_group_id":3,"probe_result":"leader_unknown"}`
	tests := []struct {
		writeNode bool
		notReady  string
		rd        dataplane.Readiness
		status    int
		body      string
	}{
		{true, "", dataplane.Readiness{}, 200, `{"status":"ok","mode":"write_node"}`},
		{false, "", dataplane.Readiness{}, 200, `{"status":"ok","mode":"router_node"}`},
		{true, dataplane.NotReadyDraining, probe, 503, `{"status":"starting","mode":"write_node","reason":"draining"}`},
		{true, dataplane.NotReadyObserverSync, probe, 503, `{"status":"starting","mode":"write_node","reason":"observer_sync"}`},
		{true, dataplane.NotReadyRaftSync, probe, 503, `{"status":"starting","mode":"write_node","reason":"raft_sync"` + detail + `}`},
		{false, dataplane.NotReadyRouterSync, dataplane.Readiness{Probe: dataplane.Probe{FailingGroup: -1, Result: "startup_sync"}}, 503,
			`{"status":"starting","mode":"router_node","reason":"router_sync","detail":{"startup_mode":null,"consensus_ready?":false,` +
				`"consensus_probe_fresh?":false,"consensus_probe_age_ms":null,"checked_groups":0,"failing_group_id":null,"probe_result":"startup_sync"}}`},
	}
	for _, tc := range tests {
		f := newFakePlane()
		f.notReady, f.rd = tc.notReady, tc.rd
		s, _ := testServer(f, fakeAuth{err: errUnauthorized}, Config{WriteNode: tc.writeNode})
		resp := request(s, "GET", "/health/ready", "", "")
		if resp.StatusCode() != tc.status || string(resp.Body()) != tc.body {
			t.Errorf("ready (%q): %d %s\nwant %d %s", tc.notReady, resp.StatusCode(), resp.Body(), tc.status, tc.body)
		}
		if resp := request(s, "GET", "/health/live", "", ""); resp.StatusCode() != 200 || string(resp.Body()) != `{"status":"ok"}` {
			t.Errorf("live: %d %s", resp.StatusCode(), resp.Body())
		}
	}
}

// tailRecorder is a TailServer that records the tails it is handed and
// closes them.
type tailRecorder struct{ got chan Tail }

func (r tailRecorder) Serve(conn *websocket.Conn, t Tail) {
	r.got <- t
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	conn.Close()
}

// TestTailUpgrade: a valid tail request upgrades (over fasthttp's
// in-memory listener) and hands the TailServer the validated request;
// the session checks run before the upgrade.
func TestTailUpgrade(t *testing.T) {
	rec := tailRecorder{got: make(chan Tail, 1)}
	p := acmeUser
	p.Expires = 1_900_000_000
	s, _ := testServer(newFakePlane(), fakeAuth{p: p}, Config{Tails: rec})
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go s.HTTPServer().Serve(ln)
	dialer := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return ln.Dial() }}

	conn, resp, err := dialer.Dial("ws://starcite/v1/sessions/s-1/tail?cursor=1&batch_size=5", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	select {
	case got := <-rec.got:
		if want := (Tail{SessionID: "s-1", TenantID: "acme", Cursor: 1, BatchSize: 5, Expires: 1_900_000_000}); got != want {
			t.Errorf("tail %+v, want %+v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the TailServer was not handed the tail")
	}

	_, resp, err = dialer.Dial("ws://starcite/v1/sessions/g-1/tail", nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("tail of another tenant: %v %v", err, resp)
	}
	select {
	case got := <-rec.got:
		t.Errorf("refused tail reached the TailServer: %+v", got)
	default:
	}
}

func TestDecodePatchBody(t *testing.T) {
	big := `"` + strings.Repeat("x", fsm.MaxMetadataBytes) + `"`
	tests := []struct {
		body     string
		want     *apiError
		setTitle bool
		title    string // "<nil>" for a null title
		meta     string
		expected uint64 // 0: none
	}{
		{body: ``, want: errInvalidSession},
		{body: `{}`, want: errInvalidSession},
		{body: `{"other":1}`, want: errInvalidSession},
		{body: `[]`, want: errInvalidSession},
		{body: `{"title":`, want: errInvalidSession},
		{body: `{"title":1}`, want: errInvalidSession},
		{body: `{"title":1,"metadata":[]}`, want: errInvalidSession},
		{body: `{"title":"` + strings.Repeat("t", fsm.MaxTitleBytes+1) + `"}`, want: errInvalidSession},
		{body: `{"metadata":null}`, want: errInvalidMetadata},
		{body: `{"metadata":[]}`, want: errInvalidMetadata},
		{body: `{"metadata":"x","expected_version":0}`, want: errInvalidMetadata},
		{body: `{"metadata":{"k":` + big + `}}`, want: errInvalidMetadata},
		{body: `{"metadata":{}}`, want: errInvalidSession},
		{body: `{"metadata":{},"expected_version":"x"}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":0}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":-1}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":2.0}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":"x"}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":true}`, want: errInvalidSession},
		{body: `{"title":"t","expected_version":9223372036854775808}`, want: errInvalidSession},
		{body: `{"title":null}`, setTitle: true, title: "<nil>"},
		{body: `{"title":""}`, setTitle: true, title: ""},
		{body: `{"title":"T","metadata":{}}`, setTitle: true, title: "T", meta: `{}`},
		{body: ` {"metadata":{"b":1,"a":{"z":null}}} `, meta: `{"a":{"z":null},"b":1}`},
		{body: `{"metadata":{"a":1},"expected_version":null}`, meta: `{"a":1}`},
		{body: `{"title":"t","expected_version":3}`, setTitle: true, title: "t", expected: 3},
		{body: `{"title":"t","expected_version":"3"}`, setTitle: true, title: "t", expected: 3},
		{body: `{"title":"t","extra":[1],"creator_principal":{}}`, setTitle: true, title: "t"},
	}
	for _, tc := range tests {
		b, err := decodePatchBody([]byte(tc.body))
		if err != tc.want {
			t.Errorf("%.60s: error %v, want %v", tc.body, err, tc.want)
			continue
		}
		if err != nil {
			continue
		}
		title := "<nil>"
		if b.title != nil {
			title = *b.title
		}
		var exp uint64
		if b.expectedVersion != nil {
			exp = *b.expectedVersion
		}
		if b.setTitle != tc.setTitle || (tc.setTitle && title != tc.title) || string(b.metadata) != tc.meta || exp != tc.expected {
			t.Errorf("%s: decoded %+v (title %q, metadata %s, expected %d)", tc.body, b, title, b.metadata, exp)
		}
	}
}

// TestHeaderRoutes: PATCH, archive and unarchive answers, and the list
// filter reaching the data plane.
func TestHeaderRoutes(t *testing.T) {
	f := newFakePlane()
	s, _ := testServer(f, fakeAuth{p: acmeUser}, Config{})
	resp := request(s, "PATCH", "/v1/sessions/s-1", "application/json", `{"title":"Final","metadata":{"k":"v"},"expected_version":1}`)
	body := string(resp.Body())
	if resp.StatusCode() != 200 || !strings.HasPrefix(body, `{"id":"s-1","title":"Final","tenant_id":"acme","creator_principal":`) ||
		!strings.Contains(body, `"metadata":{"k":"v"},"created_at":"2023-11-14T22:13:20.000000Z","updated_at":"`) ||
		!strings.HasSuffix(body, `"version":2,"archived":false,"last_seq":2}`) {
		t.Errorf("patch: %d %s", resp.StatusCode(), body)
	}
	resp = request(s, "PATCH", "/v1/sessions/s-1", "application/json", `{"title":"Again","expected_version":"1"}`)
	if resp.StatusCode() != 409 || string(resp.Body()) !=
		`{"error":"expected_version_conflict","message":"Expected version 1, current version is 2","current_version":2}` {
		t.Errorf("conflict: %d %s", resp.StatusCode(), resp.Body())
	}
	for _, step := range []struct{ path, want string }{
		{"archive", `"version":2,"archived":true}`},
		{"archive", `"version":2,"archived":true}`},
		{"unarchive", `"version":2,"archived":false}`},
	} {
		resp = request(s, "POST", "/v1/sessions/s-1/"+step.path, "application/json", `{}`)
		if resp.StatusCode() != 200 || !strings.HasSuffix(string(resp.Body()), step.want) ||
			strings.Contains(string(resp.Body()), "last_seq") {
			t.Errorf("%s: %d %s", step.path, resp.StatusCode(), resp.Body())
		}
	}
	for query, want := range map[string]fsm.ArchivedFilter{"": fsm.NotArchived, "?archived=false": fsm.NotArchived,
		"?archived=true": fsm.OnlyArchived, "?archived=all": fsm.AnyArchived} {
		f.listed = nil
		if resp := request(s, "GET", "/v1/sessions"+query, "", ""); resp.StatusCode() != 200 || len(f.listed) != 1 ||
			f.listed[0].Archived != want {
			t.Errorf("list%s: %d, asked %+v", query, resp.StatusCode(), f.listed)
		}
	}
}

// TestCORS: every answer is readable by any origin without credentials,
// refusals included, and a preflight is answered 204 before
// authentication, on any path.
func TestCORS(t *testing.T) {
	s, _ := testServer(newFakePlane(), fakeAuth{err: errUnauthorized}, Config{})
	preflight := func(method, path string, h map[string]string) *fasthttp.Response {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		for k, v := range h {
			ctx.Request.Header.Set(k, v)
		}
		s.Handle(&ctx)
		var resp fasthttp.Response
		ctx.Response.CopyTo(&resp)
		return &resp
	}
	for _, path := range []string{"/v1/sessions/s-1", "/v1/nowhere"} {
		resp := preflight("OPTIONS", path, map[string]string{"Origin": "https://app.example",
			"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,content-type"})
		h := &resp.Header
		if resp.StatusCode() != 204 || len(resp.Body()) != 0 ||
			string(h.Peek("Access-Control-Allow-Methods")) != "GET,POST,PUT,PATCH,DELETE,OPTIONS" ||
			string(h.Peek("Access-Control-Allow-Headers")) != "authorization,content-type" ||
			string(h.Peek("Access-Control-Max-Age")) != "1728000" || string(h.Peek("Access-Control-Allow-Origin")) != "*" {
			t.Errorf("preflight %s: %d %q %s", path, resp.StatusCode(), resp.Body(), h.String())
		}
	}
	for _, c := range []struct {
		method string
		h      map[string]string
		status int
	}{
		{"GET", nil, 401}, // refused: still readable
		{"OPTIONS", map[string]string{"Origin": "x"}, 404}, // not a preflight
		{"OPTIONS", map[string]string{"Access-Control-Request-Method": "GET"}, 404},
	} {
		resp := preflight(c.method, "/v1/sessions", c.h)
		h := &resp.Header
		if resp.StatusCode() != c.status || string(h.Peek("Access-Control-Allow-Origin")) != "*" ||
			string(h.Peek("Access-Control-Expose-Headers")) != "*" || len(h.Peek("Access-Control-Allow-Credentials")) != 0 ||
			len(h.Peek("Access-Control-Allow-Methods")) != 0 {
			t.Errorf("%s %v: %d %s", c.method, c.h, resp.StatusCode(), h.String())
		}
	}
}
