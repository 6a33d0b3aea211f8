package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netLab puts each node of a cluster in its own network namespace, joined
// by a bridge, so that each node has its own address for what it sends as
// well as what it receives: only then can a partition cut one node off
// (on loopback aliases every connection leaves from 127.0.0.1).
type netLab struct {
	t      testing.TB
	subnet int
	size   int
}

func (l *netLab) bridge() string        { return fmt.Sprintf("scbr%d", l.subnet) }
func (l *netLab) ns(i int) string       { return fmt.Sprintf("sc%d_%d", l.subnet, i) }
func (l *netLab) vethHost(i int) string { return fmt.Sprintf("sch%d_%d", l.subnet, i) }
func (l *netLab) vethNode(i int) string { return fmt.Sprintf("scn%d_%d", l.subnet, i) }
func (l *netLab) ip(i int) string       { return fmt.Sprintf("10.213.%d.%d", l.subnet, i+1) }

func (l *netLab) run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if err := l.run(args...); err != nil {
		l.t.Fatal(err)
	}
}

// newNetLab builds the bridge and one namespace per node, or skips the
// test loudly when this machine cannot (not root, no iproute2).
func newNetLab(t testing.TB, subnet, size int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING: network-namespace cluster needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIPPING: network-namespace cluster needs iproute2 (ip)")
	}
	l := &netLab{t: t, subnet: subnet, size: size}
	l.teardown() // leftovers of an interrupted run
	t.Cleanup(l.teardown)
	br := l.bridge()
	l.must("ip", "link", "add", br, "type", "bridge")
	l.must("ip", "addr", "add", fmt.Sprintf("10.213.%d.254/24", subnet), "dev", br)
	l.must("ip", "link", "set", br, "up")
	// Docker sets the FORWARD policy to DROP; bridged traffic between our
	// namespaces must still pass.
	if _, err := exec.LookPath("iptables"); err == nil {
		l.must("iptables", "-I", "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT")
	}
	for i := 0; i < size; i++ {
		ns, vh, vn := l.ns(i), l.vethHost(i), l.vethNode(i)
		l.must("ip", "netns", "add", ns)
		l.must("ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
		l.must("ip", "link", "set", vn, "netns", ns)
		l.must("ip", "link", "set", vh, "master", br)
		l.must("ip", "link", "set", vh, "up")
		l.must("ip", "netns", "exec", ns, "ip", "addr", "add", l.ip(i)+"/24", "dev", vn)
		l.must("ip", "netns", "exec", ns, "ip", "link", "set", vn, "up")
		l.must("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	}
	return l
}

func (l *netLab) teardown() {
	for i := 0; i < l.size; i++ {
		l.run("ip", "netns", "del", l.ns(i))
		l.run("ip", "link", "del", l.vethHost(i))
	}
	l.run("iptables", "-D", "FORWARD", "-i", l.bridge(), "-o", l.bridge(), "-j", "ACCEPT")
	l.run("ip", "link", "del", l.bridge())
}

// isolate drops every packet between node i and the other nodes, inside
// node i's namespace; the test host (the bridge address) still reaches it.
func (l *netLab) isolate(i int) {
	l.t.Helper()
	for j := 0; j < l.size; j++ {
		if j == i {
			continue
		}
		l.must("ip", "netns", "exec", l.ns(i), "iptables", "-A", "INPUT", "-s", l.ip(j), "-j", "DROP")
		l.must("ip", "netns", "exec", l.ns(i), "iptables", "-A", "OUTPUT", "-d", l.ip(j), "-j", "DROP")
	}
}

// heal removes what isolate added.
func (l *netLab) heal(i int) {
	l.run("ip", "netns", "exec", l.ns(i), "iptables", "-F", "INPUT")
	l.run("ip", "netns", "exec", l.ns(i), "iptables", "-F", "OUTPUT")
}
