package e2e

import (
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestBadConfigurationStopsBoot: a bad value stops boot with exit code 2
// and one line naming the variable.
func TestBadConfigurationStopsBoot(t *testing.T) {
	base := map[string]string{"STARCITE_AUTH_MODE": "none", "STARCITE_RAFT_DATA_DIR": t.TempDir()}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"port not a number", map[string]string{"PORT": "http"}, `PORT: invalid value "http"`},
		{"port out of range", map[string]string{"PORT": "70000"}, "PORT: invalid value"},
		{"zero groups", map[string]string{"STARCITE_NUM_GROUPS": "0"}, "STARCITE_NUM_GROUPS: invalid value"},
		{"unknown auth mode", map[string]string{"STARCITE_AUTH_MODE": "open"}, "STARCITE_AUTH_MODE: invalid value"},
		{"size without digits", map[string]string{"STARCITE_PENDING_MAX_SIZE": "G"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"zero size", map[string]string{"STARCITE_PENDING_MAX_SIZE": "0"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"bad size unit", map[string]string{"STARCITE_PENDING_MAX_SIZE": "12XB"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"bad boolean", map[string]string{"STARCITE_ALLOW_INSECURE_NONE": "maybe"}, "STARCITE_ALLOW_INSECURE_NONE: invalid value"},
		{"node name without host", map[string]string{"NODE_NAME": "starcite"}, "NODE_NAME: invalid value"},
		{"replication factor above write nodes", map[string]string{"STARCITE_WRITE_REPLICATION_FACTOR": "2"}, "STARCITE_WRITE_REPLICATION_FACTOR: 2 exceeds"},
		{"cluster without cookie", map[string]string{"STARCITE_WRITE_NODE_IDS": "a@127.0.0.1,b@127.0.0.2"}, "STARCITE_COOKIE: required"},
		{"none mode on a public address", map[string]string{"STARCITE_HTTP_HOST": "0.0.0.0"}, "STARCITE_HTTP_HOST: \"0.0.0.0\" is not a loopback address"},
		{"log level", map[string]string{"STARCITE_LOG_LEVEL": "loud"}, "STARCITE_LOG_LEVEL: invalid value"},
		{"jwt is the default mode and needs an issuer", map[string]string{"STARCITE_AUTH_MODE": ""}, "STARCITE_AUTH_JWT_ISSUER: required when STARCITE_AUTH_MODE=jwt"},
		{"jwt without issuer", jwtEnv("STARCITE_AUTH_MODE", "JWT", "STARCITE_AUTH_JWT_ISSUER", ""), "STARCITE_AUTH_JWT_ISSUER: required"},
		{"jwt with a blank issuer", jwtEnv("STARCITE_AUTH_JWT_ISSUER", "  "), "STARCITE_AUTH_JWT_ISSUER: required"},
		{"jwt without audience", jwtEnv("STARCITE_AUTH_JWT_AUDIENCE", ""), "STARCITE_AUTH_JWT_AUDIENCE: required"},
		{"jwt without JWKS URL", jwtEnv("STARCITE_AUTH_JWKS_URL", ""), "STARCITE_AUTH_JWKS_URL: required"},
		{"JWKS URL not http", jwtEnv("STARCITE_AUTH_JWKS_URL", "ftp://keys.test/jwks"), "STARCITE_AUTH_JWKS_URL: invalid value"},
		{"JWKS URL without host", jwtEnv("STARCITE_AUTH_JWKS_URL", "https:///jwks"), "STARCITE_AUTH_JWKS_URL: invalid value"},
		{"negative leeway", jwtEnv("STARCITE_AUTH_JWT_LEEWAY_SECONDS", "-1"), "STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value"},
		{"fractional leeway", jwtEnv("STARCITE_AUTH_JWT_LEEWAY_SECONDS", "1.5"), "STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value"},
		{"zero JWKS refresh", jwtEnv("STARCITE_AUTH_JWKS_REFRESH_MS", "0"), "STARCITE_AUTH_JWKS_REFRESH_MS: invalid value"},
		{"JWKS refresh not a number", jwtEnv("STARCITE_AUTH_JWKS_REFRESH_MS", "1m"), "STARCITE_AUTH_JWKS_REFRESH_MS: invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			code, out := harness.RunOnce(t, env, 10*time.Second, "server")
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("want one line containing %q, got:\n%s", tt.want, out)
			}
		})
	}
}

// jwtEnv is a complete jwt-mode configuration with the given variables
// (name, value pairs) set; an empty value counts as unset.
func jwtEnv(kv ...string) map[string]string {
	env := map[string]string{
		"STARCITE_AUTH_MODE":         "jwt",
		"STARCITE_AUTH_JWT_ISSUER":   "https://issuer.test",
		"STARCITE_AUTH_JWT_AUDIENCE": "starcite-api",
		"STARCITE_AUTH_JWKS_URL":     "http://127.0.0.1:1/jwks",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}
