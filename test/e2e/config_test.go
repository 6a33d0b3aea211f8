package e2e

import (
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestBadConfigurationStopsBoot: a bad value stops the process with exit
// code 2 and exactly one line naming the variable, before anything else
// is printed (the re-executed image's Dragonboat output included). Every
// variable's checks are tested in-process in package app/config; these
// cases check what only a process shows.
func TestBadConfigurationStopsBoot(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"port not a number", map[string]string{"STARCITE_AUTH_MODE": "none", "PORT": "http"}, `PORT: invalid value "http"`},
		{"jwt is the default mode and needs an issuer", nil, "STARCITE_AUTH_JWT_ISSUER: required when STARCITE_AUTH_MODE=jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"STARCITE_RAFT_DATA_DIR": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			code, out := harness.RunOnce(t, env, 10*time.Second, "server")
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "starcite: configuration error: ") || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("want one line containing %q, got:\n%s", tt.want, out)
			}
		})
	}
}
