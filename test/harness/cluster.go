package harness

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"starcite/dataplane"
)

// Cluster is a set of write nodes, each a real process: by default on its
// own loopback address (127.0.N.1, 127.0.N.2, ...) sharing one Raft and
// one distribution port, as the README's development cluster runs; with
// Isolated, each in its own network namespace (10.213.N.x), which a
// partition can cut off.
type Cluster struct {
	t         testing.TB
	Nodes     []*Node
	Groups    int
	placement *dataplane.Placement
	lab       *netLab
}

// ClusterOptions configure NewCluster.
type ClusterOptions struct {
	Size     int               // write nodes, default 3
	Routers  int               // extra nodes that hold no replica and route everything
	Subnet   int               // N of the addresses; pick one per test package
	Isolated bool              // network namespaces (needs root; skipped loudly otherwise)
	Env      map[string]string // extra variables for every node
	// NodeEnv, when set, gives node i (0-based) variables of its own over Env.
	NodeEnv func(i int) map[string]string
	// PlainText runs the inter-node ports without TLS (loopback only;
	// an Isolated cluster then runs with STARCITE_CLUSTER_INSECURE). By
	// default every cluster runs with the mutual TLS of
	// docs/security.md, with certificates `starcite cert` made.
	PlainText bool
}

// TLSEnv are the variables of the cluster TLS, for a node or a tool.
var TLSEnv = []string{"STARCITE_CLUSTER_TLS_CA", "STARCITE_CLUSTER_TLS_CERT", "STARCITE_CLUSTER_TLS_KEY"}

// MakeCerts creates a CA in dir and, for each host, a node certificate
// naming it, with `starcite cert`. It returns each node's TLS variables.
func MakeCerts(t testing.TB, dir string, hosts []string) []map[string]string {
	t.Helper()
	run := func(args ...string) {
		if code, out := RunOnce(t, nil, time.Minute, append([]string{"cert"}, args...)...); code != 0 {
			t.Fatalf("starcite cert %v: exit %d\n%s", args, code, out)
		}
	}
	run("ca", "--dir", dir)
	envs := make([]map[string]string, len(hosts))
	for i, h := range hosts {
		name := fmt.Sprintf("node%d", i+1)
		run("node", name, "--host", h, "--dir", dir)
		envs[i] = map[string]string{
			"STARCITE_CLUSTER_TLS_CA":   filepath.Join(dir, "ca.pem"),
			"STARCITE_CLUSTER_TLS_CERT": filepath.Join(dir, name+".pem"),
			"STARCITE_CLUSTER_TLS_KEY":  filepath.Join(dir, name+"-key.pem"),
		}
	}
	return envs
}

// NewCluster starts a cluster and waits until every node is ready.
func NewCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Size == 0 {
		o.Size = 3
	}
	c := &Cluster{t: t, Groups: 8}
	if g, ok := o.Env["STARCITE_NUM_GROUPS"]; ok {
		c.Groups, _ = strconv.Atoi(g)
	}
	all := o.Size + o.Routers
	hosts := make([]string, all)
	names := make([]string, all)
	if o.Isolated {
		c.lab = newNetLab(t, o.Subnet, all)
	}
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.%d.%d", o.Subnet, i+1)
		if c.lab != nil {
			hosts[i] = c.lab.ip(i)
		}
		names[i] = "starcite@" + hosts[i]
	}
	env := map[string]string{
		"CLUSTER_NODES":           strings.Join(names, ","),
		"STARCITE_WRITE_NODE_IDS": strings.Join(names[:o.Size], ","),
		"STARCITE_COOKIE":         "test-cluster-cookie-" + strconv.Itoa(os.Getpid()),
		"STARCITE_NUM_GROUPS":     strconv.Itoa(c.Groups),
		"STARCITE_ARCHIVE_DIR":    t.TempDir(), // shared by every node
	}
	if c.lab != nil {
		// none mode off loopback: the namespaces' network is private to the test.
		env["STARCITE_ALLOW_INSECURE_NONE"] = "true"
		if o.PlainText {
			env["STARCITE_CLUSTER_INSECURE"] = "1"
		}
	} else {
		// One port for all nodes, as in production; free on the first address.
		env["STARCITE_RAFT_PORT"] = strconv.Itoa(FreePort(t, hosts[0]))
		env["STARCITE_DIST_PORT"] = strconv.Itoa(FreePort(t, hosts[0]))
	}
	for k, v := range o.Env {
		env[k] = v
	}
	var tlsEnv []map[string]string
	if !o.PlainText {
		tlsEnv = MakeCerts(t, t.TempDir(), hosts)
	}
	for i := range hosts {
		nodeEnv := maps.Clone(env)
		if tlsEnv != nil {
			maps.Copy(nodeEnv, tlsEnv[i])
		}
		if o.NodeEnv != nil {
			maps.Copy(nodeEnv, o.NodeEnv(i))
		}
		opts := Options{Host: hosts[i], Env: nodeEnv}
		if c.lab != nil {
			opts.Netns = c.lab.ns(i)
		}
		c.Nodes = append(c.Nodes, NewNode(t, opts))
	}
	rf := min(3, o.Size)
	if v, ok := o.Env["STARCITE_WRITE_REPLICATION_FACTOR"]; ok {
		rf, _ = strconv.Atoi(v)
	}
	p, err := dataplane.NewPlacement(names[:o.Size], c.Groups, rf)
	if err != nil {
		t.Fatal(err)
	}
	c.placement = p
	for _, n := range c.Nodes {
		n.Start()
	}
	for _, n := range c.Nodes {
		n.WaitReady(90 * time.Second)
	}
	return c
}

// Group returns the group of a session.
func (c *Cluster) Group(session string) int { return c.placement.Group(session) }

// Holds reports whether node n holds a replica of the session's group.
func (c *Cluster) Holds(n *Node, session string) bool {
	return c.placement.Holds(n.Name, c.placement.Group(session))
}

// Leader returns the node that leads group, as the nodes report it on
// /metrics (nil when no running node claims it).
func (c *Cluster) Leader(group int) *Node {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		st, body, err := n.Probe("/metrics")
		if err == nil && st == 200 && strings.Contains(string(body),
			fmt.Sprintf("starcite_raft_group_leader{group=\"%d\"} 1\n", group)) {
			return n
		}
	}
	return nil
}

// Preferred returns the node placement names first among group's
// replicas: the leader the nodes hand the group back to.
func (c *Cluster) Preferred(group int) *Node {
	name := c.placement.Replicas(group)[0]
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("group %d: preferred replica %s is not a node of the cluster", group, name)
	return nil
}

// Partition cuts node i off from the other nodes (the test still reaches
// every node). Only an Isolated cluster can be partitioned.
func (c *Cluster) Partition(i int) {
	c.t.Helper()
	if c.lab == nil {
		c.t.Fatal("Partition needs an Isolated cluster")
	}
	c.lab.isolate(i)
}

// Heal undoes Partition of node i.
func (c *Cluster) Heal(i int) {
	if c.lab != nil {
		c.lab.heal(i)
	}
}
