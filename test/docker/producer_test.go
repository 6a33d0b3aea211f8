package docker

import (
	"testing"
	"time"

	"starcite/test/harness"
)

// createSession creates a session through n. A transport error or a 5xx
// is ambiguous (the create may have committed), so it is retried, and
// session_exists after such a retry means the first attempt won.
func createSession(t *testing.T, n *harness.Node, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	ambiguous := false
	for {
		st, b, err := n.TryDo("POST", "/v1/sessions", map[string]any{"id": id}, nil)
		switch {
		case err == nil && st == 201:
			return
		case err == nil && st == 409 && ambiguous:
			return
		case err == nil && st < 500:
			t.Fatalf("create %s via %s: %d %s", id, n.Name, st, b)
		}
		ambiguous = true
		if time.Now().After(deadline) {
			t.Fatalf("create %s via %s: %d %s %v", id, n.Name, st, b, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
