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
		{"cluster off loopback without TLS", with(clusterEnv("192.0.2.1", strings.Repeat("c", 16)), "STARCITE_AUTH_MODE", "none"),
			"STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: required for a cluster node on a non-loopback address (192.0.2.1), or set STARCITE_CLUSTER_INSECURE=1"},
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

// TestClusterTLSFilesAtBoot: the TLS files are loaded and checked at boot
// (docs/security.md#inter-node-ports); what is wrong with them stops the
// process with one line saying what.
func TestClusterTLSFilesAtBoot(t *testing.T) {
	cookie := "a-cluster-cookie-for-tests"
	certs := harness.MakeCerts(t, t.TempDir(), []string{"127.0.0.1", "127.0.0.2"})
	other := harness.MakeCerts(t, t.TempDir(), []string{"127.0.0.1"})
	tlsVars := func(ca, cert, key map[string]string) []string {
		return []string{"STARCITE_CLUSTER_TLS_CA", ca["STARCITE_CLUSTER_TLS_CA"],
			"STARCITE_CLUSTER_TLS_CERT", cert["STARCITE_CLUSTER_TLS_CERT"], "STARCITE_CLUSTER_TLS_KEY", key["STARCITE_CLUSTER_TLS_KEY"]}
	}
	for _, tt := range []struct {
		name string
		vars []string
		want string
	}{
		{"files missing", []string{"STARCITE_CLUSTER_TLS_CA", "/nonexistent/ca.pem", "STARCITE_CLUSTER_TLS_CERT", "/nonexistent/n.pem",
			"STARCITE_CLUSTER_TLS_KEY", "/nonexistent/n-key.pem"}, "read CA"},
		{"certificate of another CA", tlsVars(other[0], certs[0], certs[0]), "is not valid for server authentication under CA"},
		{"key of another certificate", tlsVars(certs[0], certs[0], certs[1]), "private key does not match public key"},
		{"certificate for another host", tlsVars(certs[1], certs[1], certs[1]), `does not name this node's host "127.0.0.1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := with(clusterEnv("127.0.0.1", cookie), append([]string{"STARCITE_AUTH_MODE", "none",
				"STARCITE_RAFT_DATA_DIR", t.TempDir()}, tt.vars...)...)
			code, out := harness.RunOnce(t, env, 10*time.Second, "server")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("exit %d; want 2 and one line containing %q, got:\n%s", code, tt.want, out)
			}
		})
	}
}

// TestInsecureClusterWarns: STARCITE_CLUSTER_INSECURE lets a cluster node
// off loopback pass the configuration, and it says so at boot (the
// documentation address it is given cannot be bound, so it stops there).
func TestInsecureClusterWarns(t *testing.T) {
	env := with(clusterEnv("192.0.2.1", "a-cluster-cookie-for-tests"), "STARCITE_CLUSTER_INSECURE", "1",
		"STARCITE_AUTH_MODE", "none", "STARCITE_RAFT_DATA_DIR", t.TempDir(), "STARCITE_ARCHIVE_DIR", t.TempDir())
	code, out := harness.RunOnce(t, env, 30*time.Second, "server")
	if code == 2 || code == 0 {
		t.Fatalf("exit code %d, want a failure to bind after the configuration passed:\n%s", code, out)
	}
	if !strings.Contains(out, "STARCITE_CLUSTER_INSECURE: the Raft and distribution ports run without TLS") {
		t.Fatalf("no warning at boot:\n%s", out)
	}
}

// clusterEnv is node a of a two-write-node cluster at host (b is at a
// documentation address) with the given cookie.
func clusterEnv(host, cookie string) map[string]string {
	return map[string]string{"NODE_NAME": "a@" + host, "STARCITE_WRITE_NODE_IDS": "a@" + host + ",b@192.0.2.200",
		"STARCITE_COOKIE": cookie}
}

// with returns env with the given variables (name, value pairs) set.
func with(env map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}
