package e2e

import (
	"strings"
	"testing"

	"starcite/test/harness"
)

// TestOpsListener: with STARCITE_OPS_PORT the probes, metrics and pprof
// are on the ops listener and nowhere on the API port; pprof only where
// the listener binds loopback or it is allowed
// (docs/operations.md#ops-listener).
func TestOpsListener(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	ops := func(path string) (int, string) {
		t.Helper()
		st, body, err := n.Probe(path)
		if err != nil {
			t.Fatalf("%s on the ops port: %v", path, err)
		}
		return st, string(body)
	}
	if st, body := ops("/health/live"); st != 200 || body != healthLiveBody {
		t.Errorf("/health/live: %d %s", st, body)
	}
	if st, body := ops("/health/ready"); st != 200 || body != healthReadyBody {
		t.Errorf("/health/ready: %d %s", st, body)
	}
	if st, body := ops("/metrics"); st != 200 || !strings.Contains(body, "# TYPE starcite_http_connections gauge") {
		t.Errorf("/metrics: %d %.200s", st, body)
	}
	if st, body := ops("/debug/pprof/"); st != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.200s", st, body)
	}
	if st, body := ops("/debug/pprof/cmdline"); st != 200 || !strings.Contains(body, "server") {
		t.Errorf("/debug/pprof/cmdline: %d %.200s", st, body)
	}
	if st, body := ops("/v1/sessions"); st != 404 || body != `{"error":"not_found"}` {
		t.Errorf("API route on the ops port: %d %s", st, body)
	}
	for _, path := range []string{"/health/live", "/health/ready", "/metrics", "/debug/pprof/"} {
		wantNotFound(t, do(t, n, "GET", path, nil, nil))
	}

	// Bound beyond loopback without STARCITE_PPROF_ALLOW_REMOTE: no pprof.
	wide := harness.StartNode(t, harness.Options{Env: map[string]string{"STARCITE_OPS_HOST": "0.0.0.0"}})
	if st, _, err := wide.Probe("/health/ready"); err != nil || st != 200 {
		t.Errorf("ops on 0.0.0.0: /health/ready %d %v", st, err)
	}
	if st, _, err := wide.Probe("/debug/pprof/"); err != nil || st != 404 {
		t.Errorf("ops on 0.0.0.0: /debug/pprof/ %d %v, want 404", st, err)
	}
}
