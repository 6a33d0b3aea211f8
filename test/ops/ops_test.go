package ops

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"starcite/dataplane"
	"starcite/test/harness"
)

// TestOps runs the read-only commands, the shell and /metrics against one
// cluster.
func TestOps(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	waitAllReady(t, c)
	t.Run("status", func(t *testing.T) { testStatus(t, c) })
	t.Run("ready-nodes", func(t *testing.T) { testReadyNodes(t, c) })
	t.Run("group-replicas", func(t *testing.T) { testGroupReplicas(t, c) })
	t.Run("errors", func(t *testing.T) { testErrors(t, c) })
	t.Run("shell", func(t *testing.T) { testShell(t, c) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, c) })
}

func testStatus(t *testing.T, c *harness.Cluster) {
	all := names(c.Nodes)
	for _, n := range c.Nodes {
		// Text: the status keys (docs/operations.md#starcite-ops), then one
		// row per write node.
		code, out := ops(t, n, "status")
		if code != 0 {
			t.Fatalf("status of %s: exit %d: %s", n.Name, code, out)
		}
		for key, want := range map[string]string{
			"node":                      n.Name,
			"local_write_node":          "true",
			"local_mode":                "write_node",
			"local_ready":               "true",
			"local_drained":             "false",
			"health_ready":              "ok",
			"write_nodes":               strings.Join(all, ","),
			"write_replication_factor":  "3",
			"num_groups":                "8",
			"local_groups":              "0-7",
			"observer.status":           "ok",
			"observer.visible_nodes":    strings.Join(all, ","),
			"observer.ready_nodes":      strings.Join(all, ","),
			"observer.raft_ready_nodes": strings.Join(all, ","),
		} {
			if f := fields(out, key); len(f) < 2 || f[1] != want {
				t.Errorf("status of %s: %s is %v, want %s\n%s", n.Name, key, f, want, out)
			}
		}
		for _, peer := range all {
			if f := fields(out, peer); len(f) < 5 || f[1] != "ready" || f[3] != "true" || f[4] != "true" {
				t.Errorf("status of %s: row of %s is %v, want ready, visible, raft ready", n.Name, peer, f)
			}
		}

		// JSON: the same snapshot for programs.
		st := statusJSON(t, n)
		for key, want := range map[string]any{
			"node": n.Name, "local_write_node": true, "local_mode": "write_node", "local_ready": true,
			"local_drained": false, "write_replication_factor": 3.0, "num_groups": 8.0,
		} {
			if st[key] != want {
				t.Errorf("status --json of %s: %s = %v, want %v", n.Name, key, st[key], want)
			}
		}
		if got := fmt.Sprint(st["write_nodes"]); got != fmt.Sprint(all) {
			t.Errorf("status --json of %s: write_nodes %s", n.Name, got)
		}
		if got := fmt.Sprint(st["local_groups"]); got != "[0 1 2 3 4 5 6 7]" {
			t.Errorf("status --json of %s: local_groups %s", n.Name, got)
		}
		storage := st["raft_storage"].(map[string]any)
		for _, k := range []string{"starcite_data_dir", "ra_data_dir", "ra_wal_data_dir"} {
			if s, _ := storage[k].(string); !strings.HasPrefix(s, n.Env["STARCITE_RAFT_DATA_DIR"]) {
				t.Errorf("status --json of %s: raft_storage.%s = %v", n.Name, k, storage[k])
			}
		}
		obs := st["observer"].(map[string]any)
		for _, k := range []string{"visible_nodes", "ready_nodes", "raft_ready_nodes"} {
			if got := fmt.Sprint(obs[k]); got != fmt.Sprint(all) {
				t.Errorf("status --json of %s: observer.%s = %s", n.Name, k, got)
			}
		}
		statuses := obs["node_statuses"].(map[string]any)
		for _, peer := range all {
			s, _ := statuses[peer].(map[string]any)
			if s["status"] != "ready" || s["changed_at_ms"].(float64) <= 0 {
				t.Errorf("status --json of %s: node_statuses[%s] = %v", n.Name, peer, s)
			}
		}
		groups := st["groups"].([]any)
		if len(groups) != 8 {
			t.Fatalf("status --json of %s: %d groups", n.Name, len(groups))
		}
		for _, g := range groups {
			g := g.(map[string]any)
			if len(g["members"].([]any)) != 3 || g["leader"] == "" || g["log_index"].(float64) < 1 {
				t.Errorf("status --json of %s: group %v", n.Name, g)
			}
		}
		if _, ok := st["archive"].(map[string]any)["pending_events"]; !ok {
			t.Errorf("status --json of %s: no archive backlog: %v", n.Name, st["archive"])
		}
	}

	// --node defaults to NODE_NAME.
	env := c.Nodes[2].CLIEnv()
	env["NODE_NAME"] = c.Nodes[2].Name
	code, out := harness.RunOnce(t, env, time.Minute, "ops", "status")
	if f := fields(out, "node"); code != 0 || len(f) != 2 || f[1] != c.Nodes[2].Name {
		t.Errorf("status with NODE_NAME: exit %d: %s", code, out)
	}
}

func testReadyNodes(t *testing.T, c *harness.Cluster) {
	all := names(c.Nodes)
	for _, n := range c.Nodes {
		mustOps(t, n, "ready_nodes="+strings.Join(all, ","), "ready-nodes")
		mustOps(t, n, `{
  "ready_nodes": [
    "`+strings.Join(all, `",
    "`)+`"
  ]
}`, "--json", "ready-nodes")
	}
}

func testGroupReplicas(t *testing.T, c *harness.Cluster) {
	p, err := dataplane.NewPlacement(names(c.Nodes), c.Groups, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"0"}, 0, "group_0_replicas=" + strings.Join(p.Replicas(0), ",")},
		{[]string{"7"}, 0, "group_7_replicas=" + strings.Join(p.Replicas(7), ",")},
		{[]string{"8"}, 1, `invalid group id "8" (expected configured group range)`},
		{[]string{"-1"}, 1, `invalid group id "-1" (expected configured group range)`},
		{[]string{"abc"}, 1, `invalid group id "abc" (expected configured group range)`},
		{[]string{"1.5"}, 1, `invalid group id "1.5" (expected configured group range)`},
		{nil, 1, `invalid group id "" (expected configured group range)`},
	} {
		code, out := ops(t, c.Nodes[1], append([]string{"group-replicas"}, tc.args...)...)
		if code != tc.code || out != tc.out+"\n" {
			t.Errorf("group-replicas %v: exit %d %q, want exit %d %q", tc.args, code, out, tc.code, tc.out+"\n")
		}
	}
	code, out := ops(t, c.Nodes[1], "--json", "group-replicas", "3")
	want := fmt.Sprintf("\"replicas\": [\n    %q,\n    %q,\n    %q\n  ]", p.Replicas(3)[0], p.Replicas(3)[1], p.Replicas(3)[2])
	if code != 0 || !strings.Contains(out, `"group": 3`) || !strings.Contains(out, want) {
		t.Errorf("--json group-replicas 3: exit %d: %s", code, out)
	}
}

func testErrors(t *testing.T, c *harness.Cluster) {
	n := c.Nodes[0]
	known := strings.Join(names(c.Nodes), ", ")
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"drain unknown", []string{"drain", "nope@nowhere"}, 1,
			`unknown node "nope@nowhere" (known nodes: ` + known + `)`},
		{"undrain unknown", []string{"undrain", "starcite@127.0.11.9"}, 1,
			`unknown node "starcite@127.0.11.9" (known nodes: ` + known + `)`},
		{"wait-drained times out", []string{"wait-drained", "300"}, 1, "timeout waiting for local_drained after 300ms"},
		{"wait-ready", []string{"wait-ready", "5000"}, 0, "local_ready=true"},
		{"wait-ready default", []string{"wait-ready"}, 0, "local_ready=true"},
		{"json error", []string{"--json", "drain", "x@y"}, 1,
			`{"error":"unknown node \"x@y\" (known nodes: ` + known + `)"}`},
	}
	for _, cmd := range []string{"wait-ready", "wait-drained"} {
		for _, bad := range []string{"0", "-5", "abc", "1.5", "10ms"} {
			cases = append(cases, struct {
				name string
				args []string
				code int
				out  string
			}{cmd + " " + bad, []string{cmd, bad}, 1, `invalid timeout "` + bad + `" (expected positive integer ms)`})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := ops(t, n, tc.args...)
			if code != tc.code || out != tc.out+"\n" {
				t.Errorf("ops %v: exit %d %q, want exit %d %q", tc.args, code, out, tc.code, tc.out+"\n")
			}
		})
	}

	// Unreachable: nothing listens there, or the cookie is wrong.
	for _, tc := range []struct {
		name string
		env  map[string]string
		node string
	}{
		{"no node", n.CLIEnv(), "starcite@127.0.11.9"},
		{"wrong cookie", map[string]string{"STARCITE_DIST_PORT": n.Env["STARCITE_DIST_PORT"], "STARCITE_COOKIE": "wrong"}, n.Name},
	} {
		code, out := harness.RunOnce(t, tc.env, time.Minute, "ops", "--node", tc.node, "status")
		want := "cannot reach " + tc.node + " at " + strings.TrimPrefix(tc.node, "starcite@") + ":" +
			n.Env["STARCITE_DIST_PORT"] + ": no route"
		if code != 3 || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: exit %d %q, want exit 3 and one line starting %q", tc.name, code, out, want)
		}
	}
	code, out := harness.RunOnce(t, n.CLIEnv(), time.Minute, "ops", "--node", n.Name, "frobnicate")
	if code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d %q", code, out)
	}
}

func testShell(t *testing.T, c *harness.Cluster) {
	a := c.Nodes[0]
	if out := mustShell(t, a, "help"); !strings.Contains(out, "processes [filter]") || !strings.Contains(out, "inspect <name|pid>") {
		t.Errorf("help: %s", out)
	}

	// processes: the long-lived actors by name and behaviour.
	out := mustShell(t, a, "processes")
	for name, behavior := range map[string]string{
		"router": "actors.Router", "observer": "actors.Observer", "ops": "actors.Ops", "raft": "actors.Raft",
		"fanout": "actors.Fanout", "archiver": "actors.Archiver", "discovery": "actors.Discovery",
		"http": "actors.HTTP", "tails": "sup.tailSup", "sockets": "sup.socketSup", "control_plane": "sup.controlPlane",
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 7 && f[1] == name {
				found = true
				if f[2] != behavior || f[3] != "starcite" || f[6] == "" {
					t.Errorf("processes: %s is %v", name, f)
				}
				if _, err := strconv.Atoi(f[4]); err != nil {
					t.Errorf("processes: mailbox of %s is %q", name, f[4])
				}
			}
		}
		if !found {
			t.Errorf("processes lists no %s:\n%s", name, out)
		}
	}

	// tree: supervisors above their children.
	out = mustShell(t, a, "tree")
	lines := strings.Split(out, "\n")
	idx := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		return -1
	}
	cp, obs, dp, router := idx("  control_plane sup.controlPlane "), idx("    observer actors.Observer "),
		idx("  data_plane sup.dataPlane "), idx("    router actors.Router ")
	if idx("starcite (application)") != 0 || cp < 0 || obs < cp || dp < obs || router < dp {
		t.Errorf("tree:\n%s", out)
	}

	// inspect observer: its table has every node.
	out = mustShell(t, a, "inspect observer")
	for _, n := range c.Nodes {
		if f := fields(out, n.Name); len(f) < 3 || f[1] != "ready" || f[2] != "since" {
			t.Errorf("inspect observer: row of %s is %v\n%s", n.Name, f, out)
		}
	}
	// inspect router: leader hints of every group.
	out = mustShell(t, a, "inspect router")
	if f := fields(out, "behavior"); len(f) != 2 || f[1] != "actors.Router" || !strings.Contains(out, "leader hints:") {
		t.Errorf("inspect router:\n%s", out)
	}
	for g := 0; g < c.Groups; g++ {
		if f := fields(out, strconv.Itoa(g)); len(f) != 4 || !strings.HasPrefix(f[1], "starcite@127.0.11.") {
			t.Errorf("inspect router: hint of group %d is %v", g, f)
		}
	}
	out = mustShell(t, a, "inspect archiver")
	if f := fields(out, "adapter"); len(f) != 2 || f[1] != "file" || fields(out, "cycles") == nil {
		t.Errorf("inspect archiver:\n%s", out)
	}

	// A tail: find its TailSocket, inspect its session and cursor; list
	// the sessions of its group.
	a.CreateSession("shell-tail", nil)
	for i := uint64(1); i <= 3; i++ {
		if st, _, body, err := a.Append("shell-tail", "p", i, map[string]any{"i": i}); err != nil || st != 201 {
			t.Fatalf("append: %d %s %v", st, body, err)
		}
	}
	tail := a.Tail("shell-tail", 0, 1)
	if _, err := tail.Collect(1, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	out = mustShell(t, a, "processes TailSocket")
	var pid string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 7 && f[2] == "actors.TailSocket" {
			pid = f[0]
		}
	}
	if pid == "" {
		t.Fatalf("no TailSocket among the processes:\n%s", out)
	}
	out = mustShell(t, a, "inspect "+pid)
	for key, want := range map[string]string{"session_id": "shell-tail", "cursor": "3", "buffered": "0",
		"behavior": "actors.TailSocket", "pid": pid} {
		if f := fields(out, key); len(f) != 2 || f[1] != want {
			t.Errorf("inspect %s: %s is %v, want %s\n%s", pid, key, f, want, out)
		}
	}
	// A /v1/socket connection with a tail channel: its ChannelSocket lists
	// the channel, whose TailSocket is its child in the tree.
	sock := a.Socket("")
	jref, err := sock.Join("tail:shell-tail", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sock.Reply(jref, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sock.CollectEvents("tail:shell-tail", 1, 3, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	out = mustShell(t, a, "processes ChannelSocket")
	pid = ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 7 && f[2] == "actors.ChannelSocket" {
			pid = f[0]
		}
	}
	if pid == "" {
		t.Fatalf("no ChannelSocket among the processes:\n%s", out)
	}
	out = mustShell(t, a, "inspect "+pid)
	if f := fields(out, "channels"); len(f) != 2 || f[1] != "tail:shell-tail" {
		t.Errorf("inspect %s: channels %v\n%s", pid, f, out)
	}
	out = mustShell(t, a, "tree")
	if !strings.Contains(out, "actors.ChannelSocket "+pid+"\n") ||
		!strings.Contains(out[strings.Index(out, "actors.ChannelSocket "+pid):], "actors.TailSocket") {
		t.Errorf("tree: no TailSocket under ChannelSocket %s:\n%s", pid, out)
	}

	g := c.Group("shell-tail")
	out = mustShell(t, a, fmt.Sprintf("sessions %d", g))
	if f := fields(out, "shell-tail"); len(f) != 7 || f[1] != "service" || f[2] != "3" {
		t.Errorf("sessions %d: row of shell-tail is %v\n%s", g, f, out)
	}
	if !strings.Contains(out, fmt.Sprintf("group %d: ", g)) {
		t.Errorf("sessions %d: no totals\n%s", g, out)
	}

	for _, tc := range []struct {
		cmd, out string
	}{
		{"sessions 99", `invalid group id "99" (expected configured group range)`},
		{"sessions", "usage: sessions <group> [limit]"},
		{"inspect nothing_here", `no process "nothing_here" on ` + a.Name},
		{"frobnicate", `unknown command "frobnicate"`},
	} {
		code, out := shell(t, a, tc.cmd)
		if code != 1 || out != tc.out+"\n" {
			t.Errorf("shell -c %q: exit %d %q, want exit 1 %q", tc.cmd, code, out, tc.out+"\n")
		}
	}

	// Interactive: commands from stdin until quit.
	cmd := exec.Command(harness.Binary(t), "shell", "--node", a.Name)
	for k, v := range a.CLIEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader("ready-nodes\nnot-a-command\nstatus\nquit\nready-nodes\n")
	b, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(b), "ready_nodes=") != 1 || !strings.Contains(string(b), `unknown command "not-a-command"`) ||
		fields(string(b), "local_mode") == nil {
		t.Errorf("interactive shell: %v\n%s", err, b)
	}
}

func testMetrics(t *testing.T, c *harness.Cluster) {
	a := c.Nodes[2]
	before := scrape(t, a)
	const n = 5
	a.CreateSession("metrics-s", nil)
	tail := a.Tail("metrics-s", 0, 1)
	for i := uint64(1); i <= n; i++ {
		if st, _, body, err := a.Append("metrics-s", "p", i, map[string]any{"i": i}); err != nil || st != 201 {
			t.Fatalf("append: %d %s %v", st, body, err)
		}
	}
	if _, err := tail.Collect(1, n, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _, _, _ := a.Append("no-such-session", "p", 1, map[string]any{}); st != 404 {
		t.Fatalf("append to a missing session: %d", st)
	}
	if st, _ := a.Do("GET", "/v1/sessions?limit=5", nil, nil); st != 200 {
		t.Fatalf("list: %d", st)
	}
	if _, err := a.Events("metrics-s"); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, a)

	req := func(route, code string) map[string]string { return map[string]string{"route": route, "code": code} }
	for _, tc := range []struct {
		metric  string
		labels  map[string]string
		delta   float64
		atLeast bool
	}{
		{"starcite_http_requests_total", req("create", "201"), 1, false},
		{"starcite_http_requests_total", req("append", "201"), n, false},
		{"starcite_http_requests_total", req("append", "404"), 1, false},
		{"starcite_http_requests_total", req("tail", "101"), 1, false},
		{"starcite_http_requests_total", req("list", "200"), 1, false},
		{"starcite_http_requests_total", req("events", "200"), 1, false},
		{"starcite_http_request_duration_seconds", req("append", "201"), n, false},
		{"starcite_http_request_duration_seconds", req("tail", "101"), 1, false},
		{"starcite_http_request_duration_seconds", req("create", "201"), 1, false},
		{"starcite_raft_proposals_total", map[string]string{"result": "ok"}, n + 1, true},
		{"starcite_raft_proposal_duration_seconds", map[string]string{"result": "ok"}, n + 1, true},
		{"starcite_cursor_updates_total", map[string]string{}, n, true},
	} {
		d := counter(after, tc.metric, tc.labels) - counter(before, tc.metric, tc.labels)
		if d != tc.delta && !(tc.atLeast && d >= tc.delta) {
			t.Errorf("%s%v moved by %v, want %v", tc.metric, tc.labels, d, tc.delta)
		}
	}
	if m := sample(after, "starcite_http_request_duration_seconds", req("append", "201")); m == nil ||
		m.Histogram.GetSampleSum() <= 0 || len(m.Histogram.GetBucket()) == 0 {
		t.Errorf("append latency histogram: %v", m)
	}
	if v := counter(after, "starcite_tail_sockets", map[string]string{}); v < 1 {
		t.Errorf("starcite_tail_sockets = %v with a tail open", v)
	}
	for _, name := range []string{"starcite_raft_leader_changes_total", "starcite_archive_pending_bytes",
		"starcite_archive_pending_rows", "starcite_archive_flush_duration_seconds"} {
		if after[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	// Never labelled by session or tenant.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "session_id" || l.GetName() == "tenant_id" || strings.Contains(l.GetValue(), "metrics-s") {
					t.Errorf("%s has a per-session or per-tenant label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}
