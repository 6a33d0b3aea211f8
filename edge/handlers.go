package edge

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"starcite/dataplane"
	"starcite/fsm"
)

// requestTimeout bounds the data-plane work of one request. The write path
// keeps its own, shorter per-attempt timeouts
// (docs/operations.md#failures-and-timeouts); this is the outer limit so
// nothing waits forever.
const requestTimeout = 10 * time.Second

func requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

// create: POST /v1/sessions, checks in the order of docs/api.md#create.
func (s *Server) create(ctx *fasthttp.RequestCtx, _ string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if !p.Has(ScopeCreate) {
		writeError(ctx, errForbiddenScope)
		return
	}
	if !contentTypeOK(ctx.Request.Header.ContentType()) {
		writeError(ctx, errUnsupportedMediaType)
		return
	}
	body, aerr := decodeCreateBody(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if body.badID {
		writeError(ctx, errInvalidEvent)
		return
	}
	var id string
	switch {
	case body.ID != nil && !p.AllowsSession(*body.ID):
		writeError(ctx, errForbiddenSession)
		return
	case body.ID != nil:
		id = *body.ID
	case p.SessionID != "":
		id = p.SessionID // a session-locked token creates its own session
	default:
		id = newSessionID()
	}
	if body.badTitle {
		writeError(ctx, errInvalidEvent)
		return
	}
	if body.badMetadata {
		writeError(ctx, errInvalidMetadata)
		return
	}
	h := fsm.Header{ID: id, TenantID: p.TenantID, Title: body.Title,
		Creator: fsm.Principal{TenantID: p.TenantID, ID: p.ID, Type: p.Type}, Metadata: body.Metadata,
		CreatedAt: nowMicro()}
	rctx, cancel := requestContext()
	defer cancel()
	if err := s.plane.Create(rctx, &fsm.CreateSession{RequestID: requestID(), Header: h}); err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	// What the state machine made of it: version 1, updated_at = created_at.
	info := fsm.SessionInfo{Header: h}
	info.UpdatedAt, info.Version = h.CreatedAt, 1
	writeJSON(ctx, fasthttp.StatusCreated, appendSession(make([]byte, 0, 320+len(info.Metadata)), &info, withLastSeq))
}

// list: GET /v1/sessions. Query validation comes before the scope check
// (docs/api.md#list).
func (s *Server) list(ctx *fasthttp.RequestCtx, _ string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	q, aerr := parseListQuery(ctx.URI().QueryString())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if !p.Has(ScopeRead) {
		writeError(ctx, errForbiddenScope)
		return
	}
	lq := fsm.ListQuery{Archived: q.archived, Filters: q.filters, Limit: q.limit + 1}
	if q.cursor != nil {
		lq.After = *q.cursor
	}
	if !p.open {
		lq.TenantID = p.TenantID
		lq.OnlyID = p.SessionID
	}
	rctx, cancel := requestContext()
	defer cancel()
	sessions, err := s.plane.List(rctx, lq)
	if err != nil {
		s.log.Warn("list sessions failed", "err", err)
		writeError(ctx, errArchiveReadUnavailable)
		return
	}
	more := len(sessions) > q.limit
	if more {
		sessions = sessions[:q.limit]
	}
	b := make([]byte, 0, 64+200*len(sessions))
	b = append(b, `{"sessions":[`...)
	for i := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSession(b, &sessions[i], 0)
	}
	b = append(b, `],"next_cursor":`...)
	if more {
		b = appendOptString(b, &sessions[len(sessions)-1].ID)
	} else {
		b = append(b, "null"...)
	}
	writeJSON(ctx, fasthttp.StatusOK, append(b, '}'))
}

// authorizeSession runs the session checks shared by append, tail and the
// read routes, in the order of docs/api.md#authorization: session lock,
// lookup, scope, tenant. A session of another tenant is 403 only once the
// scope matches.
func (s *Server) authorizeSession(ctx *fasthttp.RequestCtx, p *Principal, id string, scope Scope) (fsm.SessionInfo, *apiError) {
	if !p.AllowsSession(id) {
		return fsm.SessionInfo{}, errForbiddenSession
	}
	rctx, cancel := requestContext()
	defer cancel()
	info, err := s.plane.Session(rctx, id)
	if err != nil {
		return fsm.SessionInfo{}, s.dataError(ctx, err)
	}
	if !p.Has(scope) {
		return fsm.SessionInfo{}, errForbiddenScope
	}
	if !p.AllowsTenant(info.TenantID) {
		return fsm.SessionInfo{}, errForbiddenTenant
	}
	return info, nil
}

// append: POST /v1/sessions/{id}/append.
func (s *Server) append(ctx *fasthttp.RequestCtx, id string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	info, aerr := s.authorizeSession(ctx, &p, id, ScopeAppend)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if !contentTypeOK(ctx.Request.Header.ContentType()) {
		writeError(ctx, errUnsupportedMediaType)
		return
	}
	body, aerr := decodeAppendBody(ctx.PostBody(), &p)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	c := &body.Content
	cmd := fsm.AppendEvent{RequestID: requestID(), SessionID: id, ProducerID: c.ProducerID,
		ProducerSeq: c.ProducerSeq, ExpectedSeq: body.ExpectedSeq, Hash: c.Hash(),
		Body: fsm.AppendBody(make([]byte, 0, 256+len(c.Payload)+len(c.Metadata)), c, nowMicro(), info.TenantID)}
	rctx, cancel := requestContext()
	defer cancel()
	r, err := s.plane.Append(rctx, &cmd)
	if err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"last_seq":`...)
	b = strconv.AppendUint(b, r.LastSeq, 10)
	b = append(b, `,"deduped":`...)
	b = strconv.AppendBool(b, r.Status == fsm.StatusDeduped)
	b = append(b, `,"cursor":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"committed_cursor":`...)
	b = strconv.AppendUint(b, r.ArchivedSeq, 10)
	writeJSON(ctx, fasthttp.StatusCreated, append(b, '}'))
}

// getSession: GET /v1/sessions/{id} (docs/api.md#get-a-session): scope,
// session lock, lookup, tenant, in that order.
func (s *Server) getSession(ctx *fasthttp.RequestCtx, id string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if !p.Has(ScopeRead) {
		writeError(ctx, errForbiddenScope)
		return
	}
	if !p.AllowsSession(id) {
		writeError(ctx, errForbiddenSession)
		return
	}
	rctx, cancel := requestContext()
	defer cancel()
	info, err := s.plane.SessionState(rctx, id)
	if err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	if !p.AllowsTenant(info.TenantID) {
		writeError(ctx, errForbiddenTenant)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK,
		appendSession(make([]byte, 0, 320+len(info.Metadata)), &info, withLastSeq|withArchivedSeq))
}

// events: GET /v1/sessions/{id}/events (docs/api.md#read-events), served
// from the same gap-checked read path as tail replay.
func (s *Server) events(ctx *fasthttp.RequestCtx, id string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	q, aerr := parseEventsQuery(ctx.URI().QueryString())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if _, aerr := s.authorizeSession(ctx, &p, id, ScopeRead); aerr != nil {
		writeError(ctx, aerr)
		return
	}
	rctx, cancel := requestContext()
	defer cancel()
	page, err := s.plane.Events(rctx, id, q.cursor, q.limit, true)
	if err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	size := 64
	for _, ev := range page.Events {
		size += len(ev.JSON) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"events":[`...)
	for i, ev := range page.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.JSON...)
	}
	b = append(b, `],"next_cursor":`...)
	if n := len(page.Events); n > 0 {
		b = strconv.AppendUint(b, page.Events[n-1].Seq, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"last_seq":`...)
	b = strconv.AppendUint(b, page.LastSeq, 10)
	writeJSON(ctx, fasthttp.StatusOK, append(b, '}'))
}

// ready: GET /health/ready (docs/api.md#readiness), by the readiness
// rule of dataplane.Plane.Health.
func (s *Server) ready(ctx *fasthttp.RequestCtx, _ string) {
	mode := "router_node"
	if s.cfg.WriteNode {
		mode = "write_node"
	}
	reason, rd := s.plane.Health(s.cfg.WriteNode)
	if reason == "" {
		writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok","mode":"`+mode+`"}`))
		return
	}
	b := make([]byte, 0, 320)
	b = append(b, `{"status":"starting","mode":"`+mode+`","reason":"`+reason+`"`...)
	if reason == dataplane.NotReadyRaftSync || reason == dataplane.NotReadyRouterSync {
		b = appendReadinessDetail(b, rd, mode)
	}
	writeJSON(ctx, fasthttp.StatusServiceUnavailable, append(b, '}'))
}

// appendReadinessDetail writes the "detail" object of a not-ready answer
// (keys as the contract spells them, trailing '?' included).
func appendReadinessDetail(b []byte, rd dataplane.Readiness, mode string) []byte {
	b = append(b, `,"detail":{"startup_mode":`...)
	if rd.Started {
		b = append(b, `"`+strings.TrimSuffix(mode, "_node")+`"`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"consensus_ready?":`...)
	b = strconv.AppendBool(b, rd.Probe.Ready)
	b = append(b, `,"consensus_probe_fresh?":`...)
	age := time.Since(rd.At)
	b = strconv.AppendBool(b, rd.Started && age < dataplane.ReadinessMaxAge)
	b = append(b, `,"consensus_probe_age_ms":`...)
	if rd.Started {
		b = strconv.AppendInt(b, age.Milliseconds(), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"checked_groups":`...)
	b = strconv.AppendInt(b, int64(rd.Probe.CheckedGroups), 10)
	b = append(b, `,"failing_group_id":`...)
	if rd.Probe.FailingGroup >= 0 {
		b = strconv.AppendInt(b, int64(rd.Probe.FailingGroup), 10)
	} else {
		b = append(b, "null"...)
	}
	return append(b, `,"probe_result":"`+rd.Probe.Result+`"}`...)
}
