package edge

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/app/procrun"
)

func TestParseJWKS(t *testing.T) {
	pub := &devjwt.Key(0).PublicKey
	good := func() map[string]any { return devjwt.JWK("k1", pub) }
	with := func(k, v string) map[string]any {
		m := good()
		m[k] = v
		return m
	}
	without := func(k string) map[string]any {
		m := good()
		delete(m, k)
		return m
	}
	doc := func(keys ...map[string]any) string { return string(devjwt.JWKS(keys...)) }
	second := devjwt.JWK("k2", &devjwt.Key(1).PublicKey)

	tests := []struct {
		name string
		body string
		kids []string // nil: the document must be rejected
	}{
		{"one key", doc(good()), []string{"k1"}},
		{"two keys", doc(good(), second), []string{"k1", "k2"}},
		{"extra members", `{"keys":[` + strings.TrimSuffix(doc(good())[len(`{"keys":[`):], "]}") + `],"x":1}`, []string{"k1"}},
		{"private key parts are not needed", doc(good()), []string{"k1"}},
		{"not JSON", `keys`, nil},
		{"not an object", `[]`, nil},
		{"null", `null`, nil},
		{"no keys", `{}`, nil},
		{"keys null", `{"keys":null}`, nil},
		{"keys not an array", `{"keys":{"k1":{}}}`, nil},
		{"keys empty", `{"keys":[]}`, nil},
		{"key not an object", `{"keys":["k1"]}`, nil},
		{"kty EC", doc(with("kty", "EC")), nil},
		{"kty lowercase", doc(with("kty", "rsa")), nil},
		{"kty missing", doc(without("kty")), nil},
		{"use enc", doc(with("use", "enc")), nil},
		{"use missing", doc(without("use")), nil},
		{"alg RS512", doc(with("alg", "RS512")), nil},
		{"alg missing", doc(without("alg")), nil},
		{"kid missing", doc(without("kid")), nil},
		{"kid empty", doc(with("kid", "")), nil},
		{"n missing", doc(without("n")), nil},
		{"n empty", doc(with("n", "")), nil},
		{"n not base64url", doc(with("n", "!!!")), nil},
		{"e missing", doc(without("e")), nil},
		{"e empty", doc(with("e", "")), nil},
		{"kid not a string", strings.Replace(doc(good()), `"kid":"k1"`, `"kid":1`, 1), nil},
		{"duplicate kid", doc(good(), devjwt.JWK("k1", &devjwt.Key(1).PublicKey)), nil},
		{"one bad key among good ones", doc(good(), second, with("use", "enc")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tt.body), nil)
			if tt.kids == nil {
				if err == nil {
					t.Fatalf("accepted, kids %v", sortedKids(keys))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(sortedKids(keys), ","); got != strings.Join(tt.kids, ",") {
				t.Fatalf("kids %s, want %v", got, tt.kids)
			}
		})
	}
}

func TestJWKSFetchRequest(t *testing.T) {
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &devjwt.Key(0).PublicKey)))
	a := newTestAuth(t, srv.URL, newClock(), time.Minute)
	srv.mu.Lock()
	method, accept := srv.method, srv.accept
	srv.mu.Unlock()
	if method != http.MethodGet || accept != "application/json" {
		t.Fatalf("JWKS requested with %s, Accept %q", method, accept)
	}
	if a.keys.current("k1") == nil || srv.fetches.Load() != 1 {
		t.Fatalf("boot fetch: %d fetches", srv.fetches.Load())
	}
}

// Only a 200 with a valid document replaces the set; anything else keeps
// the previous one, and its keys keep working.
func TestFailedRefreshKeepsTheSet(t *testing.T) {
	clk := newClock()
	k0, k1 := devjwt.Key(0), devjwt.Key(1)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	rotated := devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey), devjwt.JWK("k2", &k1.PublicKey))

	failures := []struct {
		name   string
		status int
		body   []byte
	}{
		{"500", 500, rotated},
		{"204", 204, nil},
		{"404 with a valid body", 404, rotated},
		{"invalid document", 200, []byte(`{"keys":"no"}`)},
		{"one bad key", 200, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey), devjwt.JWK("k2", &k1.PublicKey), map[string]any{"kty": "RSA", "kid": "k3"})},
		{"empty set", 200, devjwt.JWKS()},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			srv.status.Store(int64(f.status))
			srv.setBody(f.body)
			clk.Advance(forcedRefreshInterval)
			before := srv.fetches.Load()
			if _, err := authWith(a, token(k1, "k2", claimsAt(clk.Unix()))); err != errAuthInvalid {
				t.Fatalf("k2 accepted from a refused document: %v", challengeOf(err))
			}
			if srv.fetches.Load() != before+1 {
				t.Fatalf("%d fetches for an unknown kid, want 1", srv.fetches.Load()-before)
			}
			// a fresh token (no cache hit) of the old key still verifies
			c := claimsAt(clk.Unix())
			c["jti"] = f.name
			if _, err := authWith(a, token(k0, "k1", c)); err != nil {
				t.Fatalf("k1 rejected after a failed refresh: %s", err.challenge())
			}
		})
	}
	// Fixed: the next forced refresh takes the rotated set.
	srv.status.Store(200)
	srv.setBody(rotated)
	clk.Advance(forcedRefreshInterval)
	if _, err := authWith(a, token(k1, "k2", claimsAt(clk.Unix()))); err != nil {
		t.Fatalf("k2 after the JWKS was fixed: %s", err.challenge())
	}
}

// An unknown kid forces a refresh, at most one per second; concurrent
// requests share the fetch in flight.
func TestForcedRefreshRateLimited(t *testing.T) {
	clk := newClock()
	k0, k1 := devjwt.Key(0), devjwt.Key(1)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at boot", n)
	}

	// 64 concurrent requests with an unknown kid, while the JWKS answers
	// slowly: one fetch.
	<-srv.started // the boot fetch
	release := make(chan struct{})
	srv.mu.Lock()
	srv.block = release
	srv.mu.Unlock()
	unknown := token(k1, "k2", claimsAt(clk.Unix()))
	var wg sync.WaitGroup
	errs := make(chan *apiError, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := authWith(a, unknown)
			errs <- err
		}()
	}
	<-srv.started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != errAuthInvalid {
			t.Fatalf("unknown kid: %v", challengeOf(err))
		}
	}
	srv.mu.Lock()
	srv.block = nil
	srv.mu.Unlock()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 64 concurrent unknown kids, want 2 (boot + 1)", n)
	}

	// Within the same second: no further fetch, immediate 401.
	for range 10 {
		if _, err := authWith(a, unknown); err != errAuthInvalid {
			t.Fatal("unknown kid accepted")
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches: forced refreshes not rate-limited", n)
	}

	// The key is published; once the second has passed, the next request
	// refreshes and succeeds (key rotation without restart).
	srv.setBody(devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey), devjwt.JWK("k2", &k1.PublicKey)))
	clk.Advance(forcedRefreshInterval - time.Nanosecond)
	if _, err := authWith(a, unknown); err != errAuthInvalid || srv.fetches.Load() != 2 {
		t.Fatalf("refresh before the second passed: %v, %d fetches", challengeOf(err), srv.fetches.Load())
	}
	clk.Advance(time.Nanosecond)
	if _, err := authWith(a, unknown); err != nil {
		t.Fatalf("rotated key: %s", err.challenge())
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// Known kids never fetch.
	for range 10 {
		c := claimsAt(clk.Unix())
		c["jti"] = time.Now().String()
		if _, err := authWith(a, token(k0, "k1", c)); err != nil {
			t.Fatal(err.challenge())
		}
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches for known kids", n)
	}
}

// The background refresher picks up a new set before the TTL runs out,
// without any request waiting for it.
func TestBackgroundRefresh(t *testing.T) {
	clk := newClock()
	k0, k1 := devjwt.Key(0), devjwt.Key(1)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, 200*time.Millisecond)
	srv.waitHits(t, 1) // boot fetch
	rotated := devjwt.JWKS(devjwt.JWK("k2", &k1.PublicKey))
	srv.setBody(rotated)
	srv.waitServed(t, 200, rotated)
	if a.keys.current("k2") == nil || a.keys.current("k1") != nil {
		t.Fatalf("background refresh did not install the new set")
	}
	if _, err := authWith(a, token(k1, "k2", claimsAt(clk.Unix()))); err != nil {
		t.Fatal(err.challenge())
	}
	a.keys.mu.Lock()
	forced := a.keys.lastForced
	a.keys.mu.Unlock()
	if !forced.IsZero() {
		t.Fatal("a forced refresh ran although the refresher had the key")
	}
}

// Background refreshes that fail keep serving the last good set, past
// its TTL.
func TestBackgroundRefreshFailureKeepsKeys(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	a := newTestAuth(t, srv.URL, clk, 100*time.Millisecond)
	srv.waitHits(t, 1)
	srv.status.Store(503)
	// three failed background refreshes: well past the TTL
	for failed := 0; failed < 3; {
		if srv.waitHits(t, 1).status == 503 {
			failed++
		}
	}
	if _, err := authWith(a, token(k0, "k1", claimsAt(clk.Unix()))); err != nil {
		t.Fatalf("known key rejected while the JWKS fails: %s", err.challenge())
	}
}

// An unreachable JWKS never hangs a request and never fails the boot.
func TestUnreachableJWKS(t *testing.T) {
	port, err := procrun.FreePort("127.0.0.1") // nothing listens: connection refused
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/jwks"

	clk := newClock()
	start := time.Now()
	a := newTestAuth(t, url, clk, time.Minute)
	if d := time.Since(start); d > jwksFetchTimeout+time.Second {
		t.Fatalf("boot took %s", d)
	}
	tok := token(devjwt.Key(0), "k1", claimsAt(clk.Unix()))
	start = time.Now()
	if _, err := authWith(a, tok); err != errAuthInvalid {
		t.Fatalf("got %v, want 401 invalid_token", challengeOf(err))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("401 took %s", d)
	}
}

// A JWKS that accepts connections but never answers: requests fail after
// the fetch timeout, not later.
func TestSilentJWKS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				<-stop
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { close(stop); ln.Close(); conns.Wait() })

	clk := newClock()
	a := newTestAuth(t, "http://"+ln.Addr().String()+"/jwks", clk, time.Minute)
	clk.Advance(forcedRefreshInterval)
	start := time.Now()
	if _, err := authWith(a, token(devjwt.Key(0), "k1", claimsAt(clk.Unix()))); err != errAuthInvalid {
		t.Fatalf("got %v, want 401 invalid_token", challengeOf(err))
	}
	if d := time.Since(start); d > jwksFetchTimeout+time.Second {
		t.Fatalf("401 took %s", d)
	}
}

// Boot with the JWKS down, then it comes up: tokens verify without a
// restart.
func TestJWKSComesUpAfterBoot(t *testing.T) {
	clk := newClock()
	k0 := devjwt.Key(0)
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey)))
	srv.status.Store(503)
	a := newTestAuth(t, srv.URL, clk, time.Minute)
	tok := token(k0, "k1", claimsAt(clk.Unix()))
	if _, err := authWith(a, tok); err != errAuthInvalid {
		t.Fatal("accepted without keys")
	}
	srv.status.Store(200)
	clk.Advance(forcedRefreshInterval)
	if _, err := authWith(a, tok); err != nil {
		t.Fatalf("after the JWKS came up: %s", err.challenge())
	}
}

func TestCloseStopsRefresher(t *testing.T) {
	srv := newJWKSServer(t, devjwt.JWKS(devjwt.JWK("k1", &devjwt.Key(0).PublicKey)))
	a, err := NewJWTAuth(JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL,
		Leeway: time.Second, JWKSRefresh: 20 * time.Millisecond}, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	srv.waitHits(t, 2) // boot and one background refresh
	a.Close()
	a.Close() // idempotent
	select {
	case <-a.keys.done:
	default:
		t.Fatal("refresher still running after Close")
	}
}

// newExpiringAuth is newTestAuth with a hard expiry of its own.
func newExpiringAuth(t *testing.T, url string, clk *clock, refresh, hard time.Duration, log *slog.Logger) *JWTAuth {
	t.Helper()
	a, err := NewJWTAuth(JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: url,
		Leeway: time.Second, JWKSRefresh: refresh, JWKSHardExpiry: hard, now: clk.Now}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// TestJWKSHardExpiry (docs/api.md#jwks): while refreshes fail, the last
// good set is trusted until the hard expiry after its fetch — the
// default is the refresh interval — and not one nanosecond longer, for
// every kind of failure; a token verified and cached before is refused
// too. A later successful fetch trusts the set again.
func TestJWKSHardExpiry(t *testing.T) {
	k0 := devjwt.Key(0)
	good := devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey))
	for _, tt := range []struct {
		name   string
		hard   time.Duration // 0: the default
		expiry time.Duration
		status int
		body   []byte
	}{
		{"default, JWKS down", 0, time.Hour, 503, good},
		{"default, invalid document", 0, time.Hour, 200, devjwt.JWKS(devjwt.JWK("k1", &k0.PublicKey), map[string]any{"kty": "RSA", "kid": "k1", "use": "enc"})},
		{"longer than the refresh, empty set", 3 * time.Hour, 3 * time.Hour, 200, devjwt.JWKS()},
		{"shorter than the refresh, not found", 10 * time.Minute, 10 * time.Minute, 404, good},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			srv := newJWKSServer(t, good)
			// Refresh hourly: the background refresher stays idle (real time).
			a := newExpiringAuth(t, srv.URL, clk, time.Hour, tt.hard, discardLog)
			claims := claimsAt(clk.Unix())
			claims["exp"] = clk.Unix() + 24*3600
			cached := token(k0, "k1", claims)
			if _, err := authWith(a, cached); err != nil {
				t.Fatalf("fresh set: %s", err.challenge())
			}
			srv.status.Store(int64(tt.status))
			srv.setBody(tt.body)

			clk.Advance(tt.expiry - time.Nanosecond)
			fresh := token(k0, "k1", claimsAt(clk.Unix()))
			if _, err := authWith(a, fresh); err != nil {
				t.Fatalf("1 ns before the hard expiry: %s", err.challenge())
			}
			clk.Advance(time.Nanosecond)
			before := srv.fetches.Load()
			for _, tok := range []string{cached, fresh} {
				if _, err := authWith(a, tok); err != errAuthInvalid {
					t.Fatalf("at the hard expiry: %v, want 401 invalid_token", challengeOf(err))
				}
			}
			if srv.fetches.Load() == before {
				t.Fatal("an expired set did not try a refresh")
			}

			srv.status.Store(200)
			srv.setBody(good)
			clk.Advance(forcedRefreshInterval)
			if _, err := authWith(a, fresh); err != nil {
				t.Fatalf("after a successful fetch: %s", err.challenge())
			}
		})
	}
}

// TestJWKSRedirects: a fetch follows redirects, but never from https to
// http.
func TestJWKSRedirects(t *testing.T) {
	doc := devjwt.JWKS(devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	plain := newJWKSServer(t, doc)
	redirectTo := func(target string) *httptest.Server {
		srv := httptest.NewTLSServer(http.RedirectHandler(target, http.StatusFound))
		t.Cleanup(srv.Close)
		return srv
	}
	fetchVia := func(srv *httptest.Server) error {
		c := newJWKSCache(srv.URL+"/jwks", time.Hour, time.Hour, time.Now, discardLog)
		c.client.Transport = srv.Client().Transport // trusts the test server's certificate
		return c.fetch()
	}
	tlsJWKS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) }))
	t.Cleanup(tlsJWKS.Close)
	if err := fetchVia(redirectTo(tlsJWKS.URL + "/jwks")); err != nil {
		t.Fatalf("https → https: %v", err)
	}
	err := fetchVia(redirectTo(plain.URL + "/jwks"))
	if err == nil || !strings.Contains(err.Error(), "redirect from https to") {
		t.Fatalf("https → http: %v", err)
	}
	if plain.fetches.Load() != 0 {
		t.Fatal("the http target was fetched")
	}
}

// TestJWKSURLCredentialsStayOut: user information and query string of the
// JWKS URL appear in no error and no log line.
func TestJWKSURLCredentialsStayOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, u := range []string{"http://jwks-user:jwks-secret@" + addr + "/jwks?api_key=jwks-key",
		"http://jwks-user:jwks-secret@198.51.100.7:1/jwks?api_key=jwks-key"} {
		clk := newClock()
		a := newExpiringAuth(t, u, clk, time.Hour, 0, log)
		if _, aerr := authWith(a, token(devjwt.Key(0), "k1", claimsAt(clk.Unix()))); aerr != errAuthInvalid {
			t.Fatalf("no keys: %v", challengeOf(aerr))
		}
		err := a.keys.fetch()
		if err == nil {
			t.Fatal("fetch from a closed port succeeded")
		}
		for _, text := range []string{err.Error(), logs.String()} {
			for _, secret := range []string{"jwks-user", "jwks-secret", "jwks-key"} {
				if strings.Contains(text, secret) {
					t.Fatalf("%q leaks into %q", secret, text)
				}
			}
		}
		a.Close()
	}
	if !strings.Contains(logs.String(), "plain http to a non-loopback host") {
		t.Fatalf("no warning for http to a non-loopback host:\n%s", logs.String())
	}
	if strings.Count(logs.String(), "plain http to a non-loopback host") != 1 {
		t.Fatalf("warned for a loopback JWKS too:\n%s", logs.String())
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://idp.example/jwks":                "https://idp.example/jwks",
		"https://u:p@idp.example/jwks?k=v#frag":   "https://redacted@idp.example/jwks?redacted",
		"https://token@idp.example:8443/a/b?x":    "https://redacted@idp.example:8443/a/b?redacted",
		"http://[::1]:80/jwks":                    "http://[::1]:80/jwks",
		"https://idp.example/jwks%zz?key=secret":  "(an unparsable URL)",
		"https://idp.example/.well-known/jwks.js": "https://idp.example/.well-known/jwks.js",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
