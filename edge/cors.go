package edge

import "github.com/valyala/fasthttp"

// CORS (docs/api.md#cors): any origin may read any response, without
// credentials, and preflights are answered before authentication, so a
// browser can send Authorization and PATCH.

// corsMaxAge is how long a browser may cache a preflight, in seconds
// (20 days, the default of the library upstream uses).
const corsMaxAge = "1728000"

// corsAllowMethods are the methods a preflight allows.
const corsAllowMethods = "GET,POST,PUT,PATCH,DELETE,OPTIONS"

// setCORS marks a response as readable by any origin.
func setCORS(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "*")
}

// preflight answers a CORS preflight (OPTIONS with Origin and
// Access-Control-Request-Method) with 204 and reports whether it did.
// The requested headers are allowed as asked.
func preflight(ctx *fasthttp.RequestCtx) bool {
	req := &ctx.Request.Header
	if !ctx.IsOptions() || len(req.Peek("Origin")) == 0 || len(req.Peek("Access-Control-Request-Method")) == 0 {
		return false
	}
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	if asked := req.Peek("Access-Control-Request-Headers"); len(asked) > 0 {
		h.SetBytesV("Access-Control-Allow-Headers", asked)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return true
}
