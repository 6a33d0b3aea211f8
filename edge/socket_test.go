package edge

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp/fasthttputil"
)

// AuthenticateSocket of the fake: a socket is refused when the fake
// refuses requests, or (as in jwt mode) when it carries no token.
func (a fakeAuth) AuthenticateSocket(_ string, present bool) (Principal, bool) {
	return a.p, a.err == nil && (present || a.p.open)
}

// socketRecorder is a SocketServer that records the principals it is
// handed and closes the connections.
type socketRecorder struct{ got chan Principal }

func (r socketRecorder) Serve(conn *websocket.Conn, p Principal) {
	r.got <- p
	conn.Close()
}

// TestSocketConnect: the connect checks of /v1/socket/websocket in order,
// in memory: refusals are 403 with nothing in the body, the method and
// the handshake 400; a good connect hands the socket and its principal on.
func TestSocketConnect(t *testing.T) {
	rec := socketRecorder{got: make(chan Principal, 1)}
	s, _ := testServer(newFakePlane(), fakeAuth{p: acmeUser}, Config{Sockets: rec})
	refused, _ := testServer(newFakePlane(), fakeAuth{err: errAuthInvalid}, Config{Sockets: rec})
	tests := []struct {
		name   string
		s      *Server
		method string
		uri    string
		status int
	}{
		{"POST", s, "POST", "/v1/socket/websocket?vsn=2.0.0&token=t", 400},
		{"access_token", s, "GET", "/v1/socket/websocket?vsn=2.0.0&token=t&access_token=t", 403},
		{"access_token list form", s, "GET", "/v1/socket/websocket?vsn=2.0.0&token=t&access_token[]=t", 403},
		{"access_token before vsn", s, "GET", "/v1/socket/websocket?access_token=t", 403},
		{"no vsn", s, "GET", "/v1/socket/websocket?token=t", 403},
		{"vsn 1", s, "GET", "/v1/socket/websocket?vsn=1.0.0&token=t", 403},
		{"vsn list form", s, "GET", "/v1/socket/websocket?vsn[]=2.0.0&token=t", 403},
		{"no token", s, "GET", "/v1/socket/websocket?vsn=2.0.0", 403},
		{"empty token", s, "GET", "/v1/socket/websocket?vsn=2.0.0&token=", 403},
		{"token refused", refused, "GET", "/v1/socket/websocket?vsn=2.0.0&token=t", 403},
		{"no handshake", s, "GET", "/v1/socket/websocket?vsn=2.0.0&token=t", 400},
	}
	for _, tc := range tests {
		resp := request(tc.s, tc.method, tc.uri, "", "")
		if resp.StatusCode() != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode(), tc.status)
		}
		if body := resp.Body(); tc.status == 403 && len(body) != 0 || tc.method == "POST" && len(body) != 0 {
			t.Errorf("%s: body %q, want none", tc.name, body)
		}
		if tc.name == "no handshake" && !strings.HasPrefix(string(resp.Header.ContentType()), "text/plain") {
			t.Errorf("%s: content type %q, want a plain-text reason", tc.name, resp.Header.ContentType())
		}
	}

	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go s.HTTPServer().Serve(ln)
	dialer := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return ln.Dial() }}
	conn, resp, err := dialer.Dial("ws://starcite/v1/socket/websocket?token=t&vsn=2.0.0", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	select {
	case got := <-rec.got:
		if got != acmeUser {
			t.Errorf("principal %+v, want %+v", got, acmeUser)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the SocketServer was not handed the socket")
	}
}
