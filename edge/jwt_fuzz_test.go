package edge

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/fsm/jsonc"
)

// Fuzz targets of JWT/JOSE parsing (docs/api.md#authentication):
//
//   - FuzzVerifyToken: any string as a token. Accepted only when an
//     independent check (standard library RSA, the documented header rules)
//     agrees it is a compact JWS signed by the JWKS key under RS256.
//   - FuzzSignedToken: any JOSE header and claims, correctly signed, so
//     the fuzzer explores header and claim parsing beyond the signature.
//     Accepted exactly when a model of docs/api.md#token-verification
//     and docs/api.md#identity-claims written from the documents
//     accepts, and then the principal is the one the claims describe.
//   - FuzzParseJWKS: any JWKS document.
//   - FuzzRequestToken: any Authorization headers and query string.
//
// None may panic. The key and the JWKS endpoint are local; a fixed clock
// keeps forced refreshes rate-limited, so fuzzing never waits on a fetch.

const fuzzKid = "fuzz-1"

var (
	fuzzKeyOnce sync.Once
	fuzzKey     *rsa.PrivateKey
)

// fuzzSigningKey is a 1024-bit key (the smallest Go generates): fuzzing
// signs every input and a small key keeps that cheap.
func fuzzSigningKey() *rsa.PrivateKey {
	fuzzKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		fuzzKey = k
	})
	return fuzzKey
}

// fuzzAuth is a JWTAuth trusting fuzzSigningKey under fuzzKid, on a fixed
// clock; it returns the clock's Unix time too.
func fuzzAuth(f *testing.F) (*JWTAuth, int64) {
	srv := newJWKSServer(f, devjwt.JWKS(devjwt.JWK(fuzzKid, &fuzzSigningKey().PublicKey)))
	clk := newClock()
	a := newTestAuth(f, srv.URL, clk, time.Hour)
	if a.keys.current(fuzzKid) == nil {
		f.Fatal("the JWKS was not loaded")
	}
	return a, clk.Unix()
}

func b64s(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signInput signs a compact JWS signing input with the fuzz key.
func signInput(input string) string {
	return input + "." + b64(rsaSign(fuzzSigningKey(), crypto.SHA256, input))
}

func fuzzClaims(now int64) string {
	return string(mustJSON(map[string]any{
		"iss": testIssuer, "aud": testAudience, "exp": now + 3600, "iat": now, "nbf": now,
		"tenant_id": "acme", "sub": "user:u-42", "scope": "session:read session:append",
	}))
}

const fuzzHeader = `{"alg":"RS256","typ":"JWT","kid":"` + fuzzKid + `"}`

// ---- the independent checks ----

// stdVerify is what a correct verifier accepts at the signature level:
// three base64url segments (padding tolerated, as the README allows), a
// JSON-object header naming RS256 and the JWKS kid without crit, and a
// PKCS #1 v1.5 SHA-256 signature by the key, checked with crypto/rsa.
func stdVerify(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	dec := func(s string) ([]byte, bool) {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		return b, err == nil
	}
	header, ok := dec(parts[0])
	if !ok || !headerOK(header) {
		return false
	}
	if _, ok := dec(parts[1]); !ok {
		return false
	}
	sig, ok := dec(parts[2])
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(&fuzzSigningKey().PublicKey, crypto.SHA256, sum[:], sig) == nil
}

// headerOK: the JOSE header rules of docs/api.md#token-verification.
func headerOK(header []byte) bool {
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil || h == nil {
		return false
	}
	alg, _ := h["alg"].(string)
	kid, _ := h["kid"].(string)
	_, crit := h["crit"]
	return alg == "RS256" && kid == fuzzKid && !crit
}

// claimsModel is docs/api.md#token-verification and
// docs/api.md#identity-claims as the documents state them, with
// exact (big) integers; ok is false when the token must be refused.
func claimsModel(payload []byte, now, leeway int64) (p Principal, ok bool) {
	if _, err := jsonc.Parse(payload); err != nil {
		return p, false // claims must be strict JSON
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var c map[string]any
	if err := d.Decode(&c); err != nil || c == nil {
		return p, false
	}
	present := func(k string) bool { v, ok := c[k]; return ok && v != nil }
	integer := func(k string) (*big.Int, bool) {
		n, isNum := c[k].(json.Number)
		if !isNum || strings.ContainsAny(string(n), ".eE") {
			return nil, false
		}
		v, ok := new(big.Int).SetString(string(n), 10)
		return v, ok
	}
	bNow, bLee := big.NewInt(now), big.NewInt(leeway)
	if iss, _ := c["iss"].(string); iss != testIssuer || c["iss"] == nil {
		return p, false
	}
	switch aud := c["aud"].(type) {
	case string:
		if aud != testAudience {
			return p, false
		}
	case []any:
		found := false
		for _, item := range aud {
			s, isStr := item.(string)
			if !isStr {
				return p, false
			}
			found = found || s == testAudience
		}
		if !found {
			return p, false
		}
	default:
		return p, false
	}
	exp, isInt := integer("exp")
	if !isInt || exp.Sign() < 0 || exp.Cmp(new(big.Int).Sub(bNow, bLee)) < 0 {
		return p, false
	}
	for _, k := range []string{"nbf", "iat"} {
		if !present(k) {
			continue
		}
		v, isInt := integer(k)
		if !isInt || v.Cmp(new(big.Int).Add(bNow, bLee)) > 0 {
			return p, false
		}
	}
	tenant, _ := c["tenant_id"].(string)
	sub, isStr := c["sub"].(string)
	typ, id, found := strings.Cut(sub, ":")
	if tenant == "" || !isStr || !found || typ == "" || id == "" {
		return p, false
	}
	switch typ {
	case "user", "agent", "service":
	case "svc", "org":
		typ = "service"
	default:
		return p, false
	}
	var names []string
	if present("scope") {
		s, isStr := c["scope"].(string)
		if !isStr {
			return p, false
		}
		names = strings.Fields(s)
	}
	if present("scopes") {
		arr, isArr := c["scopes"].([]any)
		if !isArr {
			return p, false
		}
		for _, item := range arr {
			s, isStr := item.(string)
			if !isStr || s == "" {
				return p, false
			}
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return p, false
	}
	var scopes Scope
	for _, n := range names {
		switch n {
		case "session:create":
			scopes |= ScopeCreate
		case "session:read":
			scopes |= ScopeRead
		case "session:append":
			scopes |= ScopeAppend
		}
	}
	session := ""
	if present("session_id") {
		s, isStr := c["session_id"].(string)
		if !isStr || s == "" {
			return p, false
		}
		session = s
	}
	expires := int64(1<<63 - 1)
	if exp.IsInt64() {
		expires = exp.Int64()
	}
	return Principal{TenantID: tenant, Type: typ, ID: id, Scopes: scopes, SessionID: session, Expires: expires}, true
}

// ---- targets ----

func FuzzVerifyToken(f *testing.F) {
	a, now := fuzzAuth(f)
	good := signInput(b64s(fuzzHeader) + "." + b64s(fuzzClaims(now)))
	parts := strings.Split(good, ".")
	for _, s := range []string{
		good,
		parts[0] + "==." + parts[1] + "." + parts[2] + "=", // padding is tolerated
		parts[0] + "." + parts[1] + ".",                    // no signature
		parts[0] + "." + parts[1],                          // two segments
		good + "." + parts[2],                              // four segments
		"..", "", ".", "a.b.c",
		b64s(`{"alg":"none","kid":"`+fuzzKid+`"}`) + "." + parts[1] + ".",
		b64s(`{"alg":"HS256","kid":"`+fuzzKid+`"}`) + "." + parts[1] + "." + parts[2],
		signInput(b64s(`{"alg":"RS256","kid":"`+fuzzKid+`","crit":["exp"]}`) + "." + parts[1]),
		signInput(b64s(`{"alg":"RS256","kid":"nope"}`) + "." + parts[1]),
		signInput(b64s(`{"alg":"RS256"}`) + "." + parts[1]),
		signInput(b64s(`[]`) + "." + parts[1]),
		signInput(b64s(`{"alg":"RS256","kid":"`+fuzzKid+`"} trailing`) + "." + parts[1]),
		strings.Replace(good, parts[1], b64s(`{"iss":"x"}`), 1), // claims swapped under the signature
		parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2]),
		"Bearer " + good,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := a.verifyToken(token, time.Unix(now, 0))
		if err != nil {
			return
		}
		if !stdVerify(token) {
			t.Fatalf("accepted a token that is not an RS256 JWS by the JWKS key: %q", token)
		}
		parts := strings.Split(token, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		want, ok := claimsModel(payload, now, 1)
		if !ok {
			t.Fatalf("accepted claims the contract refuses: %s", payload)
		}
		if !samePrincipal(c.p, want) {
			t.Fatalf("claims %s: principal %+v, want %+v", payload, c.p, want)
		}
	})
}

func samePrincipal(a, b Principal) bool {
	return a.TenantID == b.TenantID && a.Type == b.Type && a.ID == b.ID && a.Scopes == b.Scopes &&
		a.SessionID == b.SessionID && a.Expires == b.Expires
}

func FuzzSignedToken(f *testing.F) {
	a, now := fuzzAuth(f)
	claims := func(over map[string]any, drop ...string) string {
		c := map[string]any{
			"iss": testIssuer, "aud": testAudience, "exp": now + 3600, "iat": now, "nbf": now,
			"tenant_id": "acme", "sub": "user:u-42", "scope": "session:read session:append",
		}
		for k, v := range over {
			c[k] = v
		}
		for _, k := range drop {
			delete(c, k)
		}
		return string(mustJSON(c))
	}
	for _, s := range []struct{ h, c string }{
		{fuzzHeader, fuzzClaims(now)},
		{`{"alg":"RS256","kid":"` + fuzzKid + `","crit":[]}`, fuzzClaims(now)},
		{`{"alg":"rs256","kid":"` + fuzzKid + `"}`, fuzzClaims(now)},
		{`{"alg":"RS256","kid":""}`, fuzzClaims(now)},
		{`{"alg":"RS256","kid":"` + fuzzKid + `","alg":"none"}`, fuzzClaims(now)},
		{fuzzHeader, claims(map[string]any{"aud": []any{"x", testAudience}})},
		{fuzzHeader, claims(map[string]any{"aud": []any{testAudience, 1}})},
		{fuzzHeader, claims(map[string]any{"exp": 1.8e9})},
		{fuzzHeader, claims(map[string]any{"exp": now - 1})},
		{fuzzHeader, claims(map[string]any{"exp": now - 2})},
		{fuzzHeader, claims(map[string]any{"nbf": now + 2, "iat": nil})},
		{fuzzHeader, claims(map[string]any{"iat": "1"})},
		{fuzzHeader, `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":99999999999999999999999,"tenant_id":"t","sub":"svc:x","scopes":["session:create"]}`},
		{fuzzHeader, `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","exp":-99999999999999999999999,"tenant_id":"t","sub":"org:x","scope":"a"}`},
		{fuzzHeader, claims(map[string]any{"sub": "robot:x"})},
		{fuzzHeader, claims(map[string]any{"sub": "user:"})},
		{fuzzHeader, claims(map[string]any{"sub": "user:a:b", "session_id": "s1"})},
		{fuzzHeader, claims(map[string]any{"session_id": ""})},
		{fuzzHeader, claims(map[string]any{"scope": nil, "scopes": []any{}})},
		{fuzzHeader, claims(map[string]any{"scope": "  ", "scopes": nil})},
		{fuzzHeader, claims(map[string]any{"scopes": []any{""}})},
		{fuzzHeader, claims(nil, "tenant_id")},
		{fuzzHeader, claims(map[string]any{"tenant_id": "a\u0000b"})},
		{fuzzHeader, `{"iss":"` + testIssuer + `","iss":"other"}`},
		{fuzzHeader, "{\"iss\":\"\xff\"}"},
		{fuzzHeader, `[]`},
		{fuzzHeader, `null`},
	} {
		f.Add([]byte(s.h), []byte(s.c))
	}
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		token := signInput(base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload))
		c, err := a.verifyToken(token, time.Unix(now, 0))
		want, claimsOK := claimsModel(payload, now, 1)
		accept := headerOK(header) && claimsOK
		switch {
		case err == nil && !accept:
			t.Fatalf("accepted header %s claims %s; the contract refuses them", header, payload)
		case err != nil && accept:
			t.Fatalf("refused header %s claims %s (%v); the contract accepts them", header, payload, err)
		case err == nil && !samePrincipal(c.p, want):
			t.Fatalf("claims %s: principal %+v, want %+v", payload, c.p, want)
		}
		// The cached path answers as the full pipeline did.
		if err == nil {
			for range 2 {
				p, err := a.verify(token)
				if err != nil || !samePrincipal(p, c.p) {
					t.Fatalf("cached verification: %+v %v, first %+v", p, err, c.p)
				}
			}
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	pub := &devjwt.Key(0).PublicKey
	f.Add(devjwt.JWKS(devjwt.JWK("a", pub)))
	f.Add(devjwt.JWKS(devjwt.JWK("a", pub), devjwt.JWK("b", &devjwt.Key(1).PublicKey)))
	f.Add(devjwt.JWKS(devjwt.JWK("a", pub), devjwt.JWK("a", pub)))
	for _, s := range []string{
		`{}`, `{"keys":[]}`, `{"keys":{}}`, `{"keys":null}`, `[]`, `null`, ``,
		`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k","n":"","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k","n":"_-_-","e":"AA"}]}`,
		`{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k","n":"AQAB","e":"AQABAQABAQAB"}]}`,
		`{"keys":[{"kty":"EC","use":"sig","alg":"ES256","kid":"k","crv":"P-256","x":"AQAB","y":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","use":"sig","alg":"HS256","kid":"k","k":"AQAB"}]}`,
		`{"keys":[1]}`, `{"keys":["x"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body, nil)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatalf("accepted an empty set: %s", body)
		}
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		if json.Unmarshal(body, &doc) != nil || len(doc.Keys) != len(keys) {
			t.Fatalf("accepted %d keys from %s", len(keys), body)
		}
		for kid, k := range keys {
			if kid == "" || k == nil || k.N == nil || k.N.Sign() <= 0 || k.E < 2 {
				t.Fatalf("accepted an unusable key %q from %s", kid, body)
			}
		}
		for _, k := range doc.Keys {
			if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" {
				t.Fatalf("accepted a key that is not an RS256 signing key: %v", k)
			}
		}
	})
}

func FuzzRequestToken(f *testing.F) {
	f.Add("Bearer abc", "", "", false)
	f.Add("bearer  abc ", "", "access_token=x", true)
	f.Add("Bearer a,b", "", "", false)
	f.Add("Bearer a", "Bearer b", "", false)
	f.Add("", "", "access_token=%20tok%20", true)
	f.Add("", "", "access_token=a&access_token=b", true)
	f.Add("Basic abc", "", "", false)
	f.Add("", "", "access_token=", true)
	f.Fuzz(func(t *testing.T, h1, h2, query string, upgrade bool) {
		var headers []string
		for _, h := range []string{h1, h2} {
			if h != "" {
				headers = append(headers, "Authorization", h)
			}
		}
		if upgrade {
			headers = append(headers, "Upgrade", "websocket")
		}
		ctx := requestCtx("/v1/sessions/s/tail?"+query, headers...)
		n := len(ctx.Request.Header.PeekAll("Authorization"))
		token, aerr := requestToken(ctx)
		if aerr != nil {
			if aerr != errAuthMissing && aerr != errAuthMalformed {
				t.Fatalf("unexpected error %v", aerr)
			}
			return
		}
		if token == "" || strings.ContainsAny(token, ", ") {
			t.Fatalf("token %q from %q %q %q", token, h1, h2, query)
		}
		if n > 1 {
			t.Fatalf("two Authorization headers accepted: %q %q", h1, h2)
		}
		if _, inQuery := queryValue(ctx.URI().QueryString(), "access_token"); n == 1 && inQuery && upgrade {
			t.Fatalf("a header and a query token at once accepted: %q %q", h1, query)
		}
	})
}
