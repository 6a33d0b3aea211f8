package edge

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

const jsonContentType = "application/json; charset=utf-8"

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(jsonContentType)
	ctx.SetBody(body)
}

// writeError writes an API error: {"error","message"}, or {"error"} for the
// framework-level shapes (docs/api.md#errors), with the www-authenticate
// challenge of a 401 (docs/api.md#401-responses).
func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	b := make([]byte, 0, 96)
	b = append(b, `{"error":`...)
	b = jsonc.AppendString(b, e.code)
	if e.message != "" {
		b = append(b, `,"message":`...)
		b = jsonc.AppendString(b, e.message)
	}
	b = append(b, '}')
	if c := e.challenge(); c != "" {
		ctx.Response.Header.Set("www-authenticate", c)
	}
	writeJSON(ctx, e.status, b)
}

// appendCreated renders the 201 body of a create: exactly the 7 keys of
// docs/api.md#create, without tenant_id.
func appendCreated(b []byte, s *fsm.SessionInfo) []byte {
	b = append(b, `{"id":`...)
	b = jsonc.AppendString(b, s.ID)
	b = append(b, `,"title":`...)
	b = appendOptString(b, s.Title)
	b = append(b, `,"creator_principal":`...)
	b = appendCreator(b, &s.Creator)
	b = append(b, `,"metadata":`...)
	b = append(b, s.Metadata...)
	b = append(b, `,"last_seq":0,"created_at":"`...)
	b = fsm.AppendTime(b, s.CreatedAt)
	b = append(b, `","updated_at":"`...)
	b = fsm.AppendTime(b, s.CreatedAt)
	return append(b, `"}`...)
}

// appendListItem renders a session as list items show it
// (docs/api.md#list); withSeqs adds last_seq and archived_seq for GET
// /v1/sessions/{id}.
func appendListItem(b []byte, s *fsm.SessionInfo, withSeqs bool) []byte {
	b = append(b, `{"id":`...)
	b = jsonc.AppendString(b, s.ID)
	b = append(b, `,"title":`...)
	b = appendOptString(b, s.Title)
	b = append(b, `,"tenant_id":`...)
	b = jsonc.AppendString(b, s.TenantID)
	b = append(b, `,"creator_principal":`...)
	b = appendCreator(b, &s.Creator)
	b = append(b, `,"metadata":`...)
	b = append(b, s.Metadata...)
	b = append(b, `,"created_at":"`...)
	b = fsm.AppendTime(b, s.CreatedAt)
	b = append(b, '"')
	if withSeqs {
		b = append(b, `,"last_seq":`...)
		b = strconv.AppendUint(b, s.LastSeq, 10)
		b = append(b, `,"archived_seq":`...)
		b = strconv.AppendUint(b, s.ArchivedSeq, 10)
	}
	return append(b, '}')
}

func appendCreator(b []byte, p *fsm.Principal) []byte {
	if p.TenantID == "" && p.ID == "" && p.Type == "" {
		return append(b, "null"...)
	}
	b = append(b, `{"tenant_id":`...)
	b = jsonc.AppendString(b, p.TenantID)
	b = append(b, `,"id":`...)
	b = jsonc.AppendString(b, p.ID)
	b = append(b, `,"type":`...)
	b = jsonc.AppendString(b, p.Type)
	return append(b, '}')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return jsonc.AppendString(b, *s)
}
