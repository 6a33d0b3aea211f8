package edge

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// JWKS handling (docs/api.md#jwks). The signing keys live in an immutable
// keySet swapped atomically, so a request resolves a kid with one map
// lookup and never waits for a routine refresh: a background goroutine
// refetches the set before it is due. Only a kid the set does not know,
// or a set past its hard expiry, puts a fetch on the request path, and
// those request-driven refreshes are rate-limited to one per
// forcedRefreshInterval (docs/decisions.md#d12), with concurrent requests
// sharing the fetch in flight.
//
// A failed fetch (network error, non-200, invalid document) leaves the
// set in use untouched: its keys keep working while the JWKS endpoint is
// unreachable, for at most the hard expiry (STARCITE_AUTH_JWKS_HARD_EXPIRY_MS)
// after the last successful fetch. Past it the whole set is distrusted and
// every token is refused until a fetch succeeds: a key revoked at the
// identity provider stops working within that bound even through an
// outage. A key removed from the JWKS stops being accepted at the first
// successful refresh.

const (
	// jwksFetchTimeout bounds one JWKS fetch, including reading the body:
	// an unreachable JWKS endpoint fails requests, it never hangs them.
	jwksFetchTimeout = 2 * time.Second
	// forcedRefreshInterval is the minimum time between two refreshes
	// forced by an unknown kid (docs/decisions.md#d12).
	forcedRefreshInterval = time.Second
	// maxJWKSBytes bounds the JWKS document read.
	maxJWKSBytes = 1 << 20
)

// keySet is one validated JWKS document.
type keySet struct {
	keys    map[string]*rsa.PublicKey // by kid
	fetched time.Time                 // wall clock, when the refresher plans
	expires time.Time                 // on the authenticator's clock: distrusted from then
}

// fetchCall is one JWKS fetch that several callers may wait for.
type fetchCall struct {
	done chan struct{}
	err  error
}

// jwksCache holds the signing keys of one JWKS URL.
type jwksCache struct {
	url        string
	logURL     string        // url without credentials, for logs and errors
	refreshTTL time.Duration // STARCITE_AUTH_JWKS_REFRESH_MS
	hardExpiry time.Duration // STARCITE_AUTH_JWKS_HARD_EXPIRY_MS
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time // for the hard expiry and the forced-refresh rate limit

	set atomic.Pointer[keySet]

	mu         sync.Mutex
	inflight   *fetchCall
	lastForced time.Time // start of the last forced refresh
	closed     bool

	expiredLogged atomic.Bool  // the expiry was logged since the last successful fetch
	fetches       atomic.Int64 // fetch attempts, for tests and debugging
	lastAttempt   atomic.Int64 // Unix nanoseconds of the last fetch start

	ctx    context.Context // canceled by close: ends a fetch in flight
	cancel context.CancelFunc

	kick chan struct{} // wakes the refresher after a fetch
	stop chan struct{}
	done chan struct{}
}

var errUnknownKid = errors.New("kid not in the JWKS")

func newJWKSCache(url string, refresh, hardExpiry time.Duration, now func() time.Time, log *slog.Logger) *jwksCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &jwksCache{
		ctx:        ctx,
		cancel:     cancel,
		url:        url,
		logURL:     RedactURL(url),
		refreshTTL: refresh,
		hardExpiry: hardExpiry,
		client:     &http.Client{Timeout: jwksFetchTimeout, CheckRedirect: noDowngrade},
		log:        log,
		now:        now,
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// maxJWKSRedirects bounds the redirects one fetch follows.
const maxJWKSRedirects = 5

// noDowngrade follows a few redirects, never from https to http: a key set
// fetched over TLS must not come from a plaintext hop.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= maxJWKSRedirects {
		return fmt.Errorf("more than %d redirects", maxJWKSRedirects)
	}
	if req.URL.Scheme != "https" && slices.ContainsFunc(via, func(r *http.Request) bool { return r.URL.Scheme == "https" }) {
		return fmt.Errorf("redirect from https to %s refused", RedactURL(req.URL.String()))
	}
	return nil
}

// RedactURL returns a URL fit for logs and error messages: user
// information and query string, which may carry credentials, are replaced
// by "redacted". A string that is no URL is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// start fetches the set once, synchronously (a failure is logged, not
// fatal: requests get 401 until the JWKS is reachable), then refreshes it
// in the background until close.
func (c *jwksCache) start() {
	if err := c.refresh(triggerScheduled); err != nil {
		c.log.Warn("JWKS not available at boot; tokens are rejected until it is", "url", c.logURL, "err", err)
	}
	go c.refresher()
}

// close stops the background refresher and waits for it.
func (c *jwksCache) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	close(c.stop)
	<-c.done
}

// current returns the key of kid in the set in use, without fetching;
// nil when the set is past its hard expiry.
func (c *jwksCache) current(kid string) *rsa.PublicKey {
	if s := c.set.Load(); s != nil && c.now().Before(s.expires) {
		return s.keys[kid]
	}
	return nil
}

// errExpired: the last successful fetch is older than the hard expiry and
// no refresh succeeded since.
var errExpired = errors.New("the JWKS key set is past its hard expiry (STARCITE_AUTH_JWKS_HARD_EXPIRY_MS) and cannot be refreshed")

// key resolves kid: from the set in use, else after a request-driven
// refresh (an unknown kid, or a set past its hard expiry).
func (c *jwksCache) key(kid string) (*rsa.PublicKey, error) {
	if k := c.current(kid); k != nil {
		return k, nil
	}
	trigger := triggerUnknownKid
	if s := c.set.Load(); s != nil && !c.now().Before(s.expires) {
		trigger = triggerExpired
	}
	err := c.refresh(trigger)
	if k := c.current(kid); k != nil {
		return k, nil
	}
	if s := c.set.Load(); s != nil && !c.now().Before(s.expires) {
		if c.expiredLogged.CompareAndSwap(false, true) {
			c.log.Warn("JWKS key set expired: every token is refused until a fetch succeeds",
				"url", c.logURL, "fetched", s.fetched, "err", err)
		}
		return nil, errExpired
	}
	if err != nil {
		return nil, err
	}
	return nil, errUnknownKid
}

// What starts a refresh: the background refresher, or a request whose
// kid the set lacks or whose set is past its hard expiry (the trigger
// label of starcite_jwks_refreshes_total).
const (
	triggerScheduled  = "scheduled"
	triggerUnknownKid = "unknown_kid"
	triggerExpired    = "expired"
)

// errRefreshLimited: a forced refresh ran less than forcedRefreshInterval
// ago.
var errRefreshLimited = errors.New("JWKS refresh rate-limited")

// refresh fetches the set, or waits for the fetch already in flight.
// A refresh a request forces (an unknown kid, an expired set) starts a
// new fetch at most once per forcedRefreshInterval.
func (c *jwksCache) refresh(trigger string) error {
	forced := trigger != triggerScheduled
	c.mu.Lock()
	if call := c.inflight; call != nil {
		c.mu.Unlock()
		<-call.done
		return call.err
	}
	if forced {
		now := c.now()
		if !c.lastForced.IsZero() && now.Sub(c.lastForced) < forcedRefreshInterval {
			c.mu.Unlock()
			return errRefreshLimited
		}
		c.lastForced = now
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	c.mu.Unlock()

	call.err = c.fetch()
	countRefresh(trigger, call.err)
	if call.err != nil && forced && !errors.Is(call.err, context.Canceled) {
		c.log.Warn("JWKS refresh for a request failed; keeping the keys in use until their hard expiry",
			"url", c.logURL, "err", call.err)
	}

	c.mu.Lock()
	c.inflight = nil
	c.mu.Unlock()
	close(call.done)
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return call.err
}

// fetch GETs the JWKS and swaps the set in use when the document is
// valid.
func (c *jwksCache) fetch() error {
	c.fetches.Add(1)
	c.lastAttempt.Store(time.Now().UnixNano())
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		// The client's error names the URL: keep its cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("invalid JWKS: larger than %d bytes", maxJWKSBytes)
	}
	prev := c.set.Load()
	keys, err := parseJWKS(body, prev)
	if err != nil {
		return fmt.Errorf("invalid JWKS: %w", err)
	}
	c.set.Store(&keySet{keys: keys, fetched: time.Now(), expires: c.now().Add(c.hardExpiry)})
	c.expiredLogged.Store(false)
	if prev == nil || !sameKids(prev.keys, keys) {
		c.log.Info("JWKS loaded", "url", c.logURL, "kids", strings.Join(sortedKids(keys), ","))
	}
	return nil
}

// refresher refetches the set once 3/4 of its TTL have passed, so that
// it never goes stale while the JWKS is reachable; while fetches fail it
// retries every retryInterval.
func (c *jwksCache) refresher() {
	defer close(c.done)
	timer := time.NewTimer(c.nextRefresh())
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
			// A fetch finished (a forced one, or ours): re-plan.
		case <-timer.C:
			if s := c.set.Load(); s == nil || time.Since(s.fetched) >= c.refreshAfter() {
				if err := c.refresh(triggerScheduled); err != nil && !errors.Is(err, context.Canceled) {
					c.log.Warn("JWKS refresh failed; keeping the keys in use until their hard expiry", "url", c.logURL, "err", err)
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(c.nextRefresh())
	}
}

// refreshAfter is the age at which the background refresher refetches:
// 3/4 of the refresh interval or of the hard expiry, whichever is
// shorter, so that a reachable JWKS never lets the set expire.
func (c *jwksCache) refreshAfter() time.Duration { return min(c.refreshTTL, c.hardExpiry) * 3 / 4 }

// retryInterval is the least time between the start of a fetch and a
// background retry after a failure.
func (c *jwksCache) retryInterval() time.Duration { return min(c.refreshTTL, time.Second) }

// nextRefresh is how long the refresher sleeps: until the set is due, or,
// when it is due (or absent) and fetches fail, until retryInterval after
// the last attempt.
func (c *jwksCache) nextRefresh() time.Duration {
	var wait time.Duration
	if s := c.set.Load(); s != nil {
		wait = c.refreshAfter() - time.Since(s.fetched)
	}
	if wait <= 0 {
		wait = c.retryInterval() - time.Since(time.Unix(0, c.lastAttempt.Load()))
	}
	return max(wait, time.Millisecond)
}

// parseJWKS validates a JWKS document, fail-closed for the whole set
// (docs/api.md#jwks): a JSON object with a non-empty keys array whose every
// key has kty RSA, use sig, alg RS256 and non-empty string kid, n and e,
// with no kid twice. One bad key makes the whole document unusable. Keys
// equal to those of prev under the same kid keep their *rsa.PublicKey, so
// that cached verifications stay valid across refreshes.
func parseJWKS(body []byte, prev *keySet) (map[string]*rsa.PublicKey, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("not a JSON object")
	}
	rawKeys, ok := doc["keys"]
	if !ok {
		return nil, errors.New("no keys")
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(rawKeys, &keys); err != nil || !isJSONArray(rawKeys) {
		return nil, errors.New("keys is not an array")
	}
	if len(keys) == 0 {
		return nil, errors.New("keys is empty")
	}
	out := make(map[string]*rsa.PublicKey, len(keys))
	for i, raw := range keys {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("key %d is not an object", i)
		}
		want := map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256"}
		for _, name := range []string{"kty", "use", "alg"} {
			if v, ok := jsonString(fields[name]); !ok || v != want[name] {
				return nil, fmt.Errorf("key %d: %s must be %q", i, name, want[name])
			}
		}
		var kid string
		for _, name := range []string{"kid", "n", "e"} {
			v, ok := jsonString(fields[name])
			if !ok || v == "" {
				return nil, fmt.Errorf("key %d: %s must be a non-empty string", i, name)
			}
			if name == "kid" {
				kid = v
			}
		}
		if _, dup := out[kid]; dup {
			return nil, fmt.Errorf("kid %q appears twice", kid)
		}
		pub, err := rsaPublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if prev != nil {
			if old := prev.keys[kid]; old != nil && old.Equal(pub) {
				pub = old
			}
		}
		out[kid] = pub
	}
	return out, nil
}

// rsaPublicKey decodes one JWK into the RSA public key it holds (the
// public half when the JWK carries a private key).
func rsaPublicKey(raw []byte) (*rsa.PublicKey, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	pubKey, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, err
	}
	var pub rsa.PublicKey
	if err := pubKey.Raw(&pub); err != nil {
		return nil, err
	}
	if pub.N == nil || pub.N.Sign() <= 0 || pub.E < 2 {
		return nil, errors.New("not a usable RSA key")
	}
	return &pub, nil
}

// jsonString decodes raw when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func isJSONArray(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '['
}

func sortedKids(keys map[string]*rsa.PublicKey) []string {
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return kids
}

func sameKids(a, b map[string]*rsa.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, k := range a {
		if b[kid] != k {
			return false
		}
	}
	return true
}
