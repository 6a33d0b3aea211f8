// Package socket tests /v1/socket, the Phoenix Channels transport,
// against real nodes with the harness's Phoenix client: connect, control
// events, tail:<id> and lifecycle channels, socket limits, in none and
// jwt mode (docs/api.md#phoenix-channel-socket).
package socket

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/test/harness"
)

const wait = 30 * time.Second

// env is a node under test in one auth mode and the credentials its
// tests use. In none mode every token is "" (the fixed service principal).
type env struct {
	name string
	n    *harness.Node
	jwt  bool
	// token returns a token of tenant and subject with scopes (jwt), or ""
	// (none); extra claims as name, value pairs (nil value: removed).
	token func(tenant, sub string, scopes []string, extra ...any) string
	admin string // create/read/append for tenant acme, as a service
}

// Headers to send with REST calls as admin.
func (e *env) auth(token string) harness.Header {
	if token == "" {
		return nil
	}
	return harness.Header{"Authorization": "Bearer " + token}
}

var allScopes = []string{"session:create", "session:read", "session:append"}

// noneEnv starts a none-mode node.
func noneEnv(t *testing.T, extra map[string]string) *env {
	return nodeEnv(harness.StartNode(t, harness.Options{Env: extra}), false)
}

// jwtEnv starts a jwt-mode node trusting a JWKS served by the test.
func jwtEnv(t *testing.T, extra map[string]string) *env {
	vars := jwtVars(t)
	for k, v := range extra {
		vars[k] = v
	}
	return nodeEnv(harness.StartNode(t, harness.Options{Env: vars}), true)
}

// nodeEnv is the env of a running node in none or jwt mode.
func nodeEnv(n *harness.Node, jwt bool) *env {
	if !jwt {
		return &env{name: "none", n: n, token: func(string, string, []string, ...any) string { return "" }}
	}
	return &env{name: "jwt", n: n, jwt: true, token: mintToken, admin: mintToken("acme", "service:ops", allScopes)}
}

// jwtVars are the variables of a jwt-mode node trusting a JWKS that the
// test serves with the key of mintToken.
func jwtVars(t *testing.T) map[string]string {
	doc := devjwt.JWKS(devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return map[string]string{
		"STARCITE_AUTH_MODE":               "jwt",
		"STARCITE_AUTH_JWT_ISSUER":         issuer,
		"STARCITE_AUTH_JWT_AUDIENCE":       audience,
		"STARCITE_AUTH_JWKS_URL":           srv.URL + "/jwks",
		"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "5",
	}
}

const (
	issuer   = "https://issuer.socket.test"
	audience = "starcite-socket-test"
)

// mintToken signs an RS256 token valid for an hour.
func mintToken(tenant, sub string, scopes []string, extra ...any) string {
	now := time.Now().Unix()
	c := map[string]any{"iss": issuer, "aud": audience, "exp": now + 3600, "iat": now,
		"tenant_id": tenant, "sub": sub, "scope": strings.Join(scopes, " ")}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
		} else {
			c[extra[i].(string)] = extra[i+1]
		}
	}
	return devjwt.Sign(devjwt.Key(0), map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"}, c)
}

// create makes a session of tenant acme (jwt) as admin.
func (e *env) create(t testing.TB, id string) {
	t.Helper()
	st, body := e.n.Do("POST", "/v1/sessions", map[string]any{"id": id}, e.auth(e.admin))
	if st != 201 {
		t.Fatalf("create %s: %d %s", id, st, body)
	}
}

// appendN appends events from..to of producer w, as admin.
func (e *env) appendN(t testing.TB, id string, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		e.appendOne(t, id, i, map[string]any{"i": i})
	}
}

func (e *env) appendOne(t testing.TB, id string, producerSeq uint64, payload map[string]any) {
	t.Helper()
	if err := e.tryAppend(id, "w", producerSeq, payload); err != nil {
		t.Fatal(err)
	}
}

// tryAppend appends one event of producer as admin (from any goroutine).
func (e *env) tryAppend(id, producer string, producerSeq uint64, payload map[string]any) error {
	body := map[string]any{"type": "content", "payload": payload, "producer_id": producer, "producer_seq": producerSeq}
	if !e.jwt {
		body["actor"] = "service:service"
	}
	st, b, err := e.n.TryDo("POST", "/v1/sessions/"+id+"/append", body, e.auth(e.admin))
	if err != nil || st != 201 {
		return fmt.Errorf("append %s %s#%d: %d %s %v", id, producer, producerSeq, st, b, err)
	}
	return nil
}

// socket opens a socket with token.
func (e *env) socket(t testing.TB, token string) *harness.Phoenix { return e.n.Socket(token) }

// wantFrame fails unless f is the JSON of want, structurally.
func wantFrame(t testing.TB, f harness.PhxFrame, want string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal(f.Raw, &got); err != nil {
		t.Fatalf("frame %s: %v", f, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("frame\n got %s\nwant %s", f, want)
	}
}

// await is Await that fails the test.
func await(t testing.TB, c *harness.Phoenix, what string, match func(harness.PhxFrame) bool) harness.PhxFrame {
	t.Helper()
	f, err := c.Await(wait, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v (kept: %v)", what, err, c.Kept())
	}
	return f
}

// reply waits for the reply to ref.
func reply(t testing.TB, c *harness.Phoenix, ref string) harness.PhxFrame {
	t.Helper()
	f, err := c.Reply(ref, wait)
	if err != nil {
		t.Fatalf("waiting for the reply to %s: %v (kept: %v)", ref, err, c.Kept())
	}
	return f
}

// join joins topic and fails unless the reply is ok; it returns the join ref.
func join(t testing.TB, c *harness.Phoenix, topic string, params any) string {
	t.Helper()
	ref, err := c.Join(topic, params)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, reply(t, c, ref), fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"ok","response":{}}]`, ref, ref, topic))
	return ref
}

// joinError joins topic and fails unless the reply is the error reason.
func joinError(t testing.TB, c *harness.Phoenix, topic string, params any, reason string) {
	t.Helper()
	ref, err := c.Join(topic, params)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, reply(t, c, ref),
		fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"error","response":{"reason":%q}}]`, ref, ref, topic, reason))
}

// quiet fails if c received anything but the heartbeat reply it is sent
// now: nothing else was pending on the socket.
func quiet(t testing.TB, c *harness.Phoenix, what string) {
	t.Helper()
	ref, err := c.Heartbeat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Next(wait)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if f.Event != "phx_reply" || f.Ref == nil || *f.Ref != ref {
		t.Fatalf("%s: got %s before the heartbeat reply", what, f)
	}
}

// collect collects events from..upto of topic.
func collect(t testing.TB, c *harness.Phoenix, topic string, from, upto uint64, batch int) []harness.PhxEvent {
	t.Helper()
	evs, err := c.CollectEvents(topic, from, upto, batch, wait)
	if err != nil {
		t.Fatalf("%s: %v", topic, err)
	}
	return evs
}

// restEvents returns the session's event objects from the REST events route.
func (e *env) restEvents(t testing.TB, id string) []json.RawMessage {
	t.Helper()
	st, b := e.n.Do("GET", "/v1/sessions/"+id+"/events?cursor=0&limit=1000", nil, e.auth(e.admin))
	var page struct{ Events []json.RawMessage }
	if st != 200 || json.Unmarshal(b, &page) != nil {
		t.Fatalf("events of %s: %d %s", id, st, b)
	}
	return page.Events
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// leave leaves the channel joined with j: the reply, then its phx_close.
func leave(t testing.TB, c *harness.Phoenix, topic, j string) {
	t.Helper()
	ref, err := c.Leave(topic, j)
	if err != nil {
		t.Fatal(err)
	}
	wantFrame(t, reply(t, c, ref), fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"ok","response":{}}]`, j, ref, topic))
	f := await(t, c, "phx_close", func(f harness.PhxFrame) bool { return f.Topic == topic && f.Event == "phx_close" })
	wantFrame(t, f, fmt.Sprintf(`[%q,%q,%q,"phx_close",{}]`, j, j, topic))
}
