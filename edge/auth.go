package edge

import "github.com/valyala/fasthttp"

// NoAuth is the authenticator of STARCITE_AUTH_MODE=none: every request
// runs as the fixed service principal and carries no token (spec §3.8).
type NoAuth struct{}

// Authenticate returns the service principal.
func (NoAuth) Authenticate(*fasthttp.RequestCtx) (Principal, *apiError) { return nonePrincipal, nil }
