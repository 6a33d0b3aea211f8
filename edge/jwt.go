package edge

import (
	"bytes"
	"cmp"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/maypok86/otter/v2"
	"github.com/valyala/fasthttp"

	"starcite/fsm/jsonc"
)

// JWTConfig configures STARCITE_AUTH_MODE=jwt (docs/api.md#authentication,
// docs/operations.md#authentication-variables).
type JWTConfig struct {
	Issuer, Audience, JWKSURL string
	Leeway                    time.Duration // clock leeway, whole seconds, at most MaxLeeway
	JWKSRefresh               time.Duration // how often the JWKS is refetched
	// JWKSHardExpiry is how long after the last successful fetch the key
	// set is still trusted while refreshes fail; 0 = JWKSRefresh.
	JWKSHardExpiry time.Duration

	now func() time.Time // tests: the clock of the claim checks and the caches
}

// MaxLeeway is the largest clock leeway jwt mode accepts
// (STARCITE_AUTH_JWT_LEEWAY_SECONDS): beyond it an expired token would stay
// good for too long.
const MaxLeeway = 300 * time.Second

// IsLoopback reports whether host (a name or an address) stays on
// this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tokenCacheSize bounds the verified-token cache.
const tokenCacheSize = 100_000

// JWTAuth authenticates requests by RS256 JWTs verified against a JWKS
// (docs/api.md#authentication). Verified tokens are cached by their
// SHA-256, so a repeated token costs a hash and a map lookup instead of an
// RSA verification.
type JWTAuth struct {
	issuer, audience string
	leeway           int64 // seconds
	now              func() time.Time
	keys             *jwksCache
	tokens           *otter.Cache[[sha256.Size]byte, cachedToken]
	verifier         jws.Verifier
	log              *slog.Logger

	verifications atomic.Int64 // RSA verifications performed
}

// cachedToken is a verified token: its principal and what makes the
// verification hold.
type cachedToken struct {
	p     Principal
	kid   string
	key   *rsa.PublicKey // the key that verified it; must still be the kid's key
	until int64          // Unix nanoseconds from which exp+leeway rejects it
}

// NewJWTAuth returns the jwt-mode authenticator. It fetches the JWKS once
// before returning (a failure is logged, not returned: requests get 401
// until the JWKS is reachable) and keeps it fresh in the background until
// Close.
func NewJWTAuth(cfg JWTConfig, log *slog.Logger) (*JWTAuth, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("jwt auth: issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("jwt auth: audience is required")
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("jwt auth: leeway must be between 0 and %s", MaxLeeway)
	case cfg.JWKSRefresh <= 0 || cfg.JWKSHardExpiry < 0:
		return nil, errors.New("jwt auth: JWKS refresh interval and hard expiry must be positive")
	}
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("jwt auth: JWKS URL %s is not an http(s) URL", RedactURL(cfg.JWKSURL))
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		log.Warn("the JWKS URL is plain http to a non-loopback host: anyone on the path can replace the signing keys; use https",
			"url", RedactURL(cfg.JWKSURL))
	}
	hardExpiry := cmp.Or(cfg.JWKSHardExpiry, cfg.JWKSRefresh)
	now := cfg.now
	if now == nil {
		now = time.Now
	}
	verifier, err := jws.NewVerifier(jwa.RS256)
	if err != nil {
		return nil, err
	}
	opts := &otter.Options[[sha256.Size]byte, cachedToken]{
		MaximumSize: tokenCacheSize,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[sha256.Size]byte, cachedToken]) time.Duration {
			return time.Duration(e.Value.until - e.SnapshotAtNano)
		}),
	}
	if cfg.now != nil {
		opts.Clock = testClock{now}
	}
	tokens, err := otter.New(opts)
	if err != nil {
		return nil, err
	}
	a := &JWTAuth{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		leeway:   int64(cfg.Leeway / time.Second),
		now:      now,
		keys:     newJWKSCache(cfg.JWKSURL, cfg.JWKSRefresh, hardExpiry, now, log),
		tokens:   tokens,
		verifier: verifier,
		log:      log,
	}
	a.keys.start()
	return a, nil
}

// Close stops the background JWKS refresh and the cache's goroutines.
func (a *JWTAuth) Close() {
	a.keys.close()
	a.tokens.StopAllGoroutines()
}

// The three 401 variants of docs/api.md#401-responses: same status and
// body, different www-authenticate challenges (see challenge).
var (
	errAuthMissing   = &apiError{401, "unauthorized", "Unauthorized", nil}
	errAuthMalformed = &apiError{401, "unauthorized", "Unauthorized", nil}
	errAuthInvalid   = &apiError{401, "unauthorized", "Unauthorized", nil}
)

// challenge is the www-authenticate value an error carries: set for the
// 401s, empty for every other error.
func (e *apiError) challenge() string {
	switch e {
	case errAuthMissing:
		return `Bearer realm="starcite"`
	case errAuthMalformed:
		return `Bearer realm="starcite", error="invalid_request", error_description="Malformed bearer token"`
	case errAuthInvalid, errUnauthorized:
		return `Bearer realm="starcite", error="invalid_token"`
	}
	return ""
}

// Authenticate reads and verifies the request's token
// (docs/api.md#authentication).
func (a *JWTAuth) Authenticate(ctx *fasthttp.RequestCtx) (Principal, *apiError) {
	token, aerr := requestToken(ctx)
	if aerr != nil {
		return Principal{}, aerr
	}
	p, err := a.verify(token)
	if err != nil {
		a.log.Debug("token rejected", "reason", err.Error())
		return Principal{}, errAuthInvalid
	}
	return p, nil
}

// requestToken finds the token of a request (docs/api.md#token-transport):
// exactly one Authorization: Bearer header, or on a WebSocket upgrade the
// access_token query parameter; both at once are malformed.
func requestToken(ctx *fasthttp.RequestCtx) (string, *apiError) {
	headers := ctx.Request.Header.PeekAll(fasthttp.HeaderAuthorization)
	var token string
	switch len(headers) {
	case 0:
	case 1:
		t, ok := bearer(headers[0])
		if !ok {
			return "", errAuthMalformed
		}
		token = t
	default:
		return "", errAuthMalformed
	}
	if isWebSocketUpgrade(&ctx.Request.Header) {
		if v, present := queryValue(ctx.URI().QueryString(), "access_token"); present {
			if len(headers) > 0 {
				return "", errAuthMalformed
			}
			v = strings.TrimSpace(v)
			if !wellFormedToken(v) {
				return "", errAuthMalformed
			}
			token = v
		}
	}
	if token == "" {
		return "", errAuthMissing
	}
	return token, nil
}

// bearer parses an Authorization value: trimmed, split at the first space
// into a scheme equal to "bearer" in any case and a token.
func bearer(value []byte) (string, bool) {
	v := strings.TrimSpace(string(value))
	scheme, token, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, wellFormedToken(token)
}

func wellFormedToken(t string) bool { return t != "" && !strings.ContainsAny(t, ", ") }

// isWebSocketUpgrade reports whether an Upgrade header lists websocket.
func isWebSocketUpgrade(h *fasthttp.RequestHeader) bool {
	for _, v := range h.PeekAll(fasthttp.HeaderUpgrade) {
		for item := range bytes.SplitSeq(v, []byte{','}) {
			if strings.EqualFold(strings.TrimSpace(string(item)), "websocket") {
				return true
			}
		}
	}
	return false
}

// verify returns the principal of a token: from the cache when the token
// was verified before and would still pass, else by the full pipeline.
func (a *JWTAuth) verify(token string) (Principal, error) {
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	now := a.now()
	if c, ok := a.tokens.GetIfPresent(sum); ok && now.UnixNano() < c.until && a.keys.current(c.kid) == c.key {
		return c.p, nil
	}
	c, err := a.verifyToken(token, now)
	if err != nil {
		return Principal{}, err
	}
	a.tokens.Set(sum, c)
	return c.p, nil
}

// A reason a token is rejected; every one of them is a 401 invalid_token.
type tokenError string

func (e tokenError) Error() string { return string(e) }

// verifyToken runs the verification pipeline of
// docs/api.md#token-verification on a token.
func (a *JWTAuth) verifyToken(token string, now time.Time) (cachedToken, error) {
	// 1. A compact JWS whose JOSE header names RS256 and a kid.
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first < 0 || first == last || strings.IndexByte(token[first+1:last], '.') >= 0 {
		return cachedToken{}, tokenError("not a compact JWS")
	}
	header, err := decodeSegment(token[:first])
	if err != nil {
		return cachedToken{}, tokenError("JOSE header is not base64url")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(header, &hdr); err != nil || hdr == nil {
		return cachedToken{}, tokenError("JOSE header is not a JSON object")
	}
	kid, ok := jsonString(hdr["kid"])
	if !ok || kid == "" {
		return cachedToken{}, tokenError("JOSE header has no kid")
	}
	// Only RS256: alg none, HS256 (also "signed" with the public key),
	// ES256 and every other algorithm fail here, before any key is used.
	if alg, ok := jsonString(hdr["alg"]); !ok || alg != string(jwa.RS256) {
		return cachedToken{}, tokenError("alg is not RS256")
	}
	if _, ok := hdr["crit"]; ok {
		return cachedToken{}, tokenError("critical header parameters are not supported")
	}

	// 2. The signing key.
	key, err := a.keys.key(kid)
	if err != nil {
		return cachedToken{}, tokenError("signing key: " + err.Error())
	}

	// 3. The signature.
	sig, err := decodeSegment(token[last+1:])
	if err != nil {
		return cachedToken{}, tokenError("signature is not base64url")
	}
	a.verifications.Add(1)
	if err := a.verifier.Verify(unsafe.Slice(unsafe.StringData(token), last), sig, key); err != nil {
		return cachedToken{}, tokenError("bad signature")
	}

	// 4 and 5. The claims.
	payload, err := decodeSegment(token[first+1 : last])
	if err != nil {
		return cachedToken{}, tokenError("payload is not base64url")
	}
	p, err := a.claims(payload, now.Unix())
	if err != nil {
		return cachedToken{}, err
	}
	// The pipeline accepts the token while exp+L >= now in whole seconds,
	// that is until the second after exp+L begins.
	until := int64(math.MaxInt64)
	if p.Expires < math.MaxInt64/int64(time.Second)-a.leeway-1 {
		until = (p.Expires + a.leeway + 1) * int64(time.Second)
	}
	return cachedToken{p: p, kid: kid, key: key, until: until}, nil
}

// decodeSegment decodes one base64url segment of a compact JWS (padding
// tolerated).
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// claims checks the registered claims (docs/api.md#token-verification) and
// the identity claims (docs/api.md#identity-claims) of a verified payload.
func (a *JWTAuth) claims(payload []byte, now int64) (Principal, error) {
	// The strict parser refuses invalid UTF-8, unpaired surrogates and
	// NUL: identity claims end up in every event's metadata, which every
	// archive must be able to store.
	if _, err := jsonc.Parse(payload); err != nil {
		return Principal{}, tokenError("claims are not strict JSON: " + err.Error())
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return Principal{}, tokenError("claims are not a JSON object")
	}
	if iss, ok := jsonString(c["iss"]); !ok || iss != a.issuer {
		return Principal{}, tokenError("iss does not match")
	}
	if !a.audienceOK(c["aud"]) {
		return Principal{}, tokenError("aud does not match")
	}
	exp, ok := jsonInt(c["exp"])
	if !ok || exp < 0 {
		return Principal{}, tokenError("exp is not an integer >= 0")
	}
	if exp < now-a.leeway {
		return Principal{}, tokenError("token expired")
	}
	if raw, present := optional(c, "nbf"); present {
		nbf, ok := jsonInt(raw)
		if !ok {
			return Principal{}, tokenError("nbf is not an integer")
		}
		if nbf > now+a.leeway {
			return Principal{}, tokenError("token not valid yet (nbf)")
		}
	}
	if raw, present := optional(c, "iat"); present {
		iat, ok := jsonInt(raw)
		if !ok {
			return Principal{}, tokenError("iat is not an integer")
		}
		if iat > now+a.leeway {
			return Principal{}, tokenError("token issued in the future (iat)")
		}
	}

	p := Principal{Expires: exp}
	if p.TenantID, ok = jsonString(c["tenant_id"]); !ok || p.TenantID == "" {
		return Principal{}, tokenError("tenant_id is not a non-empty string")
	}
	sub, ok := jsonString(c["sub"])
	if !ok {
		return Principal{}, tokenError("sub is not a string")
	}
	typ, id, found := strings.Cut(sub, ":")
	if !found || typ == "" || id == "" {
		return Principal{}, tokenError("sub is not <type>:<id>")
	}
	switch typ {
	case "user", "agent", "service":
		p.Type = typ
	case "svc", "org":
		p.Type = "service"
	default:
		return Principal{}, tokenError("sub has an unknown principal type")
	}
	p.ID = id
	scopes, err := tokenScopes(c)
	if err != nil {
		return Principal{}, err
	}
	p.Scopes = scopes
	if raw, present := optional(c, "session_id"); present {
		sid, ok := jsonString(raw)
		if !ok || sid == "" {
			return Principal{}, tokenError("session_id is not a non-empty string")
		}
		p.SessionID = sid
	}
	return p, nil
}

// audienceOK: aud is the configured audience, or an array of strings only
// that contains it.
func (a *JWTAuth) audienceOK(raw json.RawMessage) bool {
	if s, ok := jsonString(raw); ok {
		return s == a.audience
	}
	if !isJSONArray(raw) {
		return false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return false
	}
	found := false
	for _, item := range items {
		s, ok := jsonString(item)
		if !ok {
			return false
		}
		found = found || s == a.audience
	}
	return found
}

// tokenScopes is the union of the scope string (split on whitespace) and
// the scopes array of non-empty strings; it must not be empty. Unknown
// scope strings count towards the union but grant nothing.
func tokenScopes(c map[string]json.RawMessage) (Scope, error) {
	var names []string
	if raw, present := optional(c, "scope"); present {
		s, ok := jsonString(raw)
		if !ok {
			return 0, tokenError("scope is not a string")
		}
		names = strings.Fields(s)
	}
	if raw, present := optional(c, "scopes"); present {
		var items []json.RawMessage
		if !isJSONArray(raw) || json.Unmarshal(raw, &items) != nil {
			return 0, tokenError("scopes is not an array")
		}
		for _, item := range items {
			s, ok := jsonString(item)
			if !ok || s == "" {
				return 0, tokenError("scopes holds something else than non-empty strings")
			}
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return 0, tokenError("no scope")
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
	return scopes, nil
}

// optional returns an optional claim; absent and null are the same.
func optional(c map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// jsonInt decodes raw when it is a JSON integer literal: no fraction, no
// exponent (1.7e9 is a float, not an integer). Values beyond int64
// saturate, which keeps every comparison of docs/api.md#token-verification
// right.
func jsonInt(raw json.RawMessage) (int64, bool) {
	s := string(raw)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(d-'0'))/10 {
			n = math.MaxInt64
			for _, r := range s[i+1:] {
				if r < '0' || r > '9' {
					return 0, false
				}
			}
			break
		}
		n = n*10 + int64(d-'0')
	}
	if neg {
		return -n, true
	}
	return n, true
}

// testClock makes the token cache expire entries on the tests' clock.
type testClock struct{ now func() time.Time }

func (c testClock) NowNano() int64                      { return c.now().UnixNano() }
func (c testClock) Tick(time.Duration) <-chan time.Time { return nil }
