package edge

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// patchBody is a validated PATCH /v1/sessions/{id} body.
type patchBody struct {
	setTitle        bool
	title           *string // with setTitle: nil clears the title
	metadata        []byte  // canonical JSON object merged into the stored one; nil: none
	expectedVersion *uint64
}

// decodePatchBody validates a PATCH body in the order of
// docs/api.md#update-a-session; the first failure decides the error.
func decodePatchBody(body []byte) (patchBody, *apiError) {
	var b patchBody
	v := jsonc.Value{Kind: jsonc.Object}
	if len(bytes.TrimLeft(body, " \t\r\n")) > 0 {
		var err error
		if v, err = jsonc.Parse(body); err != nil || v.Kind != jsonc.Object {
			return patchBody{}, errInvalidSession
		}
	}
	title, hasTitle := v.Get("title")
	meta, hasMeta := v.Get("metadata")
	if !hasTitle && !hasMeta {
		return patchBody{}, errInvalidSession
	}
	if hasTitle {
		switch {
		case title.Kind == jsonc.String && len(title.Str) <= fsm.MaxTitleBytes:
			t := title.Str
			b.title = &t
		case title.Kind != jsonc.Null:
			return patchBody{}, errInvalidSession
		}
		b.setTitle = true
	}
	if hasMeta {
		if meta.Kind != jsonc.Object {
			return patchBody{}, errInvalidMetadata
		}
		// The merge keeps every member sent, so a patch past the limit
		// can only make metadata past it.
		if b.metadata = meta.Append(nil); len(b.metadata) > fsm.MaxMetadataBytes {
			return patchBody{}, errInvalidMetadata
		}
		if !hasTitle && len(meta.Members) == 0 {
			return patchBody{}, errInvalidSession // changes nothing
		}
	}
	if ev, ok := v.Get("expected_version"); ok && ev.Kind != jsonc.Null {
		n, ok := intValue(ev)
		if !ok || n == 0 {
			return patchBody{}, errInvalidSession
		}
		b.expectedVersion = &n
	}
	return b, nil
}

// patchSession: PATCH /v1/sessions/{id} (docs/api.md#update-a-session).
// The body is validated before any authorization check.
func (s *Server) patchSession(ctx *fasthttp.RequestCtx, id string) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if !contentTypeOK(ctx.Request.Header.ContentType()) {
		writeError(ctx, errUnsupportedMediaType)
		return
	}
	body, aerr := decodePatchBody(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if aerr := s.authorizeHeaderChange(ctx, &p, id); aerr != nil {
		writeError(ctx, aerr)
		return
	}
	rctx, cancel := requestContext()
	defer cancel()
	info, err := s.plane.UpdateSession(rctx, &fsm.UpdateSession{RequestID: requestID(), SessionID: id, At: nowMicro(),
		SetTitle: body.setTitle, Title: body.title, Metadata: body.metadata, ExpectedVersion: body.expectedVersion})
	if err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, appendSession(make([]byte, 0, 320+len(info.Metadata)), &info, withLastSeq))
}

// archiveSession and unarchiveSession: POST /v1/sessions/{id}/archive and
// /unarchive (docs/api.md#archive-and-unarchive). The body is ignored.
func (s *Server) archiveSession(ctx *fasthttp.RequestCtx, id string) {
	s.setArchived(ctx, id, true)
}

func (s *Server) unarchiveSession(ctx *fasthttp.RequestCtx, id string) {
	s.setArchived(ctx, id, false)
}

func (s *Server) setArchived(ctx *fasthttp.RequestCtx, id string, archived bool) {
	p, aerr := s.auth.Authenticate(ctx)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if aerr := s.authorizeHeaderChange(ctx, &p, id); aerr != nil {
		writeError(ctx, aerr)
		return
	}
	rctx, cancel := requestContext()
	defer cancel()
	info, err := s.plane.SetArchived(rctx, &fsm.SetArchived{RequestID: requestID(), SessionID: id, At: nowMicro(),
		Archived: archived})
	if err != nil {
		writeError(ctx, s.dataError(ctx, err))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, appendSession(make([]byte, 0, 320+len(info.Metadata)), &info, 0))
}

// authorizeHeaderChange runs the checks of the header routes in their
// order: scope session:create, session lock, lookup, tenant.
func (s *Server) authorizeHeaderChange(ctx *fasthttp.RequestCtx, p *Principal, id string) *apiError {
	if !p.Has(ScopeCreate) {
		return errForbiddenScope
	}
	if !p.AllowsSession(id) {
		return errForbiddenSession
	}
	rctx, cancel := requestContext()
	defer cancel()
	info, err := s.plane.Session(rctx, id)
	if err != nil {
		return s.dataError(ctx, err)
	}
	if !p.AllowsTenant(info.TenantID) {
		return errForbiddenTenant
	}
	return nil
}
