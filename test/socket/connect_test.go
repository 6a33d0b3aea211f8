package socket

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestConnect: which connects upgrade and which are refused with 403 and
// an empty body (nothing else: the protocol cannot say why), in both
// modes; the other refusals of the socket path.
func TestConnect(t *testing.T) {
	envs := []*env{noneEnv(t, nil), jwtEnv(t, nil)}
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			valid := e.token("acme", "user:u1", []string{"session:read"})
			expired := e.token("acme", "user:u1", []string{"session:read"}, "exp", time.Now().Unix()-60)
			q := url.QueryEscape
			tests := []struct {
				name  string
				query string
				ok    bool // upgrades
			}{
				{"vsn 2.0.0 with token", "token=" + q(valid) + "&vsn=2.0.0", true},
				{"vsn 2.1.3 (any 2.x)", "token=" + q(valid) + "&vsn=2.1.3", true},
				{"access_token instead of token", "access_token=" + q(valid) + "&vsn=2.0.0", false},
				{"access_token besides token", "token=" + q(valid) + "&access_token=" + q(valid) + "&vsn=2.0.0", false},
				{"access_token empty", "token=" + q(valid) + "&access_token=&vsn=2.0.0", false},
				{"access_token in map form", "token=" + q(valid) + "&access_token[a]=1&vsn=2.0.0", false},
				{"no vsn", "token=" + q(valid), false},
				{"vsn 1.0.0", "token=" + q(valid) + "&vsn=1.0.0", false},
				{"vsn 3.0.0", "token=" + q(valid) + "&vsn=3.0.0", false},
				{"vsn 2.0", "token=" + q(valid) + "&vsn=2.0", false},
				// none mode accepts and ignores every token, or none
				{"no token", "vsn=2.0.0", !e.jwt},
				{"empty token", "token=&vsn=2.0.0", !e.jwt},
				{"token in list form", "token[]=" + q(valid) + "&vsn=2.0.0", !e.jwt},
				{"garbage token", "token=not.a.jwt&vsn=2.0.0", !e.jwt},
				{"token expired beyond the leeway", "token=" + q(expired) + "&vsn=2.0.0", !e.jwt},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c, st, body, err := e.n.DialSocket(tt.query, nil)
					if tt.ok {
						if err != nil {
							t.Fatalf("refused: %d %q %v", st, body, err)
						}
						defer c.Conn.Close()
						ref, _ := c.Heartbeat()
						wantFrame(t, reply(t, c, ref), `[null,"`+ref+`","phoenix","phx_reply",{"status":"ok","response":{}}]`)
						return
					}
					if err == nil {
						c.Conn.Close()
						t.Fatal("upgraded")
					}
					if st != 403 || len(body) != 0 {
						t.Fatalf("got %d %q, want 403 with an empty body", st, body)
					}
				})
			}
			t.Run("refusal carries no challenge", func(t *testing.T) {
				r, err := e.n.TryRequest("GET", "/v1/socket/websocket?vsn=1.0.0", nil, wsHeaders)
				if err != nil || r.Status != 403 || len(r.Body) != 0 || r.Header.Get("www-authenticate") != "" {
					t.Fatalf("got %d %q %v %v", r.Status, r.Body, r.Header, err)
				}
			})
			t.Run("not GET", func(t *testing.T) {
				r, err := e.n.TryRequest("POST", "/v1/socket/websocket?vsn=2.0.0&token="+q(valid), "{}", nil)
				if err != nil || r.Status != 400 || len(r.Body) != 0 {
					t.Fatalf("got %d %q %v, want 400 with an empty body", r.Status, r.Body, err)
				}
			})
			t.Run("GET without upgrade headers", func(t *testing.T) {
				r, err := e.n.TryRequest("GET", "/v1/socket/websocket?vsn=2.0.0&token="+q(valid), nil, nil)
				if err != nil || r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") || len(r.Body) == 0 {
					t.Fatalf("got %d %q %q %v, want 400 with a plain-text reason", r.Status, r.Header.Get("Content-Type"), r.Body, err)
				}
			})
			t.Run("any origin", func(t *testing.T) {
				c, st, body, err := harness.DialPhoenix(e.n.SocketURL("vsn=2.0.0&token="+q(valid)),
					map[string][]string{"Origin": {"https://elsewhere.example"}})
				if err != nil {
					t.Fatalf("refused: %d %q %v", st, body, err)
				}
				c.Conn.Close()
			})
		})
	}
}

var wsHeaders = harness.Header{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
	"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
