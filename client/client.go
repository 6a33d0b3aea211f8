package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client talks to a Starcite cluster. It is safe for concurrent use.
type Client struct {
	nodes   []*url.URL
	current atomic.Uint32 // index into nodes of the node requests go to
	http    *http.Client
	timeout time.Duration
	retry   RetryPolicy
	tokens  tokens
}

// RetryPolicy bounds the retries of a request that got no answer or a
// transient refusal (a 503, a 500, a dropped connection): at most
// Attempts attempts, the n-th retry after a random wait between half and
// all of min(MinBackoff·2ⁿ, MaxBackoff). Each retry goes to the next node.
type RetryPolicy struct {
	Attempts   int
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// DefaultRetry rides out a leader election or a node restart (about 20 s
// at most).
var DefaultRetry = RetryPolicy{Attempts: 10, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

// Option configures a Client.
type Option func(*Client) error

// WithNodes adds the base URLs of more nodes of the cluster: a request
// that cannot reach a node, and a tail that loses its connection, move
// on to the next.
func WithNodes(urls ...string) Option {
	return func(c *Client) error {
		for _, u := range urls {
			n, err := parseBase(u)
			if err != nil {
				return err
			}
			c.nodes = append(c.nodes, n)
		}
		return nil
	}
}

// WithToken sets a static bearer token (JWT mode).
func WithToken(token string) Option {
	return func(c *Client) error { c.tokens.token = token; return nil }
}

// WithTokenRefresh sets the function that supplies a fresh token: called
// for the first request when no static token is set, again when a
// request is answered 401, and when a tail is closed with 4001.
func WithTokenRefresh(refresh func(ctx context.Context) (string, error)) Option {
	return func(c *Client) error { c.tokens.refresh = refresh; return nil }
}

// WithHTTPClient replaces the HTTP client (transport, TLS, proxies). Its
// Timeout, if any, bounds each attempt of a request and each WebSocket
// handshake, like WithTimeout.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error { c.http = h; return nil }
}

// WithTimeout bounds each attempt of a request and each WebSocket
// handshake (default 30 s). A tail, once connected, has no timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("starcite: timeout %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRetry replaces DefaultRetry. Attempts 1 disables retries.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.Attempts < 1 || p.MinBackoff < 0 || p.MaxBackoff < p.MinBackoff {
			return fmt.Errorf("starcite: invalid retry policy %+v", p)
		}
		c.retry = p
		return nil
	}
}

// New returns a client of the node at baseURL (e.g. http://127.0.0.1:4000).
func New(baseURL string, opts ...Option) (*Client, error) {
	first, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{nodes: []*url.URL{first}, http: http.DefaultClient, timeout: 30 * time.Second,
		retry: DefaultRetry}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("starcite: node URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("starcite: node URL %q: want http(s)://host[:port][/path]", raw)
	}
	return u, nil
}

// node returns the node requests go to now and its index.
func (c *Client) node() (int, *url.URL) {
	i := int(c.current.Load()) % len(c.nodes)
	return i, c.nodes[i]
}

// failover moves requests from node i to the next one (unless another
// request already did).
func (c *Client) failover(i int) {
	c.current.CompareAndSwap(uint32(i), uint32((i+1)%len(c.nodes)))
}

// endpoint is base's URL of the path segments (each escaped, so a
// session id may hold any character) with query q.
func endpoint(base *url.URL, q url.Values, segments ...string) *url.URL {
	u := *base
	p := strings.TrimRight(base.EscapedPath(), "/")
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	u.RawPath = p
	u.Path, _ = url.PathUnescape(p)
	u.RawQuery = q.Encode()
	return &u
}

// backoff waits before retry n (1-based) or until ctx ends.
func (p RetryPolicy) backoff(ctx context.Context, n int) error {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokens holds the current token and refreshes it once for all callers
// that saw it fail.
type tokens struct {
	mu      sync.Mutex
	token   string
	refresh func(ctx context.Context) (string, error)
}

// get returns the token to send ("" for none), fetching the first one
// from the refresh function when there is no static token.
func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == "" && t.refresh != nil {
		return t.renew(ctx)
	}
	return t.token, nil
}

// replace returns a token newer than stale: the one another caller
// already fetched, or a fresh one. ok is false without a refresh function.
func (t *tokens) replace(ctx context.Context, stale string) (token string, ok bool, err error) {
	if t.refresh == nil {
		return "", false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != stale {
		return t.token, true, nil
	}
	token, err = t.renew(ctx)
	return token, true, err
}

func (t *tokens) renew(ctx context.Context) (string, error) {
	token, err := t.refresh(ctx)
	if err != nil {
		return "", fmt.Errorf("starcite: token refresh: %w", err)
	}
	t.token = token
	return token, nil
}

// request is one API call.
type request struct {
	method   string
	segments []string // path segments after the node's base path
	query    url.Values
	body     []byte
	// resendable: sending it twice has the effect of sending it once
	// (reads, and appends thanks to producer_seq dedupe), so it may be
	// retried after an ambiguous failure.
	resendable bool
}

// outcome is what send learnt beyond the answer: how many attempts it
// made and whether one of them may have reached the server without an
// answer coming back.
type outcome struct {
	attempts  int
	ambiguous bool
}

// send runs r under the retry policy and returns the body of its 2xx
// answer. Refusals are *APIError; no answer at all wraps ErrUnreachable.
func (c *Client) send(ctx context.Context, r *request) ([]byte, outcome, error) {
	var out outcome
	refreshed := false
	for {
		i, node := c.node()
		out.attempts++
		token, err := c.tokens.get(ctx)
		if err != nil {
			return nil, out, err
		}
		status, body, err := c.attempt(ctx, node, r, token)
		var retry bool
		switch {
		case err != nil:
			sent := !dialFailed(err)
			out.ambiguous = out.ambiguous || sent
			if ctx.Err() != nil {
				return nil, out, ctx.Err()
			}
			retry = r.resendable || !sent
			err = fmt.Errorf("starcite: %s %s: %w: %w", r.method, endpoint(node, nil, r.segments...), ErrUnreachable, err)
		case status/100 == 2:
			return body, out, nil
		case status == http.StatusUnauthorized && !refreshed:
			if _, ok, rerr := c.tokens.replace(ctx, token); rerr != nil {
				return nil, out, rerr
			} else if ok {
				refreshed = true
				continue
			}
			return nil, out, apiError(status, body)
		default:
			e := apiError(status, body)
			retry, err = transient(e, r.resendable), e
			out.ambiguous = out.ambiguous || mayHaveWritten(e)
		}
		if !retry || out.attempts >= c.retry.Attempts {
			return nil, out, err
		}
		c.failover(i)
		if berr := c.retry.backoff(ctx, out.attempts); berr != nil {
			return nil, out, berr
		}
	}
}

// attempt sends r once to node.
func (c *Client) attempt(ctx context.Context, node *url.URL, r *request, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, endpoint(node, r.query, r.segments...).String(), body)
	if err != nil {
		return 0, nil, err
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error // its text repeats the URL the caller's error names
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// dialFailed reports whether err happened before the request could leave
// (no connection), so that resending it is always safe.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// transient reports whether a refusal may go away on a retry (or on
// another node); a refusal that may have been written only when the
// request is resendable.
func transient(e *APIError, resendable bool) bool {
	switch {
	case e.Status == http.StatusTooManyRequests:
		return true
	case e.Code == "raft_unavailable" || e.Code == "archive_backlog":
		return true // refused before anything was written
	case e.Status >= 500:
		return resendable
	}
	return false
}

// mayHaveWritten reports whether a write refused with e may still have
// been committed (docs/api.md#error-catalogue: raft_timeout, internal errors).
func mayHaveWritten(e *APIError) bool {
	return e.Status >= 500 && e.Code != "raft_unavailable" && e.Code != "archive_backlog"
}
