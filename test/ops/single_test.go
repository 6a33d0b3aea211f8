package ops

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestSingleNode: a node without STARCITE_COOKIE keeps a random cookie in
// its data directory, which the CLI reads; pprof serves on loopback.
func TestSingleNode(t *testing.T) {
	pprofPort := strconv.Itoa(harness.FreePort(t, "127.0.0.1"))
	n := harness.StartNode(t, harness.Options{Host: "127.0.11.4", Env: map[string]string{
		"STARCITE_PPROF_PORT": pprofPort,
	}})
	env := map[string]string{
		"NODE_NAME":              n.Name,
		"STARCITE_DIST_PORT":     n.Env["STARCITE_DIST_PORT"],
		"STARCITE_RAFT_DATA_DIR": n.Env["STARCITE_RAFT_DATA_DIR"],
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		out  string
	}{
		{"cookie file", env, []string{"ops", "ready-nodes"}, 0, "ready_nodes=" + n.Name},
		{"wait-ready", env, []string{"ops", "wait-ready", "10000"}, 0, "local_ready=true"},
		{"shell", env, []string{"shell", "-c", "group-replicas 2"}, 0, "group_2_replicas=" + n.Name},
		{"no cookie", map[string]string{"NODE_NAME": n.Name, "STARCITE_RAFT_DATA_DIR": t.TempDir()},
			[]string{"ops", "status"}, 2, ""},
		{"bad node name", env, []string{"ops", "--node", "nohost", "status"}, 2,
			`starcite ops: invalid node name "nohost" (expected name@host)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := harness.RunOnce(t, tc.env, time.Minute, tc.args...)
			if code != tc.code || (tc.out != "" && out != tc.out+"\n") {
				t.Errorf("starcite %v: exit %d %q, want exit %d %q", tc.args, code, out, tc.code, tc.out)
			}
			if tc.name == "no cookie" && !strings.HasPrefix(out, "starcite ops: no cookie: set STARCITE_COOKIE") {
				t.Errorf("without a cookie: %q", out)
			}
		})
	}

	// pprof on 127.0.0.1 (the default host), not on the node's address.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1"} {
		resp, err := http.Get("http://127.0.0.1:" + pprofPort + path)
		if err != nil {
			t.Fatalf("pprof %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("pprof %s: %d %.200s", path, resp.StatusCode, body)
		}
		if path == "/debug/pprof/cmdline" && !strings.Contains(string(body), "server") {
			t.Errorf("pprof cmdline: %q", body)
		}
	}
	if _, err := http.Get("http://127.0.11.4:" + pprofPort + "/debug/pprof/"); err == nil {
		t.Errorf("pprof answers on the node's address; it should bind loopback only")
	}
}
