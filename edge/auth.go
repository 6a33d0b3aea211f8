package edge

import (
	"regexp"

	"github.com/valyala/fasthttp"
)

// NoAuth is the authenticator of STARCITE_AUTH_MODE=none: every request
// runs as the fixed service principal and carries no token
// (docs/api.md#auth-modes).
type NoAuth struct{}

// Authenticate returns the service principal.
func (NoAuth) Authenticate(*fasthttp.RequestCtx) (Principal, *apiError) { return nonePrincipal, nil }

// Secrets that may appear in text the edge does not format itself, such
// as fasthttp's messages, which quote the request line and raw header
// bytes of a request it could not parse.
var (
	// everything after "contents:" is a dump of the raw request bytes
	rawRequestDump = regexp.MustCompile(`(?s)contents:.*`)
	// an access_token parameter, in any escaping of its name
	accessTokenParam = regexp.MustCompile(`(?i)(access(?:_|%5f)token(?:%5b[^=&\s]*|\[[^=&\s]*)?=)[^&\s"\\]*`)
	// an Authorization header value
	authorizationValue = regexp.MustCompile(`(?i)(authorization:)[^\r\n"\\]*`)
	// anything shaped like a JWT (base64url JSON header, two dots)
	jwtShaped = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_=-]*\.?[A-Za-z0-9_=-]*`)
)

// scrubLog removes tokens from a log message (docs/api.md#token-redaction:
// tokens and access_token values are never logged).
func scrubLog(msg string) string {
	msg = rawRequestDump.ReplaceAllString(msg, "contents: "+redacted)
	msg = accessTokenParam.ReplaceAllString(msg, "${1}"+redacted)
	msg = authorizationValue.ReplaceAllString(msg, "${1} "+redacted)
	return jwtShaped.ReplaceAllString(msg, redacted)
}
