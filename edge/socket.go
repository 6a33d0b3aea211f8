package edge

import (
	"regexp"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// SocketServer runs an upgraded /v1/socket connection until it closes
// (package actors: one ChannelSocket actor per connection, one actor per
// joined channel).
type SocketServer interface {
	Serve(conn *websocket.Conn, p Principal)
}

// MaxSocketFrame is the largest client frame a socket reads; a larger one
// closes the socket with 1009.
const MaxSocketFrame = 1 << 20

// socketVersion matches the serializer versions the socket speaks: 2.x.y
// (Phoenix's 2.0.0 JSON arrays; phoenix.js sends vsn=2.0.0).
var socketVersion = regexp.MustCompile(`^2\.[0-9]+\.[0-9]+$`)

// socketUpgrader answers a refused handshake in plain text with the
// reason, as the framework the protocol comes from does.
var socketUpgrader = func() websocket.FastHTTPUpgrader {
	u := upgrader
	u.Error = func(ctx *fasthttp.RequestCtx, _ int, reason error) {
		ctx.Error(reason.Error(), fasthttp.StatusBadRequest)
	}
	return u
}()

// socket: GET /v1/socket/websocket (docs/api.md#socket-connect). A refused connect is 403 with an empty body and nothing else:
// the protocol has no way to say why. Checks in order: method (400),
// access_token present (refused in every mode: token is the only
// credential), vsn 2.x, the token, then the upgrade headers (400).
func (s *Server) socket(ctx *fasthttp.RequestCtx, _ string) {
	if !ctx.IsGet() {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	params := decodeQuery(ctx.URI().QueryString())
	if _, form := lookupParam(params, "access_token"); form != paramAbsent {
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		return
	}
	if vsn, form := lookupParam(params, "vsn"); form != paramString || !socketVersion.Match(vsn) {
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		return
	}
	token, form := lookupParam(params, "token")
	p, ok := s.auth.AuthenticateSocket(string(token), form == paramString && len(token) > 0)
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		return
	}
	err := socketUpgrader.Upgrade(ctx, func(conn *websocket.Conn) {
		s.connOpened()
		defer s.connClosed()
		s.cfg.Sockets.Serve(conn, p)
	})
	if err != nil {
		s.log.Debug("socket upgrade refused", "err", err)
	}
}

// AuthenticateSocket returns the service principal: in none mode any
// token, or none, is accepted and ignored.
func (NoAuth) AuthenticateSocket(string, bool) (Principal, bool) { return nonePrincipal, true }

// AuthenticateSocket verifies a socket's token exactly as a bearer token
// (leeway included); a missing token is refused.
func (a *JWTAuth) AuthenticateSocket(token string, present bool) (Principal, bool) {
	if !present {
		return Principal{}, false
	}
	p, err := a.verify(token)
	if err != nil {
		a.log.Debug("socket token rejected", "reason", err.Error())
		return Principal{}, false
	}
	return p, true
}
