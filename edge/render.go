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
// challenge of a 401 (docs/api.md#401-responses) and the Retry-After of a
// 429.
func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	b := make([]byte, 0, 96)
	b = append(b, `{"error":`...)
	b = jsonc.AppendString(b, e.code)
	if e.message != "" {
		b = append(b, `,"message":`...)
		b = jsonc.AppendString(b, e.message)
	}
	if len(e.extra) > 0 {
		b = append(append(b, ','), e.extra...)
	}
	b = append(b, '}')
	if c := e.challenge(); c != "" {
		ctx.Response.Header.Set("www-authenticate", c)
	}
	if e == errBackpressure {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	writeJSON(ctx, e.status, b)
}

// Optional members of a session object.
const (
	withLastSeq     = 1 << iota // create, GET and PATCH
	withArchivedSeq             // GET
)

// appendSession renders a session object: the header every session route
// answers with (docs/api.md#session-object) plus the optional counters.
// creator_principal is omitted when the session has none, never null.
func appendSession(b []byte, s *fsm.SessionInfo, members int) []byte {
	b = append(b, `{"id":`...)
	b = jsonc.AppendString(b, s.ID)
	b = append(b, `,"title":`...)
	b = appendOptString(b, s.Title)
	b = append(b, `,"tenant_id":`...)
	b = jsonc.AppendString(b, s.TenantID)
	if c := &s.Creator; *c != (fsm.Principal{}) {
		b = append(b, `,"creator_principal":{"tenant_id":`...)
		b = jsonc.AppendString(b, c.TenantID)
		b = append(b, `,"id":`...)
		b = jsonc.AppendString(b, c.ID)
		b = append(b, `,"type":`...)
		b = jsonc.AppendString(b, c.Type)
		b = append(b, '}')
	}
	b = append(b, `,"metadata":`...)
	b = append(b, s.Metadata...)
	b = append(b, `,"created_at":"`...)
	b = fsm.AppendTime(b, s.CreatedAt)
	b = append(b, `","updated_at":"`...)
	b = fsm.AppendTime(b, max(s.UpdatedAt, s.CreatedAt))
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, max(s.Version, 1), 10)
	b = append(b, `,"archived":`...)
	b = strconv.AppendBool(b, s.Archived)
	if members&withLastSeq != 0 {
		b = append(b, `,"last_seq":`...)
		b = strconv.AppendUint(b, s.LastSeq, 10)
	}
	if members&withArchivedSeq != 0 {
		b = append(b, `,"archived_seq":`...)
		b = strconv.AppendUint(b, s.ArchivedSeq, 10)
	}
	return append(b, '}')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return jsonc.AppendString(b, *s)
}
