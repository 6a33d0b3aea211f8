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
// its data directory, which the CLI reads; STARCITE_PPROF_PORT, the ops
// port of earlier versions, runs the ops listener on the node's (loopback)
// address, with pprof.
func TestSingleNode(t *testing.T) {
	n := harness.NewNode(t, harness.Options{Host: "127.0.11.4"})
	pprofPort := strconv.Itoa(n.OpsPort)
	n.Env["STARCITE_PPROF_PORT"] = pprofPort
	delete(n.Env, "STARCITE_OPS_PORT")
	n.Start()
	n.WaitReady(time.Minute)
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

	// pprof on the ops listener, on the node's address.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1"} {
		resp, err := http.Get("http://127.0.11.4:" + pprofPort + path)
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
	if _, err := http.Get("http://127.0.0.1:" + pprofPort + "/debug/pprof/"); err == nil {
		t.Errorf("the ops listener answers on 127.0.0.1; it should bind the node's address only")
	}
	if st, _ := n.Do("GET", "/debug/pprof/", nil, nil); st != 404 {
		t.Errorf("pprof on the API port: %d", st)
	}
}
