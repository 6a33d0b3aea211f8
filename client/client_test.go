package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastRetry keeps the tests' backoffs short.
var fastRetry = RetryPolicy{Attempts: 4, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func newClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, append([]Option{WithRetry(fastRetry)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deadURL is a URL where nothing listens: connecting is refused.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:4000", "ftp://h", "http://", "http://h/?x=1", "http://h/#f", "http://h:bad"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := New("http://h", WithNodes("nope")); err == nil {
		t.Error("WithNodes accepted a bad URL")
	}
	if _, err := New("http://h", WithRetry(RetryPolicy{})); err == nil {
		t.Error("WithRetry accepted zero attempts")
	}
}

// TestAPIErrors: every error answer becomes an *APIError that matches
// the sentinel of its code, with status, message and body.
func TestAPIErrors(t *testing.T) {
	for _, want := range sentinels {
		t.Run(want.Code, func(t *testing.T) {
			body := fmt.Sprintf(`{"error":%q,"message":"m %s"}`, want.Code, want.Code)
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(want.Status)
				fmt.Fprint(w, body)
			}))
			defer srv.Close()
			// Attempts 1: retried codes would otherwise be asked again.
			c := newClient(t, srv.URL, WithRetry(RetryPolicy{Attempts: 1}))
			_, err := c.GetSession(context.Background(), "s")
			var e *APIError
			if !errors.As(err, &e) || !errors.Is(err, want) {
				t.Fatalf("err = %v, want %s", err, want.Code)
			}
			if e.Status != want.Status || e.Message != "m "+want.Code || string(e.Body) != body {
				t.Fatalf("got %+v", e)
			}
			for _, other := range sentinels {
				if other != want && errors.Is(err, other) {
					t.Fatalf("%s also matches %s", want.Code, other.Code)
				}
			}
			if !strings.Contains(err.Error(), want.Code) {
				t.Fatalf("message %q lacks the code", err)
			}
		})
	}
	t.Run("not the API's shape", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
		}))
		defer srv.Close()
		_, err := newClient(t, srv.URL, WithRetry(RetryPolicy{Attempts: 1})).GetSession(context.Background(), "s")
		var e *APIError
		if !errors.As(err, &e) || e.Status != 502 || e.Code != "" || errors.Is(err, ErrInternal) {
			t.Fatalf("err = %#v", err)
		}
	})
}

// TestRetries: which answers are retried, for reads and for a create
// (which must not be sent twice after an ambiguous failure).
func TestRetries(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		code      string
		create    bool
		wantCalls int32
	}{
		{"read after raft_timeout", 503, "raft_timeout", false, 4},
		{"read after internal_error", 500, "internal_error", false, 4},
		{"read after not found", 404, "session_not_found", false, 1},
		{"create after raft_unavailable (nothing written)", 503, "raft_unavailable", true, 4},
		{"create after raft_timeout (may be written)", 503, "raft_timeout", true, 1},
		{"create after session_exists", 409, "session_exists", true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `{"error":%q,"message":"x"}`, tc.code)
			}))
			defer srv.Close()
			c := newClient(t, srv.URL)
			var err error
			if tc.create {
				_, err = c.CreateSession(context.Background(), NewSession{ID: "s"})
			} else {
				_, err = c.GetSession(context.Background(), "s")
			}
			if err == nil || calls.Load() != tc.wantCalls {
				t.Fatalf("calls = %d, err = %v; want %d calls and an error", calls.Load(), err, tc.wantCalls)
			}
		})
	}
}

// TestAmbiguousCreateIsNotResent: a create whose connection drops after
// it was sent is not sent again (it may have been written).
func TestAmbiguousCreateIsNotResent(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL).CreateSession(context.Background(), NewSession{ID: "s"})
	if !errors.Is(err, ErrUnreachable) || calls.Load() != 1 {
		t.Fatalf("calls = %d, err = %v", calls.Load(), err)
	}
}

// TestFailover: a node that refuses connections is skipped, for a create
// too (nothing was sent); with every node down the error wraps
// ErrUnreachable.
func TestFailover(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		fmt.Fprint(w, `{"id":"s","title":null,"creator_principal":{"tenant_id":"t","id":"i","type":"service"},`+
			`"metadata":{},"last_seq":0,"created_at":"2026-03-01T12:00:00.123456Z","updated_at":"2026-03-01T12:00:00.123456Z"}`)
	}))
	defer srv.Close()
	c := newClient(t, deadURL(t), WithNodes(srv.URL))
	s, err := c.CreateSession(context.Background(), NewSession{ID: "s"})
	if err != nil || s.ID != "s" || s.Title != nil || s.CreatorPrincipal.Type != "service" {
		t.Fatalf("create = %+v, %v", s, err)
	}
	c = newClient(t, deadURL(t), WithNodes(deadURL(t)))
	if _, err := c.GetSession(context.Background(), "s"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

// TestTokens: the static token is sent; a 401 calls the refresh
// function once and the request goes on with the new token; without a
// refresh function a 401 is ErrUnauthorized.
func TestTokens(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"unauthorized","message":"Unauthorized"}`)
			return
		}
		fmt.Fprint(w, `{"id":"s","metadata":{},"last_seq":3,"archived_seq":1,"created_at":"2026-03-01T12:00:00Z"}`)
	}))
	defer srv.Close()
	refreshes := 0
	c := newClient(t, srv.URL, WithToken("stale"), WithTokenRefresh(func(context.Context) (string, error) {
		refreshes++
		return "fresh", nil
	}))
	s, err := c.GetSession(context.Background(), "s")
	if err != nil || s.LastSeq != 3 || s.ArchivedSeq != 1 || refreshes != 1 {
		t.Fatalf("get = %+v, %v, refreshes %d", s, err, refreshes)
	}
	if strings.Join(seen, ",") != "Bearer stale,Bearer fresh" {
		t.Fatalf("tokens sent: %v", seen)
	}

	seen = nil
	_, err = newClient(t, srv.URL, WithToken("stale")).GetSession(context.Background(), "s")
	if !errors.Is(err, ErrUnauthorized) || len(seen) != 1 {
		t.Fatalf("without refresh: %v after %d requests", err, len(seen))
	}

	// The refresh function supplies the first token too; its failure is
	// the request's error.
	seen = nil
	failing := newClient(t, srv.URL, WithTokenRefresh(func(context.Context) (string, error) {
		return "", errors.New("issuer down")
	}))
	if _, err := failing.GetSession(context.Background(), "s"); err == nil || !strings.Contains(err.Error(), "issuer down") || len(seen) != 0 {
		t.Fatalf("failing refresh: %v after %d requests", err, len(seen))
	}
}

// TestPaths: session ids are escaped segment by segment, under the
// node's base path.
func TestPaths(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath() + "?" + r.URL.RawQuery
		fmt.Fprint(w, `{"events":[],"next_cursor":null,"last_seq":0}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/prefix/")
	if _, err := c.Events(context.Background(), "a/b c?", 7, 50); err != nil {
		t.Fatal(err)
	}
	if want := "/prefix/v1/sessions/a%2Fb%20c%3F/events?cursor=7&limit=50"; got != want {
		t.Fatalf("request %s, want %s", got, want)
	}
}

// TestListSessions: the iterator follows next_cursor page by page and
// stops after the page whose next_cursor is null; filters travel in the
// dotted form; a key that form cannot carry is refused before sending.
func TestListSessions(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		switch r.URL.Query().Get("cursor") {
		case "":
			fmt.Fprint(w, `{"sessions":[{"id":"a","title":"A","tenant_id":"t","creator_principal":null,"metadata":{"k":"v"},"created_at":"2026-03-01T12:00:00Z"},`+
				`{"id":"b","title":null,"tenant_id":"t","creator_principal":null,"metadata":{"k":"v"},"created_at":"2026-03-01T12:00:00.5Z"}],"next_cursor":"b"}`)
		case "b":
			fmt.Fprint(w, `{"sessions":[{"id":"c","title":null,"tenant_id":"t","creator_principal":null,"metadata":{"k":"v"},"created_at":"2026-03-01T12:00:00Z"}],"next_cursor":null}`)
		default:
			t.Errorf("unexpected cursor %q", r.URL.Query().Get("cursor"))
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	var ids []string
	for page, err := range c.ListSessions(context.Background(), ListOptions{Limit: 2, Metadata: map[string]string{"k": "v"}}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			ids = append(ids, s.ID)
			if !strings.HasPrefix(string(s.Raw), `{"id":"`+s.ID) {
				t.Errorf("raw %s", s.Raw)
			}
		}
	}
	if strings.Join(ids, ",") != "a,b,c" || len(queries) != 2 ||
		queries[0] != "limit=2&metadata.k=v" || queries[1] != "cursor=b&limit=2&metadata.k=v" {
		t.Fatalf("ids %v, queries %v", ids, queries)
	}

	queries = nil
	for _, err := range c.ListSessions(context.Background(), ListOptions{Metadata: map[string]string{"a[b]": "v"}}) {
		if err == nil {
			t.Fatal("a bracketed filter key was accepted")
		}
	}
	if len(queries) != 0 {
		t.Fatalf("sent %v", queries)
	}
}

// TestEvents: a page decodes into events that keep their exact bytes.
func TestEvents(t *testing.T) {
	ev := `{"seq":4,"type":"t","payload":{"b":1,"a":[1.5]},"actor":"service:service","producer_id":"p","producer_seq":2,` +
		`"source":null,"metadata":{},"refs":{},"idempotency_key":"k","inserted_at":"2026-03-01T12:00:01.123456Z","tenant_id":"service"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"events":[%s],"next_cursor":4,"last_seq":9}`, ev)
	}))
	defer srv.Close()
	page, err := newClient(t, srv.URL).Events(context.Background(), "s", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := page.Events[0]
	if page.LastSeq != 9 || len(page.Events) != 1 || e.Seq != 4 || e.ProducerSeq != 2 || e.Source != "" ||
		e.IdempotencyKey != "k" || string(e.Payload) != `{"b":1,"a":[1.5]}` || string(e.Raw) != ev ||
		e.InsertedAt.Nanosecond() != 123456000 {
		t.Fatalf("page %+v", page)
	}
}
