package cluster

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"ergo.services/ergo"
	"ergo.services/ergo/gen"

	"starcite/actors" // registers the wire types
	"starcite/dataplane"
	"starcite/fsm"
	"starcite/test/harness"
)

// TestPeerCannotForwardInternalCommands: a peer that holds the cookie and
// a certificate of the cluster's CA may forward to a node's router only
// what a client request causes. Its ack_archived — which would evict
// events the archive does not hold — is refused and logged, and every
// event stays in memory; an append sent the same way is committed.
func TestPeerCannotForwardInternalCommands(t *testing.T) {
	// The archiver never runs during the test: only an ack could evict.
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet,
		Env: map[string]string{"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "3600000"}})
	n := c.Nodes[0]
	n.CreateSession("peer", nil)
	for i := uint64(1); i <= 5; i++ {
		if st, _, body, err := n.Append("peer", "w", i, map[string]any{"i": i}); err != nil || st != 201 {
			t.Fatalf("append %d: %d %s %v", i, st, body, err)
		}
	}
	group := c.Group("peer")
	// A node holding a replica of the group, as the router's target.
	target := c.Leader(group)
	if target == nil {
		t.Fatal("no leader")
	}
	before := pendingRows(t, target)
	if before < 5 {
		t.Fatalf("pending rows on %s: %d, want the 5 events", target.Name, before)
	}

	peer := startPeer(t, n.Env, target)
	call := func(cmd []byte) dataplane.ProposeReply {
		v, err := peer.CallWithTimeout(gen.ProcessID{Name: actors.RouterName, Node: gen.Atom(target.Name)},
			dataplane.ProposeRequest{Group: group, Cmd: cmd}, 10)
		if err != nil {
			t.Fatalf("call %s: %v", target.Name, err)
		}
		r, ok := v.(dataplane.ProposeReply)
		if !ok {
			t.Fatalf("reply %T", v)
		}
		return r
	}

	if r := call(fsm.EncodeAckArchived([]fsm.ArchiveMark{{SessionID: "peer", Seq: 5}})); r.Err == "" {
		t.Fatalf("ack_archived from a peer: committed (%+v)", r)
	}
	target.WaitFor(30*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(target.Log(), "refused a forwarded command from "+string(peer.Name())) &&
			strings.Contains(target.Log(), "ack_archived")
	})
	if after := pendingRows(t, target); after != before {
		t.Fatalf("pending rows %d → %d: events were evicted", before, after)
	}
	evs, err := n.Events("peer")
	if err != nil || len(evs) != 5 {
		t.Fatalf("events after the refused ack: %d %v", len(evs), err)
	}

	// The same path commits a client command.
	ev := fsm.Content{Type: "t", Payload: []byte(`{}`), Actor: "service:service", ProducerID: "peer-w", ProducerSeq: 1,
		Metadata: []byte(`{}`), Refs: []byte(`{}`)}
	a := fsm.AppendEvent{SessionID: "peer", ProducerID: ev.ProducerID, ProducerSeq: 1, Hash: ev.Hash(),
		Body: fsm.AppendBody(nil, &ev, time.Now().UnixMicro(), "")}
	if r := call(fsm.EncodeAppendEvent(&a)); r.Err != "" || fsm.Status(r.Value) != fsm.StatusOK {
		t.Fatalf("append from a peer: %+v", r)
	}
	if evs, err := n.Events("peer"); err != nil || len(evs) != 6 {
		t.Fatalf("events after the forwarded append: %d %v", len(evs), err)
	}
}

// startPeer starts an Ergo node in the test process that reaches target
// as a cluster member would: the cluster's cookie and TLS files in env.
func startPeer(t *testing.T, env map[string]string, target *harness.Node) gen.Node {
	t.Helper()
	var opts gen.NodeOptions
	opts.Env = map[gen.Env]any{"disable_metrics": true}
	opts.Network.Mode = gen.NetworkModeHidden
	opts.Network.Cookie = env["STARCITE_COOKIE"]
	opts.Log.DefaultLogger.Disable = true
	name := gen.Atom(fmt.Sprintf("peer-%d@127.0.0.1", os.Getpid()))
	node, err := ergo.StartNode(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.StopForce)
	tls, err := dataplane.LoadPeerTLS(env["STARCITE_CLUSTER_TLS_CA"], env["STARCITE_CLUSTER_TLS_CERT"], env["STARCITE_CLUSTER_TLS_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	var port int
	fmt.Sscan(target.Env["STARCITE_DIST_PORT"], &port)
	if err := actors.AddPeerRoute(node.Network(), target.Name, target.Host, port, actors.DistributionTLS(tls)); err != nil {
		t.Fatal(err)
	}
	return node
}

var pendingRowsLine = regexp.MustCompile(`(?m)^starcite_archive_pending_rows (\S+)$`)

// pendingRows is a node's count of events in memory not yet archived.
func pendingRows(t *testing.T, n *harness.Node) int {
	t.Helper()
	st, body, err := n.Probe("/metrics")
	m := pendingRowsLine.FindSubmatch(body)
	if err != nil || st != 200 || m == nil {
		t.Fatalf("metrics of %s: %d", n.Name, st)
	}
	var v float64
	fmt.Sscan(string(m[1]), &v)
	return int(v)
}
