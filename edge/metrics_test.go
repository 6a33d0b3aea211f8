package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRouteNames: the names metrics use for the API routes, from the one
// router.
func TestRouteNames(t *testing.T) {
	s := &Server{cfg: Config{Metrics: true}}
	for _, tc := range []struct {
		method, path, want string
	}{
		{"POST", "/v1/sessions", "create"},
		{"POST", "/v1/sessions/", "create"},
		{"GET", "/v1/sessions?limit=5", "list"},
		{"HEAD", "/v1/sessions", "list"},
		{"GET", "/v1/sessions/abc", "get"},
		{"POST", "/v1/sessions/abc/append", "append"},
		{"POST", "/v1/sessions/a%2Fb/append", "append"},
		{"GET", "/v1/sessions/abc/events?cursor=3", "events"},
		{"GET", "/v1/sessions/abc/tail?cursor=0", "tail"},
		{"GET", "/v1/sessions/abc/append", ""},
		{"POST", "/v1/sessions/abc/tail", ""},
		{"DELETE", "/v1/sessions/abc", ""},
		{"GET", "/v1/sessions/abc/tail/x", ""},
		{"GET", "/v1/sessions/a/b/c/d/e", ""},
		{"GET", "/health/ready", ""},
		{"GET", "/metrics", ""},
		{"GET", "/", ""},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(tc.method)
		ctx.Request.SetRequestURI(tc.path)
		var buf [6]string
		segs, _ := splitPath(ctx.Request.URI().PathOriginal(), buf[:0])
		if got, _, _ := s.route(&ctx, segs); got != tc.want {
			t.Errorf("%s %s: route %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
