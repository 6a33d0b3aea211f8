package ops

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestOneArchivePerCluster (docs/operations.md#one-archive-per-cluster):
// nodes of a cluster with the file archive refuse to boot without
// STARCITE_ARCHIVE_DIR; with a directory set on each but not shared, every
// node reports its peers' missing markers — in its log, in `starcite ops
// status` and in starcite_archive_missing_node_markers — within a minute.
func TestOneArchivePerCluster(t *testing.T) {
	var nodes []string
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, fmt.Sprintf("starcite@127.0.%d.%d", subnet, i))
	}
	const want = "STARCITE_ARCHIVE_DIR: required in a cluster with STARCITE_ARCHIVE_ADAPTER=file; it must be one directory shared by every node (or use STARCITE_ARCHIVE_ADAPTER=s3 or postgres)"
	for _, n := range nodes {
		code, out := harness.RunOnce(t, map[string]string{
			"NODE_NAME": n, "STARCITE_WRITE_NODE_IDS": strings.Join(nodes, ","), "CLUSTER_NODES": strings.Join(nodes, ","),
			"STARCITE_COOKIE": "archive-test-cookie-0123456789", "STARCITE_AUTH_MODE": "none", "STARCITE_RAFT_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		}, 30*time.Second, "server")
		if code != 2 || out != "starcite: configuration error: "+want+"\n" {
			t.Fatalf("%s without STARCITE_ARCHIVE_DIR: exit %d, output %q; want exit 2 and the one line %q", n, code, out, want)
		}
	}

	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, NodeEnv: func(int) map[string]string {
		return map[string]string{"STARCITE_ARCHIVE_DIR": t.TempDir()} // set, but one per node
	}})
	for _, n := range c.Nodes {
		var others []string
		for _, o := range c.Nodes {
			if o != n {
				others = append(others, o.Name)
			}
		}
		line := "no marker of " + strings.Join(others, ",") // peers sorted, as the nodes are
		var status string
		n.WaitFor(time.Minute, "the unshared archive reported", func() bool {
			_, status = ops(t, n, "status")
			return n.Metric("starcite_archive_missing_node_markers") == 2 &&
				strings.Contains(n.Log(), "not shared: no marker of "+strings.Join(others, ", ")) &&
				len(fields(status, "archive.shared")) > 1 && strings.Contains(status, line)
		})
		if f := fields(status, "archive.shared"); f[1] != "NO:" {
			t.Fatalf("%s: ops status says %v", n.Name, f)
		}
	}
}
