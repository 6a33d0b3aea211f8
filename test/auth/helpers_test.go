// Package auth tests jwt mode against the real binary: tokens are minted
// in the test with the RSA keys of package devjwt (generated in the test
// process), and the node fetches their public halves from a JWKS served by
// an httptest server in the test process (docs/api.md#authentication,
// docs/api.md#error-catalogue).
package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/test/harness"
)

const (
	issuer   = "https://issuer.starcite.test"
	audience = "starcite-api"
	// leeway of the nodes under test: wide enough that the second a
	// request reaches the node never decides a leeway case.
	leeway = 30
)

// The www-authenticate values of docs/api.md#401-responses.
const (
	challengeMissing   = `Bearer realm="starcite"`
	challengeMalformed = `Bearer realm="starcite", error="invalid_request", error_description="Malformed bearer token"`
	challengeInvalid   = `Bearer realm="starcite", error="invalid_token"`
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// jwks is a JWKS endpoint in the test process.
type jwks struct {
	*httptest.Server
	doc     atomic.Pointer[[]byte]
	status  atomic.Int64
	fetches atomic.Int64
}

func newJWKS(t testing.TB, entries ...map[string]any) *jwks {
	j := &jwks{}
	j.set(entries...)
	j.status.Store(200)
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(j.status.Load()))
		w.Write(*j.doc.Load())
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwks) set(entries ...map[string]any) {
	b := devjwt.JWKS(entries...)
	j.doc.Store(&b)
}

// startJWTNode starts a node in jwt mode against j.
func startJWTNode(t testing.TB, j *jwks, env map[string]string) *harness.Node {
	t.Helper()
	e := map[string]string{
		"STARCITE_AUTH_MODE":               "jwt",
		"STARCITE_AUTH_JWT_ISSUER":         issuer,
		"STARCITE_AUTH_JWT_AUDIENCE":       audience,
		"STARCITE_AUTH_JWKS_URL":           j.URL + "/.well-known/jwks.json",
		"STARCITE_AUTH_JWT_LEEWAY_SECONDS": strconv.Itoa(leeway),
	}
	for k, v := range env {
		e[k] = v
	}
	return harness.StartNode(t, harness.Options{Env: e})
}

// claims are valid claims for tenant and subject with the given scopes.
func claims(tenant, sub string, scopes ...string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": issuer, "aud": audience, "exp": now + 3600, "iat": now,
		"tenant_id": tenant, "sub": sub, "scope": strings.Join(scopes, " "),
	}
}

// with returns a copy of c with the given claims set (nil value: removed).
func with(c map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(c)+len(kv)/2)
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// mint is a regular RS256 token of key i under kid.
func mint(i int, kid string, c map[string]any) string {
	return devjwt.Sign(devjwt.Key(i), map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, c)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// reply is a response as the tests inspect it.
type reply struct {
	status int
	body   []byte
	header http.Header
}

// do sends a request. headers are name, value pairs; a name may repeat.
// A string body is sent as is, anything else (but nil) as JSON.
func do(t testing.TB, n *harness.Node, method, path string, body any, headers ...string) reply {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		r = bytes.NewReader(mustJSON(b))
	}
	req, err := http.NewRequest(method, n.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, b, resp.Header}
}

// bearer is the Authorization header pair of a token.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// The error messages of docs/api.md#error-catalogue.
var messages = map[string]string{
	"unauthorized":       "Unauthorized",
	"forbidden_scope":    "Token scope does not allow this operation",
	"forbidden_session":  "Token is not allowed to access this session",
	"forbidden_tenant":   "Token tenant does not match session tenant",
	"session_not_found":  "Session was not found",
	"session_exists":     "Session already exists",
	"invalid_event":      "Invalid event payload",
	"invalid_metadata":   "Invalid metadata payload",
	"invalid_cursor":     "Invalid cursor value",
	"invalid_limit":      "Invalid limit value",
	"invalid_session":    "Invalid session payload",
	"invalid_list_query": "Invalid list query",
}

// expectError asserts an error reply: status, the exact two-key body of
// code, and the www-authenticate value ("" for none).
func expectError(t testing.TB, what string, r reply, status int, code, challenge string) {
	t.Helper()
	msg, ok := messages[code]
	if !ok {
		t.Fatalf("no message known for %s", code)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 2 || body["error"] != code || body["message"] != msg {
		t.Errorf("%s: got %d %s, want %d {error:%s, message:%s}", what, r.status, r.body, status, code, msg)
		return
	}
	if r.status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, r.status, status, r.body)
	}
	if got := r.header.Get("www-authenticate"); got != challenge || len(r.header.Values("www-authenticate")) > 1 {
		t.Errorf("%s: www-authenticate %q, want %q", what, r.header.Values("www-authenticate"), challenge)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: content type %q", what, ct)
	}
}

// expectStatus asserts a success status.
func expectStatus(t testing.TB, what string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: got %d %s, want %d", what, r.status, r.body, status)
	}
}

// decode decodes a JSON reply into v.
func decode(t testing.TB, r reply, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply %s: %v", r.body, err)
	}
}

// appendBody is a valid append body.
func appendBody(producer string, seq int) map[string]any {
	return map[string]any{"type": "msg", "payload": map[string]any{"n": seq}, "producer_id": producer, "producer_seq": seq}
}

// listIDs returns the ids of a list reply.
func listIDs(t testing.TB, r reply) []string {
	t.Helper()
	var page struct {
		Sessions []struct {
			ID       string `json:"id"`
			TenantID string `json:"tenant_id"`
		} `json:"sessions"`
	}
	decode(t, r, &page)
	ids := make([]string, 0, len(page.Sessions))
	for _, s := range page.Sessions {
		ids = append(ids, s.ID)
	}
	return ids
}
