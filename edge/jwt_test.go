package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"starcite/app/devjwt"
)

// ---- test fixtures: a JWKS server, token minting, a clock (keys and
// RS256 signatures come from package devjwt) ----

const (
	testIssuer   = "https://issuer.test"
	testAudience = "starcite-api"
)

// jwksServer is a JWKS endpoint whose document and status the test sets.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int64
	fetches atomic.Int64
	hits    chan served   // one value per request, after the reply is written
	started chan struct{} // one value per request, when it arrives
	mu      sync.Mutex
	method  string
	accept  string
	block   chan struct{} // when non-nil, requests wait for it to close
}

// served is what one JWKS request was answered with.
type served struct {
	status int
	body   *[]byte
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{hits: make(chan served, 1024), started: make(chan struct{}, 1024)}
	s.setBody(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.method, s.accept = r.Method, r.Header.Get("Accept")
		block := s.block
		s.mu.Unlock()
		s.started <- struct{}{}
		if block != nil {
			<-block
		}
		s.fetches.Add(1)
		status, body := int(s.status.Load()), s.body.Load()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(*body)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		s.hits <- served{status, body}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setBody(b []byte) { s.body.Store(&b) }

// waitHits waits for n more requests to have been answered and returns
// the last answer.
func (s *jwksServer) waitHits(t testing.TB, n int) served {
	t.Helper()
	var last served
	for range n {
		select {
		case last = <-s.hits:
		case <-time.After(10 * time.Second):
			t.Fatalf("JWKS server: no request within 10s (%d so far)", s.fetches.Load())
		}
	}
	return last
}

// waitServed waits until a request was answered with status and body,
// then for one more request: fetches run one at a time, so by then the
// answer has been processed.
func (s *jwksServer) waitServed(t testing.TB, status int, body []byte) {
	t.Helper()
	for {
		h := s.waitHits(t, 1)
		if h.status == status && string(*h.body) == string(body) {
			break
		}
	}
	s.waitHits(t, 1)
}

// clock is a settable clock for the claim checks, the token cache and
// the forced-refresh rate limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 250_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *clock) Unix() int64 { return c.Now().Unix() }

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newTestAuth returns a JWTAuth on clk against the JWKS at url.
func newTestAuth(t testing.TB, url string, clk *clock, refresh time.Duration) *JWTAuth {
	t.Helper()
	a, err := NewJWTAuth(JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: url,
		Leeway: time.Second, JWKSRefresh: refresh, now: clk.Now}, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func rsaSign(key *rsa.PrivateKey, h crypto.Hash, input string) []byte {
	hh := h.New()
	hh.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, hh.Sum(nil))
	if err != nil {
		panic(err)
	}
	return sig
}

// claimsAt are valid claims at unix time now.
func claimsAt(now int64) map[string]any {
	return map[string]any{
		"iss": testIssuer, "aud": testAudience, "exp": now + 3600, "iat": now, "nbf": now,
		"tenant_id": "acme", "sub": "user:u-42", "scope": "session:read session:append",
	}
}

func token(key *rsa.PrivateKey, kid string, claims any) string {
	return devjwt.Sign(key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, claims)
}

// requestCtx is a request carrying the given headers (name, value pairs;
// a name may repeat) to uri.
func requestCtx(uri string, headers ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Add(headers[i], headers[i+1])
	}
	return &ctx
}

func authWith(a *JWTAuth, tok string) (Principal, *apiError) {
	return a.Authenticate(requestCtx("/v1/sessions", "Authorization", "Bearer "+tok))
}

// ---- token transport and 401 shapes (docs/api.md#token-transport) ----

func TestRequestToken(t *testing.T) {
	const up = "Upgrade"
	tests := []struct {
		name    string
		uri     string
		headers []string
		token   string    // when ok
		err     *apiError // when not
	}{
		{"no token", "/v1/sessions", nil, "", errAuthMissing},
		{"bearer", "/v1/sessions", []string{"Authorization", "Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"scheme in any case", "/", []string{"Authorization", "bEARER tok"}, "tok", nil},
		{"value and token trimmed", "/", []string{"Authorization", "  Bearer   tok  "}, "tok", nil},
		{"scheme only", "/", []string{"Authorization", "Bearer"}, "", errAuthMalformed},
		{"scheme and spaces", "/", []string{"Authorization", "Bearer   "}, "", errAuthMalformed},
		{"empty header", "/", []string{"Authorization", ""}, "", errAuthMalformed},
		{"basic", "/", []string{"Authorization", "Basic dXNlcjpwYXNz"}, "", errAuthMalformed},
		{"token with a space", "/", []string{"Authorization", "Bearer a b"}, "", errAuthMalformed},
		{"two tokens in one header", "/", []string{"Authorization", "Bearer one, Bearer two"}, "", errAuthMalformed},
		{"comma in the token", "/", []string{"Authorization", "Bearer a,b"}, "", errAuthMalformed},
		{"tab instead of space", "/", []string{"Authorization", "Bearer\ttok"}, "", errAuthMalformed},
		{"two headers", "/", []string{"Authorization", "Bearer a", "Authorization", "Bearer a"}, "", errAuthMalformed},
		{"two headers, one empty", "/", []string{"Authorization", "Bearer a", "Authorization", ""}, "", errAuthMalformed},
		{"access_token without upgrade is ignored", "/v1/sessions?access_token=tok", nil, "", errAuthMissing},
		{"access_token without upgrade beside a header", "/v1/sessions?access_token=x", []string{"Authorization", "Bearer tok"}, "tok", nil},
		{"access_token on an upgrade", "/t?access_token=tok", []string{up, "websocket"}, "tok", nil},
		{"upgrade in a list, any case", "/t?access_token=tok", []string{up, "h2c, WebSocket"}, "tok", nil},
		{"upgrade among several headers", "/t?access_token=tok", []string{up, "h2c", up, "websocket"}, "tok", nil},
		{"other upgrade ignores access_token", "/t?access_token=tok", []string{up, "h2c"}, "", errAuthMissing},
		{"access_token trimmed", "/t?access_token=+tok+", []string{up, "websocket"}, "tok", nil},
		{"access_token decoded", "/t?access_token=a%2Eb", []string{up, "websocket"}, "a.b", nil},
		{"bad escape kept as is", "/t?access_token=a%ZZ", []string{up, "websocket"}, "a%ZZ", nil},
		{"last access_token wins", "/t?access_token=a&access_token=b", []string{up, "websocket"}, "b", nil},
		{"empty access_token", "/t?access_token=", []string{up, "websocket"}, "", errAuthMalformed},
		{"blank access_token", "/t?access_token=%20", []string{up, "websocket"}, "", errAuthMalformed},
		{"access_token with a space", "/t?access_token=a+b", []string{up, "websocket"}, "", errAuthMalformed},
		{"access_token with a comma", "/t?access_token=a,b", []string{up, "websocket"}, "", errAuthMalformed},
		{"header and access_token on an upgrade", "/t?access_token=tok", []string{up, "websocket", "Authorization", "Bearer tok"}, "", errAuthMalformed},
		{"bad header and access_token", "/t?access_token=tok", []string{up, "websocket", "Authorization", "Basic x"}, "", errAuthMalformed},
		{"header on an upgrade", "/t", []string{up, "websocket", "Authorization", "Bearer tok"}, "tok", nil},
		{"upgrade without any token", "/t", []string{up, "websocket"}, "", errAuthMissing},
		{"list form of access_token is not the parameter", "/t?access_token[]=tok", []string{up, "websocket"}, "", errAuthMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := requestToken(requestCtx(tt.uri, tt.headers...))
			if err != tt.err || tok != tt.token {
				t.Fatalf("got (%q, %v), want (%q, %v)", tok, challengeOf(err), tt.token, challengeOf(tt.err))
			}
		})
	}
}

func challengeOf(e *apiError) string {
	if e == nil {
		return "<nil>"
	}
	return e.challenge()
}

func TestUnauthorizedResponses(t *testing.T) {
	tests := []struct {
		err       *apiError
		challenge string
	}{
		{errAuthMissing, `Bearer realm="starcite"`},
		{errAuthMalformed, `Bearer realm="starcite", error="invalid_request", error_description="Malformed bearer token"`},
		{errAuthInvalid, `Bearer realm="starcite", error="invalid_token"`},
	}
	for _, tt := range tests {
		var ctx fasthttp.RequestCtx
		writeError(&ctx, tt.err)
		if ctx.Response.StatusCode() != 401 || string(ctx.Response.Body()) != `{"error":"unauthorized","message":"Unauthorized"}` {
			t.Errorf("%s: %d %s", tt.challenge, ctx.Response.StatusCode(), ctx.Response.Body())
		}
		if got := string(ctx.Response.Header.Peek("www-authenticate")); got != tt.challenge {
			t.Errorf("www-authenticate %q, want %q", got, tt.challenge)
		}
	}
	var ctx fasthttp.RequestCtx
	writeError(&ctx, errForbiddenScope)
	if h := ctx.Response.Header.Peek("www-authenticate"); h != nil {
		t.Errorf("403 carries www-authenticate %q", h)
	}
}

// ---- token verification (docs/api.md#token-verification) ----

func TestVerifyClaims(t *testing.T) {
	clk := newClock()
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &devjwt.Key(0).PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	now := clk.Unix()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	del := func(c map[string]any, k string) { delete(c, k) }

	tests := []struct {
		name   string
		edit   func(c map[string]any)
		ok     bool
		expect func(t *testing.T, p Principal) // optional checks of a valid token
	}{
		{"valid", func(map[string]any) {}, true, func(t *testing.T, p Principal) {
			want := Principal{TenantID: "acme", ID: "u-42", Type: "user", Scopes: ScopeRead | ScopeAppend, Expires: now + 3600}
			if p != want {
				t.Fatalf("principal %+v, want %+v", p, want)
			}
		}},
		// iss
		{"iss missing", func(c map[string]any) { del(c, "iss") }, false, nil},
		{"iss other", func(c map[string]any) { c["iss"] = "https://evil.test" }, false, nil},
		{"iss prefix", func(c map[string]any) { c["iss"] = testIssuer + "/" }, false, nil},
		{"iss not a string", func(c map[string]any) { c["iss"] = []string{testIssuer} }, false, nil},
		// aud
		{"aud missing", func(c map[string]any) { del(c, "aud") }, false, nil},
		{"aud other", func(c map[string]any) { c["aud"] = "other" }, false, nil},
		{"aud array containing", func(c map[string]any) { c["aud"] = []string{"other", testAudience} }, true, nil},
		{"aud array not containing", func(c map[string]any) { c["aud"] = []string{"other"} }, false, nil},
		{"aud empty array", func(c map[string]any) { c["aud"] = []string{} }, false, nil},
		{"aud array with a non-string", func(c map[string]any) { c["aud"] = []any{testAudience, 1} }, false, nil},
		{"aud array with null", func(c map[string]any) { c["aud"] = []any{testAudience, nil} }, false, nil},
		{"aud number", func(c map[string]any) { c["aud"] = 5 }, false, nil},
		{"aud null", func(c map[string]any) { c["aud"] = nil }, false, nil},
		// exp
		{"exp missing", func(c map[string]any) { del(c, "exp") }, false, nil},
		{"exp null", func(c map[string]any) { c["exp"] = nil }, false, nil},
		{"exp float", func(c map[string]any) { c["exp"] = raw("1.7e9") }, false, nil},
		{"exp float with zero fraction", func(c map[string]any) { c["exp"] = raw(fmt.Sprintf("%d.0", now+3600)) }, false, nil},
		{"exp exponent", func(c map[string]any) { c["exp"] = raw("2E9") }, false, nil},
		{"exp string", func(c map[string]any) { c["exp"] = fmt.Sprint(now + 3600) }, false, nil},
		{"exp negative", func(c map[string]any) { c["exp"] = -1 }, false, nil},
		{"exp beyond int64", func(c map[string]any) { c["exp"] = raw("99999999999999999999999") }, true, nil},
		{"exp now", func(c map[string]any) { c["exp"] = now }, true, nil},
		{"exp within leeway", func(c map[string]any) { c["exp"] = now - 1 }, true, nil},
		{"exp past leeway", func(c map[string]any) { c["exp"] = now - 2 }, false, nil},
		{"exp zero", func(c map[string]any) { c["exp"] = 0 }, false, nil},
		// nbf
		{"nbf absent", func(c map[string]any) { del(c, "nbf") }, true, nil},
		{"nbf null", func(c map[string]any) { c["nbf"] = nil }, true, nil},
		{"nbf within leeway", func(c map[string]any) { c["nbf"] = now + 1 }, true, nil},
		{"nbf in the future", func(c map[string]any) { c["nbf"] = now + 2 }, false, nil},
		{"nbf far in the future", func(c map[string]any) { c["nbf"] = raw("99999999999999999999999") }, false, nil},
		{"nbf float", func(c map[string]any) { c["nbf"] = raw(fmt.Sprintf("%d.5", now-10)) }, false, nil},
		{"nbf string", func(c map[string]any) { c["nbf"] = "0" }, false, nil},
		// iat
		{"iat absent", func(c map[string]any) { del(c, "iat") }, true, nil},
		{"iat within leeway", func(c map[string]any) { c["iat"] = now + 1 }, true, nil},
		{"iat in the future", func(c map[string]any) { c["iat"] = now + 2 }, false, nil},
		{"iat float", func(c map[string]any) { c["iat"] = raw("1.0") }, false, nil},
		{"iat negative", func(c map[string]any) { c["iat"] = -5 }, true, nil},
		// tenant_id
		{"tenant_id missing", func(c map[string]any) { del(c, "tenant_id") }, false, nil},
		{"tenant_id empty", func(c map[string]any) { c["tenant_id"] = "" }, false, nil},
		{"tenant_id number", func(c map[string]any) { c["tenant_id"] = 7 }, false, nil},
		{"tenant_id with NUL", func(c map[string]any) { c["tenant_id"] = "ac\x00me" }, false, nil},
		{"sub with NUL", func(c map[string]any) { c["sub"] = "user:u\x00" }, false, nil},
		{"NUL in an unrelated claim", func(c map[string]any) { c["note"] = "\x00" }, false, nil},
		// sub
		{"sub missing", func(c map[string]any) { del(c, "sub") }, false, nil},
		{"sub number", func(c map[string]any) { c["sub"] = 42 }, false, nil},
		{"sub without type", func(c map[string]any) { c["sub"] = "u-42" }, false, nil},
		{"sub empty type", func(c map[string]any) { c["sub"] = ":u-42" }, false, nil},
		{"sub empty id", func(c map[string]any) { c["sub"] = "user:" }, false, nil},
		{"sub unknown type", func(c map[string]any) { c["sub"] = "robot:r2" }, false, nil},
		{"sub type case matters", func(c map[string]any) { c["sub"] = "User:u-42" }, false, nil},
		{"sub agent", func(c map[string]any) { c["sub"] = "agent:a:b" }, true, func(t *testing.T, p Principal) {
			if p.Type != "agent" || p.ID != "a:b" || p.Actor() != "agent:a:b" {
				t.Fatalf("principal %+v", p)
			}
		}},
		{"sub svc", func(c map[string]any) { c["sub"] = "svc:billing" }, true, func(t *testing.T, p Principal) {
			if p.Type != "service" || p.ID != "billing" || p.Actor() != "service:billing" {
				t.Fatalf("principal %+v", p)
			}
		}},
		{"sub org", func(c map[string]any) { c["sub"] = "org:acme" }, true, func(t *testing.T, p Principal) {
			if p.Type != "service" || p.ID != "acme" {
				t.Fatalf("principal %+v", p)
			}
		}},
		// scope and scopes
		{"scope whitespace runs", func(c map[string]any) { c["scope"] = " session:create\t\nsession:read   session:append " }, true, func(t *testing.T, p Principal) {
			if p.Scopes != ScopeCreate|ScopeRead|ScopeAppend {
				t.Fatalf("scopes %b", p.Scopes)
			}
		}},
		{"scope not a string", func(c map[string]any) { c["scope"] = []string{"session:read"} }, false, nil},
		{"scope empty and no scopes", func(c map[string]any) { c["scope"] = "  " }, false, nil},
		{"no scope at all", func(c map[string]any) { del(c, "scope") }, false, nil},
		{"scope null and no scopes", func(c map[string]any) { c["scope"] = nil }, false, nil},
		{"scopes array", func(c map[string]any) { del(c, "scope"); c["scopes"] = []string{"session:create"} }, true, func(t *testing.T, p Principal) {
			if p.Scopes != ScopeCreate {
				t.Fatalf("scopes %b", p.Scopes)
			}
		}},
		{"scope and scopes unite", func(c map[string]any) {
			c["scope"] = "session:read"
			c["scopes"] = []string{"session:create", "session:read"}
		}, true, func(t *testing.T, p Principal) {
			if p.Scopes != ScopeCreate|ScopeRead {
				t.Fatalf("scopes %b", p.Scopes)
			}
		}},
		{"scopes empty array", func(c map[string]any) { del(c, "scope"); c["scopes"] = []string{} }, false, nil},
		{"scopes empty string", func(c map[string]any) { c["scopes"] = []string{"session:read", ""} }, false, nil},
		{"scopes non-string", func(c map[string]any) { c["scopes"] = []any{"session:read", 1} }, false, nil},
		{"scopes a string", func(c map[string]any) { c["scopes"] = "session:read" }, false, nil},
		{"unknown scopes only", func(c map[string]any) { c["scope"] = "admin *" }, true, func(t *testing.T, p Principal) {
			if p.Scopes != 0 {
				t.Fatalf("scopes %b", p.Scopes)
			}
		}},
		// session_id
		{"session_id null", func(c map[string]any) { c["session_id"] = nil }, true, func(t *testing.T, p Principal) {
			if p.SessionID != "" {
				t.Fatalf("locked to %q", p.SessionID)
			}
		}},
		{"session_id", func(c map[string]any) { c["session_id"] = "ses-1" }, true, func(t *testing.T, p Principal) {
			if p.SessionID != "ses-1" || p.AllowsSession("ses-2") || !p.AllowsSession("ses-1") {
				t.Fatalf("principal %+v", p)
			}
		}},
		{"session_id empty", func(c map[string]any) { c["session_id"] = "" }, false, nil},
		{"session_id number", func(c map[string]any) { c["session_id"] = 1 }, false, nil},
		{"session_id object", func(c map[string]any) { c["session_id"] = map[string]any{} }, false, nil},
		// unknown claims
		{"extra claims", func(c map[string]any) { c["x"] = map[string]any{"y": 1} }, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsAt(now)
			tt.edit(c)
			p, err := authWith(a, token(devjwt.Key(0), "k1", c))
			switch {
			case tt.ok && err != nil:
				t.Fatalf("rejected: %s", err.challenge())
			case !tt.ok && err != errAuthInvalid:
				t.Fatalf("got %+v, %v; want 401 invalid_token", p, err)
			case tt.ok && tt.expect != nil:
				tt.expect(t, p)
			}
		})
	}
}

func TestVerifyHeaderAndSignature(t *testing.T) {
	clk := newClock()
	k0, k1 := devjwt.Key(0), devjwt.Key(1)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	claims := mustJSON(claimsAt(clk.Unix()))
	input := func(header map[string]any) string { return b64(mustJSON(header)) + "." + b64(claims) }

	pubDER, _ := x509.MarshalPKIXPublicKey(&k0.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) string {
		in := input(map[string]any{"alg": "HS256", "kid": "k1"})
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256 := func() string {
		in := input(map[string]any{"alg": "ES256", "kid": "k1"})
		h := sha256.Sum256([]byte(in))
		r, s, _ := ecdsa.Sign(rand.Reader, ecKey, h[:])
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return in + "." + b64(sig)
	}
	signed := func(header map[string]any, h crypto.Hash) string {
		in := input(header)
		return in + "." + b64(rsaSign(k0, h, in))
	}
	pss := func() string {
		in := input(map[string]any{"alg": "PS256", "kid": "k1"})
		h := sha256.Sum256([]byte(in))
		sig, _ := rsa.SignPSS(rand.Reader, k0, crypto.SHA256, h[:], nil)
		return in + "." + b64(sig)
	}
	good := signed(map[string]any{"alg": "RS256", "kid": "k1"}, crypto.SHA256)
	parts := strings.Split(good, ".")

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", good, true},
		{"padded segments", parts[0] + "==." + parts[1] + "." + parts[2], false}, // padding changes the signing input
		{"no kid", signed(map[string]any{"alg": "RS256"}, crypto.SHA256), false},
		{"empty kid", signed(map[string]any{"alg": "RS256", "kid": ""}, crypto.SHA256), false},
		{"kid not a string", signed(map[string]any{"alg": "RS256", "kid": 1}, crypto.SHA256), false},
		{"unknown kid", signed(map[string]any{"alg": "RS256", "kid": "k9"}, crypto.SHA256), false},
		{"no alg", signed(map[string]any{"kid": "k1"}, crypto.SHA256), false},
		{"alg none", input(map[string]any{"alg": "none", "kid": "k1"}) + ".", false},
		{"alg none with a signature", input(map[string]any{"alg": "none", "kid": "k1"}) + "." + parts[2], false},
		{"alg rs256 lowercase", signed(map[string]any{"alg": "rs256", "kid": "k1"}, crypto.SHA256), false},
		{"HS256 with the PEM public key", hs256(pubPEM), false},
		{"HS256 with the DER public key", hs256(pubDER), false},
		{"HS256 with the JWK modulus", hs256(k0.PublicKey.N.Bytes()), false},
		{"ES256", es256(), false},
		{"RS384 by the right key", signed(map[string]any{"alg": "RS384", "kid": "k1"}, crypto.SHA384), false},
		{"RS512 header over an RS256 signature", signed(map[string]any{"alg": "RS512", "kid": "k1"}, crypto.SHA256), false},
		{"PS256 by the right key", pss(), false},
		{"crit header", signed(map[string]any{"alg": "RS256", "kid": "k1", "crit": []string{"b64"}, "b64": false}, crypto.SHA256), false},
		{"signed by another key", devjwt.Sign(k1, map[string]any{"alg": "RS256", "kid": "k1"}, claimsAt(clk.Unix())), false},
		{"payload swapped", parts[0] + "." + b64([]byte(`{"iss":"x"}`)) + "." + parts[2], false},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:40], false},
		{"signature empty", parts[0] + "." + parts[1] + ".", false},
		{"signature not base64url", parts[0] + "." + parts[1] + "." + parts[2] + "!", false},
		{"header not base64url", "%%%." + parts[1] + "." + parts[2], false},
		{"header not JSON", b64([]byte("kid")) + "." + parts[1] + "." + parts[2], false},
		{"header an array", b64([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2], false},
		{"two segments", parts[0] + "." + parts[1], false},
		{"four segments", good + ".x", false},
		{"not a JWT", "hello", false},
		{"JSON serialization", `{"payload":"x"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authWith(a, tt.token)
			if tt.ok != (err == nil) || (err != nil && err != errAuthInvalid) {
				t.Fatalf("ok=%v err=%v", tt.ok, challengeOf(err))
			}
		})
	}
}

func TestVerifyClaimsNotJSONObject(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	for _, payload := range []string{`[]`, `"x"`, `null`, `{"iss":`, "\xff"} {
		in := b64(mustJSON(map[string]any{"alg": "RS256", "kid": "k1"})) + "." + b64([]byte(payload))
		tok := in + "." + b64(rsaSign(k0, crypto.SHA256, in))
		if _, err := authWith(a, tok); err != errAuthInvalid {
			t.Errorf("payload %q: %v", payload, challengeOf(err))
		}
	}
}

func TestJSONInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"17", 17, true}, {"-17", -17, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 1<<63 - 1, true},
		{"-99999999999999999999", -(1<<63 - 1), true},
		{"", 0, false}, {"-", 0, false}, {"01", 0, false}, {"1.0", 0, false}, {"1e3", 0, false},
		{"1E3", 0, false}, {`"1"`, 0, false}, {"null", 0, false}, {"+1", 0, false}, {"99999999999999999999x", 0, false},
	}
	for _, tt := range tests {
		got, ok := jsonInt(json.RawMessage(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("jsonInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// ---- the verified-token cache ----

func TestTokenCacheAvoidsVerification(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	tok := token(k0, "k1", claimsAt(clk.Unix()))
	for i := range 100 {
		if _, err := authWith(a, tok); err != nil {
			t.Fatalf("request %d: %s", i, err.challenge())
		}
	}
	if n := a.verifications.Load(); n != 1 {
		t.Fatalf("%d RSA verifications for one token used 100 times, want 1", n)
	}
	// A rejected token is never cached: each attempt verifies again.
	bad := token(devjwt.Key(1), "k1", claimsAt(clk.Unix()))
	for range 3 {
		if _, err := authWith(a, bad); err != errAuthInvalid {
			t.Fatal("a token signed by another key was accepted")
		}
	}
	if n := a.verifications.Load(); n != 4 {
		t.Fatalf("%d verifications, want 4", n)
	}
}

func TestTokenCacheNeverOutlivesExp(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	c := claimsAt(clk.Unix())
	exp := clk.Unix() + 10
	c["exp"] = exp
	tok := token(k0, "k1", c)
	if _, err := authWith(a, tok); err != nil {
		t.Fatal(err.challenge())
	}
	sum := sha256.Sum256([]byte(tok))
	// The last instant the pipeline accepts: the second exp+leeway.
	clk.Advance(time.Duration(exp+1-clk.Unix())*time.Second + 999*time.Millisecond - time.Duration(clk.Now().Nanosecond()))
	if clk.Unix() != exp+1 {
		t.Fatalf("clock at %d, want %d", clk.Unix(), exp+1)
	}
	if _, err := authWith(a, tok); err != nil {
		t.Fatalf("rejected within the leeway: %s", err.challenge())
	}
	if n := a.verifications.Load(); n != 1 {
		t.Fatalf("%d verifications: the cached token was verified again", n)
	}
	// One nanosecond into the next second it is rejected, and the cache
	// has dropped it.
	clk.Advance(time.Second - time.Duration(clk.Now().Nanosecond()))
	if _, err := authWith(a, tok); err != errAuthInvalid {
		t.Fatalf("an expired token was accepted: %v", challengeOf(err))
	}
	if _, ok := a.tokens.GetIfPresent(sum); ok {
		t.Fatal("the cache still holds an expired token")
	}
}

func TestTokenCacheFollowsTheKeySet(t *testing.T) {
	clk := newClock()
	k0, k1 := devjwt.Key(0), devjwt.Key(1)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	old := token(k0, "k1", claimsAt(clk.Unix()))
	if _, err := authWith(a, old); err != nil {
		t.Fatal(err.challenge())
	}

	// Rotation: k2 is published next to k1. A token signed by k2 forces
	// a refresh; the token of k1 stays a cache hit across it.
	srv.setBody(devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey), devjwt.JWK("k2", &k1.PublicKey)))
	if _, err := authWith(a, token(k1, "k2", claimsAt(clk.Unix()))); err != nil {
		t.Fatalf("token of the new key: %s", err.challenge())
	}
	before := a.verifications.Load()
	if _, err := authWith(a, old); err != nil {
		t.Fatalf("cached token after rotation: %s", err.challenge())
	}
	if a.verifications.Load() != before {
		t.Fatal("the cached token was verified again although its key did not change")
	}

	// k1 is withdrawn: once the set no longer holds it, its cached token
	// is rejected like any token of an unknown kid.
	srv.setBody(devjwt.JWKS(devjwt.JWK("k2", &k1.PublicKey)))
	clk.Advance(forcedRefreshInterval)
	if _, err := authWith(a, token(k1, "k3", claimsAt(clk.Unix()))); err != errAuthInvalid {
		t.Fatal("unknown kid k3 accepted")
	}
	if a.keys.current("k1") != nil {
		t.Fatal("k1 still in the key set after the refresh")
	}
	if _, err := authWith(a, old); err != errAuthInvalid {
		t.Fatal("a cached token of a withdrawn key was accepted")
	}
}

// ---- Authenticate end to end on a request ----

func TestAuthenticateRequest(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	c := claimsAt(clk.Unix())
	c["session_id"] = "ses-1"
	tok := token(k0, "k1", c)
	p, err := a.Authenticate(requestCtx("/v1/sessions/ses-1/tail?cursor=0&access_token="+tok, "Upgrade", "websocket"))
	if err != nil {
		t.Fatal(err.challenge())
	}
	if p.SessionID != "ses-1" || p.TenantID != "acme" || p.Expires != clk.Unix()+3600 || p.open {
		t.Fatalf("principal %+v", p)
	}
	if _, err := a.Authenticate(requestCtx("/v1/sessions?access_token=" + tok)); err != errAuthMissing {
		t.Fatalf("access_token without upgrade: %v", challengeOf(err))
	}
	if _, err := a.Authenticate(requestCtx("/v1/sessions", "Authorization", "Bearer x")); err != errAuthInvalid {
		t.Fatalf("garbage token: %v", challengeOf(err))
	}
}

func TestNewJWTAuthRejectsBadConfig(t *testing.T) {
	ok := JWTConfig{Issuer: "i", Audience: "a", JWKSURL: "http://127.0.0.1:1/jwks", Leeway: time.Second, JWKSRefresh: time.Minute}
	tests := []struct {
		name string
		edit func(c *JWTConfig)
	}{
		{"no issuer", func(c *JWTConfig) { c.Issuer = "" }},
		{"no audience", func(c *JWTConfig) { c.Audience = "" }},
		{"no url", func(c *JWTConfig) { c.JWKSURL = "" }},
		{"ftp url", func(c *JWTConfig) { c.JWKSURL = "ftp://host/jwks" }},
		{"relative url", func(c *JWTConfig) { c.JWKSURL = "/jwks" }},
		{"negative leeway", func(c *JWTConfig) { c.Leeway = -time.Second }},
		{"zero refresh", func(c *JWTConfig) { c.JWKSRefresh = 0 }},
		{"negative hard expiry", func(c *JWTConfig) { c.JWKSHardExpiry = -time.Second }},
		{"leeway one second over the cap", func(c *JWTConfig) { c.Leeway = MaxLeeway + time.Second }},
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		if a, err := NewJWTAuth(c, discardLog); err == nil {
			a.Close()
			t.Errorf("%s: accepted", tt.name)
		}
	}
	c := ok
	c.Leeway = MaxLeeway
	a, err := NewJWTAuth(c, discardLog)
	if err != nil {
		t.Fatalf("leeway at the cap: %v", err)
	}
	a.Close()
}

func TestScrubLog(t *testing.T) {
	tok := token(devjwt.Key(0), "k1", claimsAt(1))
	msgs := []string{
		`error when serving connection "1"<->"2": error when reading request headers: x: buffer size=9, contents: "GET /v1/sessions?access_token=` + tok + ` HTTP/1.1\r\nAuthorization: Bearer ` + tok + `\r\n"`,
		`#0001 - 1<->2 - GET http://h/v1/sessions/x/tail?cursor=1&access_token=secret-token&x=1 - oops`,
		`GET /v1/sessions?access%5Ftoken=secret-token`,
		`header Authorization: Bearer secret-token`,
		`a bare ` + tok,
	}
	for _, m := range msgs {
		got := scrubLog(m)
		if strings.Contains(got, "secret-token") || strings.Contains(got, tok[:20]) || strings.Contains(got, tok[len(tok)-20:]) {
			t.Errorf("scrubLog left a token in %q", got)
		}
	}
	if got := scrubLog("GET /v1/sessions?cursor=abc"); got != "GET /v1/sessions?cursor=abc" {
		t.Errorf("scrubLog changed %q", got)
	}
}

// ---- benchmarks: RSA verification against a cache hit ----

func benchAuth(b *testing.B) (*JWTAuth, string) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(b, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(b, srv.URL, clk, time.Minute)
	return a, token(k0, "k1", claimsAt(clk.Unix()))
}

// BenchmarkVerifyRSA is the full pipeline a new token goes through:
// decode, RS256 verification, claim checks.
func BenchmarkVerifyRSA(b *testing.B) {
	a, tok := benchAuth(b)
	now := a.now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.verifyToken(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached is a repeated token: hash and cache lookup.
func BenchmarkVerifyCached(b *testing.B) {
	a, tok := benchAuth(b)
	if _, err := a.verify(tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateCached adds the header parsing of a request.
func BenchmarkAuthenticateCached(b *testing.B) {
	a, tok := benchAuth(b)
	ctx := requestCtx("/v1/sessions/x/append", "Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
