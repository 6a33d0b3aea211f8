package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/test/harness"
)

// TestTokenTransport: where a token is read from, and the 401 of each
// missing or malformed form (docs/api.md#token-transport,
// docs/api.md#401-responses), on every /v1 route.
func TestTokenTransport(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	n := startJWTNode(t, j, nil)
	good := mint(0, "k1", claims("acme", "user:u-1", "session:create", "session:read", "session:append"))
	upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade"}
	q := "?access_token=" + url.QueryEscape(good)

	routes := []struct{ method, path string }{
		{"POST", "/v1/sessions"},
		{"GET", "/v1/sessions"},
		{"GET", "/v1/sessions/"},
		{"POST", "/v1/sessions/s1/append"},
		{"GET", "/v1/sessions/s1"},
		{"GET", "/v1/sessions/s1/events"},
		{"GET", "/v1/sessions/s1/tail"},
		{"HEAD", "/v1/sessions"},
	}
	cases := []struct {
		name      string
		query     string
		headers   []string
		challenge string
	}{
		{"no token", "", nil, challengeMissing},
		{"access_token without upgrade", q, nil, challengeMissing},
		{"bearer without token", "", []string{"Authorization", "Bearer"}, challengeMalformed},
		{"basic", "", []string{"Authorization", "Basic dXNlcjpwYXNz"}, challengeMalformed},
		{"token with a space", "", []string{"Authorization", "Bearer " + good + " x"}, challengeMalformed},
		{"two tokens in one header", "", []string{"Authorization", "Bearer " + good + ", Bearer " + good}, challengeMalformed},
		{"two headers", "", []string{"Authorization", "Bearer " + good, "Authorization", "Bearer " + good}, challengeMalformed},
		{"header and access_token on an upgrade", q, append([]string{"Authorization", "Bearer " + good}, upgrade...), challengeMalformed},
		{"empty access_token on an upgrade", "?access_token=", upgrade, challengeMalformed},
		{"access_token with a space on an upgrade", "?access_token=a+b", upgrade, challengeMalformed},
		{"garbage token", "", []string{"Authorization", "Bearer not.a.jwt"}, challengeInvalid},
		{"garbage access_token on an upgrade", "?access_token=a%ZZ", upgrade, challengeInvalid},
	}
	for _, rt := range routes {
		for _, c := range cases {
			what := fmt.Sprintf("%s %s: %s", rt.method, rt.path, c.name)
			r := do(t, n, rt.method, rt.path+c.query, nil, c.headers...)
			if rt.method == "HEAD" {
				// no body: status and challenge only
				if r.status != 401 || r.header.Get("www-authenticate") != c.challenge {
					t.Errorf("%s: %d %q", what, r.status, r.header.Get("www-authenticate"))
				}
				continue
			}
			expectError(t, what, r, 401, "unauthorized", c.challenge)
		}
	}

	// Accepted forms, any case of the scheme, extra spaces; the query
	// token on an upgrade request.
	for _, h := range []string{"Bearer " + good, "bearer " + good, "BEARER   " + good + "  "} {
		expectStatus(t, "list with "+h[:8], do(t, n, "GET", "/v1/sessions", nil, "Authorization", h), 200)
	}
	expectStatus(t, "list with access_token on an upgrade", do(t, n, "GET", "/v1/sessions"+q, nil, upgrade...), 200)
	expectStatus(t, "list with access_token, upgrade in a list", do(t, n, "GET", "/v1/sessions"+q, nil, "Upgrade", "h2c, WebSocket", "Connection", "Upgrade"), 200)
	// On the tail route the token is accepted: what follows is the tail's
	// own checks, no 401.
	if r := do(t, n, "GET", "/v1/sessions/s1/tail"+q, nil, upgrade...); r.status == 401 {
		t.Errorf("tail with access_token: %d %s", r.status, r.body)
	}
	if r := do(t, n, "GET", "/v1/sessions/s1/tail", nil, append(bearer(good), upgrade...)...); r.status == 401 {
		t.Errorf("tail with a bearer header: %d %s", r.status, r.body)
	}
	// Health needs no token (on the ops listener).
	if st, _, err := n.Probe("/health/live"); err != nil || st != 200 {
		t.Errorf("health: %d %v", st, err)
	}
}

// TestTokenVerification: every reason a well-formed token is refused gives
// 401 invalid_token (docs/api.md#token-verification,
// docs/api.md#identity-claims); the leeway cases pass.
func TestTokenVerification(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	n := startJWTNode(t, j, nil)
	now := time.Now().Unix()
	base := claims("acme", "user:u-1", "session:read")
	raw := func(s string) rawJSON { return rawJSON(s) }

	hs256 := func(secret []byte) string {
		in := b64(mustJSON(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"})) + "." + b64(mustJSON(base))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	der, err := x509.MarshalPKIXPublicKey(&devjwt.Key(0).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256 := func() string {
		in := b64(mustJSON(map[string]any{"alg": "ES256", "kid": "k1"})) + "." + b64(mustJSON(base))
		h := sha256.Sum256([]byte(in))
		r, s, _ := ecdsa.Sign(rand.Reader, ec, h[:])
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return in + "." + b64(sig)
	}
	valid := mint(0, "k1", base)
	parts := strings.Split(valid, ".")

	rejected := []struct{ name, token string }{
		{"bad signature (other key, same kid)", mint(1, "k1", base)},
		{"tampered claims", parts[0] + "." + b64(mustJSON(with(base, "tenant_id", "other"))) + "." + parts[2]},
		{"no kid", devjwt.Sign(devjwt.Key(0), map[string]any{"alg": "RS256"}, base)},
		{"empty kid", devjwt.Sign(devjwt.Key(0), map[string]any{"alg": "RS256", "kid": ""}, base)},
		{"numeric kid", devjwt.Sign(devjwt.Key(0), map[string]any{"alg": "RS256", "kid": 1}, base)},
		{"unknown kid", mint(0, "nope", base)},
		{"alg none", b64(mustJSON(map[string]any{"alg": "none", "kid": "k1"})) + "." + parts[1] + "."},
		{"HS256 keyed with the PEM public key", hs256(pemKey)},
		{"HS256 keyed with the DER public key", hs256(der)},
		{"ES256", es256()},
		{"RS256 signature under an RS512 header", devjwt.Sign(devjwt.Key(0), map[string]any{"alg": "RS512", "kid": "k1"}, base)},
		{"expired beyond leeway", mint(0, "k1", with(base, "exp", now-leeway-60))},
		{"exp missing", mint(0, "k1", with(base, "exp", nil))},
		{"exp float", mint(0, "k1", with(base, "exp", raw("1.7e9")))},
		{"exp float with zero fraction", mint(0, "k1", with(base, "exp", raw(fmt.Sprintf("%d.0", now+3600))))},
		{"exp string", mint(0, "k1", with(base, "exp", fmt.Sprint(now+3600)))},
		{"nbf in the future", mint(0, "k1", with(base, "nbf", now+leeway+60))},
		{"nbf float", mint(0, "k1", with(base, "nbf", raw("1.5")))},
		{"iat in the future", mint(0, "k1", with(base, "iat", now+leeway+60))},
		{"iat string", mint(0, "k1", with(base, "iat", "1"))},
		{"wrong iss", mint(0, "k1", with(base, "iss", "https://evil.test"))},
		{"iss missing", mint(0, "k1", with(base, "iss", nil))},
		{"wrong aud", mint(0, "k1", with(base, "aud", "other-api"))},
		{"aud array without ours", mint(0, "k1", with(base, "aud", []string{"a", "b"}))},
		{"aud array with a non-string", mint(0, "k1", with(base, "aud", []any{audience, 7}))},
		{"aud missing", mint(0, "k1", with(base, "aud", nil))},
		{"tenant_id missing", mint(0, "k1", with(base, "tenant_id", nil))},
		{"tenant_id empty", mint(0, "k1", with(base, "tenant_id", ""))},
		{"tenant_id number", mint(0, "k1", with(base, "tenant_id", 42))},
		{"sub missing", mint(0, "k1", with(base, "sub", nil))},
		{"sub without type", mint(0, "k1", with(base, "sub", "u-1"))},
		{"sub of unknown type", mint(0, "k1", with(base, "sub", "robot:r2"))},
		{"sub with empty id", mint(0, "k1", with(base, "sub", "user:"))},
		{"no scope", mint(0, "k1", with(base, "scope", nil))},
		{"blank scope", mint(0, "k1", with(base, "scope", "   "))},
		{"scope not a string", mint(0, "k1", with(base, "scope", []string{"session:read"}))},
		{"scopes with an empty string", mint(0, "k1", with(base, "scopes", []string{"session:read", ""}))},
		{"scopes with a number", mint(0, "k1", with(base, "scopes", []any{"session:read", 1}))},
		{"session_id empty", mint(0, "k1", with(base, "session_id", ""))},
		{"session_id number", mint(0, "k1", with(base, "session_id", 7))},
		{"session_id object", mint(0, "k1", with(base, "session_id", map[string]any{}))},
	}
	for _, c := range rejected {
		expectError(t, c.name, do(t, n, "GET", "/v1/sessions", nil, bearer(c.token)...), 401, "unauthorized", challengeInvalid)
	}

	accepted := []struct{ name, token string }{
		{"valid", valid},
		{"expired within leeway", mint(0, "k1", with(base, "exp", now-leeway/2))},
		{"nbf within leeway", mint(0, "k1", with(base, "nbf", now+leeway/2))},
		{"iat within leeway", mint(0, "k1", with(base, "iat", now+leeway/2))},
		{"aud array with ours", mint(0, "k1", with(base, "aud", []string{"x", audience}))},
		{"scopes array only", mint(0, "k1", with(base, "scope", nil, "scopes", []string{"session:read"}))},
		{"session_id null", mint(0, "k1", with(base, "session_id", raw("null")))},
		{"unknown extra claims", mint(0, "k1", with(base, "jti", "x", "roles", []string{"admin"}))},
		{"sub svc", mint(0, "k1", with(base, "sub", "svc:billing"))},
		{"sub org", mint(0, "k1", with(base, "sub", "org:acme"))},
		{"sub agent with colons", mint(0, "k1", with(base, "sub", "agent:a:b:c"))},
	}
	for _, c := range accepted {
		expectStatus(t, c.name, do(t, n, "GET", "/v1/sessions", nil, bearer(c.token)...), 200)
	}
}

// rawJSON is a claim value sent exactly as written (a float literal).
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// TestKeyRotation: a token of a kid the node does not know is refused;
// once the JWKS publishes the key it is accepted without a restart, and a
// key withdrawn from the JWKS stops being accepted.
func TestKeyRotation(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	n := startJWTNode(t, j, map[string]string{"STARCITE_AUTH_JWKS_REFRESH_MS": "600000"})
	c := claims("acme", "user:u-1", "session:read")
	old, next := mint(0, "k1", c), mint(1, "k2", c)

	expectStatus(t, "k1", do(t, n, "GET", "/v1/sessions", nil, bearer(old)...), 200)
	expectError(t, "k2 before rotation", do(t, n, "GET", "/v1/sessions", nil, bearer(next)...), 401, "unauthorized", challengeInvalid)

	j.set(devjwt.JWK("k1", &devjwt.Key(0).PublicKey), devjwt.JWK("k2", &devjwt.Key(1).PublicKey))
	// Forced refreshes are rate-limited to one per second: the first
	// request after that second picks the new key up.
	accepted := waitStatus(t, n, next, 200, 5*time.Second)
	if !accepted {
		t.Fatal("k2 not accepted within 5s of its publication")
	}
	expectStatus(t, "k1 after rotation", do(t, n, "GET", "/v1/sessions", nil, bearer(old)...), 200)

	// Many unknown kids at once: the JWKS sees a bounded number of fetches.
	before := j.fetches.Load()
	start := time.Now()
	for i := range 50 {
		expectError(t, "random kid", do(t, n, "GET", "/v1/sessions", nil, bearer(mint(2, fmt.Sprintf("r%d", i), c))...), 401, "unauthorized", challengeInvalid)
	}
	maxFetches := int64(time.Since(start)/time.Second) + 2
	if got := j.fetches.Load() - before; got > maxFetches {
		t.Fatalf("%d JWKS fetches for 50 unknown kids in %s: forced refreshes not rate-limited", got, time.Since(start))
	}
}

// TestKeyWithdrawal: a key removed from the JWKS stops being accepted at
// the next background refresh, tokens already verified (cached) included.
func TestKeyWithdrawal(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey), devjwt.JWK("k2", &devjwt.Key(1).PublicKey))
	n := startJWTNode(t, j, map[string]string{"STARCITE_AUTH_JWKS_REFRESH_MS": "1000"})
	c := claims("acme", "user:u-1", "session:read")
	old, other := mint(0, "k1", c), mint(1, "k2", c)
	expectStatus(t, "k1", do(t, n, "GET", "/v1/sessions", nil, bearer(old)...), 200)

	j.set(devjwt.JWK("k2", &devjwt.Key(1).PublicKey))
	fresh := mint(0, "k1", with(c, "jti", "fresh"))
	if !waitStatus(t, n, fresh, 401, 5*time.Second) {
		t.Fatal("a token of a withdrawn key is still accepted 5s later (refresh interval 1s)")
	}
	expectError(t, "cached k1 token after withdrawal", do(t, n, "GET", "/v1/sessions", nil, bearer(old)...), 401, "unauthorized", challengeInvalid)
	expectStatus(t, "k2 after withdrawal of k1", do(t, n, "GET", "/v1/sessions", nil, bearer(other)...), 200)
}

// waitStatus polls GET /v1/sessions with tok until it answers status.
func waitStatus(t *testing.T, n *harness.Node, tok string, status int, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if do(t, n, "GET", "/v1/sessions", nil, bearer(tok)...).status == status {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// TestJWKSDownAtBoot: a node boots while its JWKS is down, refuses every
// token quickly with 401 invalid_token, and accepts them once the JWKS
// answers, without a restart.
func TestJWKSDownAtBoot(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	j.status.Store(503)
	n := startJWTNode(t, j, nil)
	tok := mint(0, "k1", claims("acme", "user:u-1", "session:read"))
	start := time.Now()
	expectError(t, "JWKS down", do(t, n, "GET", "/v1/sessions", nil, bearer(tok)...), 401, "unauthorized", challengeInvalid)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("401 took %s", d)
	}
	j.status.Store(200)
	if !waitStatus(t, n, tok, 200, 5*time.Second) {
		t.Fatal("token not accepted within 5s of the JWKS coming up")
	}
}

// TestInvalidJWKSFailsClosed: one bad key makes the whole document
// unusable: even the well-formed key's tokens are refused.
func TestInvalidJWKSFailsClosed(t *testing.T) {
	bad := devjwt.JWK("k2", &devjwt.Key(1).PublicKey)
	bad["use"] = "enc"
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey), bad)
	n := startJWTNode(t, j, nil)
	tok := mint(0, "k1", claims("acme", "user:u-1", "session:read"))
	expectError(t, "JWKS with one bad key", do(t, n, "GET", "/v1/sessions", nil, bearer(tok)...), 401, "unauthorized", challengeInvalid)
	j.set(devjwt.JWK("k1", &devjwt.Key(0).PublicKey), devjwt.JWK("k2", &devjwt.Key(1).PublicKey))
	if !waitStatus(t, n, tok, 200, 5*time.Second) {
		t.Fatal("token not accepted within 5s of the JWKS being fixed")
	}
}

// TestTokensNeverLogged: with debug logging, no token reaches the log,
// whether sent in the header, in access_token, or inside a request the
// HTTP server could not parse (whose raw bytes it quotes).
func TestTokensNeverLogged(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	n := startJWTNode(t, j, map[string]string{"STARCITE_LOG_LEVEL": "debug"})
	good := mint(0, "k1", claims("acme", "user:u-1", scCreate, scRead, scAppend))
	bad := mint(1, "k1", claims("acme", "user:u-1", scRead))
	upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade"}

	do(t, n, "GET", "/v1/sessions", nil, bearer(good)...)
	do(t, n, "GET", "/v1/sessions", nil, bearer(bad)...)
	do(t, n, "GET", "/v1/sessions?access_token="+good, nil, upgrade...)
	do(t, n, "GET", "/v1/sessions?access_token="+bad, nil, upgrade...)
	do(t, n, "GET", "/v1/sessions/x/tail?cursor=1&access_token="+good, nil, upgrade...)
	do(t, n, "GET", "/v1/sessions/x/tail?access_token="+bad+"&cursor=1", nil, upgrade...)
	do(t, n, "GET", "/v1/nowhere?access_token="+good, nil)
	do(t, n, "POST", "/v1/sessions/x/append?access_token="+good, "{", bearer(good)...)
	// Requests fasthttp rejects while parsing, with the token in the
	// request line and in a header.
	for _, req := range []string{
		"GET /v1/sessions?access_token=" + good + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bad + "\r\nContent-Length: nope\r\n\r\n",
		"GET /v1/sessions?access_token=" + good + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bad + "\r\nbroken header line\r\n\r\n",
	} {
		rawRequest(t, n, req)
	}
	// The log is written asynchronously to the requests: wait for the
	// line of the last one.
	n.WaitFor(5*time.Second, "fasthttp error logged", func() bool {
		return strings.Count(n.Log(), "fasthttp:") >= 2
	})
	log := n.Log()
	for _, tok := range []string{good, bad} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		for _, piece := range []string{tok, tok[:40], sig[:24], sig[len(sig)-24:]} {
			if strings.Contains(log, piece) {
				t.Fatalf("the log holds a token (%q…):\n%s", piece[:16], log)
			}
		}
	}
	if !strings.Contains(log, "[REDACTED]") {
		t.Fatalf("no redacted request in the log:\n%s", log)
	}
}

// rawRequest writes req on a fresh connection and reads until the server
// closes it.
func rawRequest(t *testing.T, n *harness.Node, req string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
}

// TestNoneModeIgnoresTokens: STARCITE_AUTH_MODE=none reads no token at
// all: any Authorization header is ignored and every request runs as the
// service principal (docs/api.md#auth-modes).
func TestNoneModeIgnoresTokens(t *testing.T) {
	n := harness.StartNode(t, harness.Options{Env: map[string]string{"STARCITE_AUTH_MODE": "none"}})
	upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade"}
	r := do(t, n, "POST", "/v1/sessions", map[string]any{"id": "n-1"}, "Authorization", "Basic x", "Authorization", "Bearer a b")
	expectStatus(t, "create with junk Authorization headers", r, 201)
	var created struct {
		Creator map[string]string `json:"creator_principal"`
	}
	decode(t, r, &created)
	if want := map[string]string{"tenant_id": "service", "id": "service", "type": "service"}; !mapsEqual(created.Creator, want) {
		t.Errorf("creator_principal %v", created.Creator)
	}
	expectStatus(t, "list with access_token and a header on an upgrade", do(t, n, "GET", "/v1/sessions?access_token=x", nil, append([]string{"Authorization", "Bearer y"}, upgrade...)...), 200)
	expectStatus(t, "append without a token", do(t, n, "POST", "/v1/sessions/n-1/append", appendBody("p", 1)), 201)
	if r := do(t, n, "GET", "/v1/sessions", nil); r.header.Get("www-authenticate") != "" {
		t.Errorf("none mode sends www-authenticate %q", r.header.Get("www-authenticate"))
	}
}
