package docker

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"starcite/test/harness"
)

// runQuiet runs a command with extra environment and returns its
// combined output.
func runQuiet(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no result within %s", name, strings.Join(args, " "), timeout)
	}
	return out.String(), err
}

// run is runQuiet for a test: the command line goes to the test log.
func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	t.Logf("$ %s %s", name, strings.Join(args, " "))
	return runQuiet(timeout, env, name, args...)
}

// must runs a command and fails the test when it fails.
func must(t testing.TB, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, timeout, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// composeCommand is `docker compose` when the plugin exists, else the
// standalone docker-compose, as the Makefile picks it.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if _, err := runQuiet(30*time.Second, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if out, err := runQuiet(30*time.Second, nil, "docker-compose", "version"); err == nil {
		t.Logf("compose: %s", strings.SplitN(out, "\n", 2)[0])
		return []string{"docker-compose"}
	}
	t.Fatal("a Docker engine answers but neither `docker compose` nor `docker-compose` works")
	return nil
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

type image struct {
	tag  string
	size int64
}

// staticBinary reports whether an ELF file has no program interpreter,
// i.e. runs on an empty (scratch) root file system.
func staticBinary(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// buildImage builds the image of rel/Dockerfile, tagged repo:latest,
// from the static binary under test: $STARCITE_BIN when it is static (make
// test builds it with CGO_ENABLED=0), else one built from this checkout
// into a temporary directory. The image is removed when the test ends.
func buildImage(t *testing.T, root, repo string) image {
	t.Helper()
	tmp := t.TempDir()
	bin := os.Getenv("STARCITE_BIN")
	if bin == "" || !staticBinary(bin) {
		bin = filepath.Join(tmp, "starcite")
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=docker-test", "-o", bin, "./app")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		t.Logf("built a static binary in %s", time.Since(start).Round(time.Millisecond))
	}
	ctx := filepath.Join(tmp, "context")
	must(t, time.Minute, nil, filepath.Join(root, "rel", "docker-context.sh"), ctx, bin)
	tag := repo + ":latest"
	t.Cleanup(func() {
		if out, err := runQuiet(time.Minute, nil, "docker", "image", "rm", "-f", tag); err != nil {
			t.Errorf("removing image %s: %v\n%s", tag, err, out)
		}
	})
	start := time.Now()
	must(t, 10*time.Minute, nil, "docker", "build", "-q", "--build-arg", "VERSION=docker-test",
		"-f", filepath.Join(root, "rel", "Dockerfile"), "-t", tag, ctx)
	t.Logf("built image %s in %s", tag, time.Since(start).Round(time.Millisecond))
	size, err := strconv.ParseInt(strings.TrimSpace(must(t, time.Minute, nil, "docker", "image", "inspect", "-f", "{{.Size}}", tag)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	user := strings.TrimSpace(must(t, time.Minute, nil, "docker", "image", "inspect", "-f", "{{.Config.User}}", tag))
	if user == "" || strings.HasPrefix(user, "0") || user == "root" {
		t.Fatalf("image runs as %q, want a non-root user", user)
	}
	return image{tag: tag, size: size}
}

// startedAt is when Docker last started a container.
func startedAt(t testing.TB, container string) time.Time {
	t.Helper()
	out := strings.TrimSpace(must(t, time.Minute, nil, "docker", "inspect", "-f", "{{.State.StartedAt}}", container))
	at, err := time.Parse(time.RFC3339Nano, out)
	if err != nil {
		t.Fatalf("StartedAt of %s: %q: %v", container, out, err)
	}
	return at
}

// pollReady polls /health/ready every 20 ms until it answers 200 and
// returns when it first did; ok is false after timeout.
func pollReady(n *harness.Node, timeout time.Duration, alive func() bool) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	checks := 0
	for time.Now().Before(deadline) {
		if st, _, err := n.TryDo("GET", "/health/ready", nil, nil); err == nil && st == 200 {
			return time.Now(), true
		}
		checks++
		if alive != nil && checks%50 == 0 && !alive() {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// coldStartSingle measures the cold start of one container: a single
// node on the image's defaults (256 groups), fresh volume, from the
// moment Docker started it to the first 200 on /health/ready.
func coldStartSingle(t *testing.T, tag string) {
	t.Helper()
	name := strings.ReplaceAll(strings.TrimSuffix(tag, ":latest"), ":", "-") + "-single"
	port := harness.FreePort(t, "127.0.0.1")
	t.Cleanup(func() { runQuiet(time.Minute, nil, "docker", "rm", "-f", "-v", name) })
	start := time.Now()
	must(t, 2*time.Minute, nil, "docker", "run", "-d", "--name", name, "--hostname", "single",
		"-p", fmt.Sprintf("127.0.0.1:%d:4000", port),
		"-e", "STARCITE_AUTH_MODE=none", "-e", "STARCITE_ALLOW_INSECURE_NONE=true", "-e", "STARCITE_HTTP_HOST=0.0.0.0",
		tag)
	n := &harness.Node{Name: name, Host: "127.0.0.1", Port: port}
	ready, ok := pollReady(n, 120*time.Second, nil)
	if !ok {
		out, _ := runQuiet(time.Minute, nil, "docker", "logs", "--tail", "40", name)
		t.Fatalf("single-node container not ready within 120 s:\n%s", out)
	}
	t.Logf("MEASURE cold start, single node (256 groups): container start → ready %s; `docker run` → ready %s",
		ready.Sub(startedAt(t, name)).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond))
	// The healthcheck command, as Docker runs it: 0 when ready or live, 1
	// when nothing answers (Docker reserves 2).
	for _, args := range [][]string{{"healthcheck"}, {"healthcheck", "live"}} {
		if out, err := run(t, time.Minute, nil, "docker", append([]string{"exec", name, "starcite"}, args...)...); err != nil {
			t.Fatalf("starcite %s in a ready container: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := run(t, time.Minute, nil, "docker", "exec", "-e", "PORT=1", name, "starcite", "healthcheck")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("starcite healthcheck against a closed port: %v (want exit status 1)\n%s", err, out)
	}
	if out, err := runQuiet(2*time.Minute, nil, "docker", "rm", "-f", "-v", name); err != nil {
		t.Fatalf("docker rm %s: %v\n%s", name, err, out)
	}
}

type clusterOptions struct {
	compose []string
	file    string
	project string
	image   string
}

// cluster is the compose cluster of one test run.
type cluster struct {
	clusterOptions
	env        []string // the variables rel/compose.yml reads
	prefix     string   // first three octets of the cluster network
	network    string   // the cluster network's name
	containers []string // container of node i
	nodes      []*harness.Node
}

// startCluster starts rel/compose.yml under a project of its own, with
// free host ports and a free cluster subnet, and waits until every node is
// ready. Everything is removed when the test ends.
func startCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{clusterOptions: o}
	t.Cleanup(func() { c.teardown(t) })
	var ports [3]int
	for i := range ports {
		ports[i] = harness.FreePort(t, "127.0.0.1")
	}
	cookie := fmt.Sprintf("test-%016x", rand.Uint64())
	// The inter-node TLS: certificates naming node1..3, as
	// `make cluster-certs` makes them, in a directory the containers'
	// user (uid 10001) can read.
	certs := t.TempDir()
	harness.MakeCerts(t, certs, []string{"node1", "node2", "node3"})
	keys, _ := filepath.Glob(filepath.Join(certs, "*-key.pem"))
	for _, p := range append(keys, certs) {
		mode := os.FileMode(0o644)
		if p == certs {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	var out string
	var err error
	var start time.Time
	for attempt := 1; ; attempt++ {
		c.prefix = freeSubnetPrefix(t)
		c.env = []string{
			"STARCITE_IMAGE=" + o.image,
			"STARCITE_HTTP_PORT_1=" + strconv.Itoa(ports[0]),
			"STARCITE_HTTP_PORT_2=" + strconv.Itoa(ports[1]),
			"STARCITE_HTTP_PORT_3=" + strconv.Itoa(ports[2]),
			"STARCITE_CLUSTER_SUBNET_PREFIX=" + c.prefix,
			"STARCITE_COOKIE=" + cookie,
			"STARCITE_CLUSTER_CERTS=" + certs,
			"STARCITE_NUM_GROUPS=" + envOr("STARCITE_NUM_GROUPS", "256"),
			"STARCITE_LOG_LEVEL=info",
		}
		start = time.Now()
		out, err = c.composeRun(t, 5*time.Minute, "up", "-d")
		if err == nil {
			break
		}
		// Another network may have taken the subnet meanwhile.
		if attempt < 3 && strings.Contains(strings.ToLower(out), "overlap") {
			t.Logf("subnet %s.0/24 taken, trying another: %s", c.prefix, out)
			c.composeRun(t, 5*time.Minute, "down", "--volumes", "--remove-orphans")
			continue
		}
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	upDone := time.Now()
	for i := 1; i <= 3; i++ {
		name := strings.TrimSpace(must(t, time.Minute, nil, "docker", "ps", "-a",
			"--filter", "label=com.docker.compose.project="+o.project,
			"--filter", fmt.Sprintf("label=com.docker.compose.service=starcite-%d", i),
			"--format", "{{.Names}}"))
		if name == "" || strings.Contains(name, "\n") {
			t.Fatalf("container of service starcite-%d: %q", i, name)
		}
		if !strings.Contains(name, "starcite") {
			t.Fatalf("container name %q does not contain starcite", name)
		}
		c.containers = append(c.containers, name)
		c.nodes = append(c.nodes, &harness.Node{Name: fmt.Sprintf("starcite@node%d", i), Host: "127.0.0.1", Port: ports[i-1]})
	}
	c.network = strings.TrimSpace(must(t, time.Minute, nil, "docker", "network", "ls",
		"--filter", "label=com.docker.compose.project="+o.project,
		"--filter", "label=com.docker.compose.network=cluster", "--format", "{{.Name}}"))
	if c.network == "" {
		t.Fatal("the cluster network of the compose project was not found")
	}

	// Wait for all three at once, noting when each became ready.
	var wg sync.WaitGroup
	readyAt := make([]time.Time, 3)
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readyAt[i], _ = pollReady(c.nodes[i], 180*time.Second, func() bool { return c.running(i) })
		}()
	}
	wg.Wait()
	var last time.Time
	var per []string
	for i, at := range readyAt {
		if at.IsZero() {
			running, restarts := c.state(i)
			t.Fatalf("%s (%s) not ready (running %v, crashed %d times)", c.nodes[i].Name, c.containers[i], running, restarts)
		}
		per = append(per, fmt.Sprintf("%s %s", c.nodes[i].Name, at.Sub(startedAt(t, c.containers[i])).Round(time.Millisecond)))
		if at.After(last) {
			last = at
		}
	}
	t.Logf("MEASURE cold start, 3-node compose cluster (%s groups): compose up → all ready %s (up itself %s); container start → ready: %s",
		envOr("STARCITE_NUM_GROUPS", "256"), last.Sub(start).Round(time.Millisecond), upDone.Sub(start).Round(time.Millisecond), strings.Join(per, ", "))
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *cluster) composeRun(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	full := append(append(c.compose[1:], "-p", c.project, "-f", c.file), args...)
	return run(t, timeout, c.env, c.compose[0], full...)
}

// docker runs a docker command and fails the test when it fails.
func (c *cluster) docker(t testing.TB, args ...string) string {
	t.Helper()
	return must(t, 3*time.Minute, nil, "docker", args...)
}

// state reports whether node i's container runs and how many times
// Docker's restart policy restarted it (a crash; `docker restart` and
// `docker start` do not count).
func (c *cluster) state(i int) (running bool, restarts int) {
	out, err := runQuiet(time.Minute, nil, "docker", "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", c.containers[i])
	if err != nil {
		return false, 0
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return false, 0
	}
	restarts, _ = strconv.Atoi(f[1])
	return f[0] == "true", restarts
}

// running reports whether node i's container runs and never crashed.
func (c *cluster) running(i int) bool {
	r, n := c.state(i)
	return r && n == 0
}

// checkNoCrash fails the test when Docker restarted a container on its
// own: the restart policy must not hide a node that crashed.
func (c *cluster) checkNoCrash(t testing.TB) {
	t.Helper()
	for i, name := range c.containers {
		if running, n := c.state(i); n > 0 || !running {
			t.Fatalf("%s (%s): running %v, restarted by Docker %d times (crashed)", c.nodes[i].Name, name, running, n)
		}
	}
}

// waitReady waits until node i answers 200 on /health/ready.
func (c *cluster) waitReady(t testing.TB, i int, timeout time.Duration) {
	t.Helper()
	if _, ok := pollReady(c.nodes[i], timeout, func() bool { return c.running(i) }); !ok {
		st, b, err := c.nodes[i].TryDo("GET", "/health/ready", nil, nil)
		running, restarts := c.state(i)
		t.Fatalf("%s (%s) not ready within %s (running %v, crashed %d times); last answer %d %s %v",
			c.nodes[i].Name, c.containers[i], timeout, running, restarts, st, b, err)
	}
}

// waitConverged waits until every node serves the same number of events
// of session s.
func (c *cluster) waitConverged(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		counts := make([]int, len(c.nodes))
		same := true
		for i, n := range c.nodes {
			evs, err := n.Events(s)
			if err != nil {
				counts[i], same = -1, false
				last = fmt.Sprintf("%s: %v", n.Name, err)
				continue
			}
			counts[i] = len(evs)
			if counts[i] != counts[0] {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not converged after %s: events per node %v (%s)", s, timeout, counts, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitHealthy waits until Docker reports every container healthy: the
// image's HEALTHCHECK (`starcite healthcheck`) works in the container.
func (c *cluster) waitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i, name := range c.containers {
		for {
			out, err := runQuiet(time.Minute, nil, "docker", "inspect", "-f", "{{.State.Health.Status}}", name)
			status := strings.TrimSpace(out)
			if err == nil && status == "healthy" {
				break
			}
			if time.Now().After(deadline) {
				log, _ := runQuiet(time.Minute, nil, "docker", "inspect", "-f", "{{json .State.Health}}", name)
				t.Fatalf("Docker reports %s (%s) %q after %s: %s", c.nodes[i].Name, name, status, timeout, log)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// clusterIP is node i's address on the cluster network (rel/compose.yml).
func (c *cluster) clusterIP(i int) string { return fmt.Sprintf("%s.%d", c.prefix, 11+i) }

// disconnect cuts node i off the cluster network; clients still reach it
// through the published port on the edge network.
func (c *cluster) disconnect(t testing.TB, i int) {
	t.Helper()
	c.docker(t, "network", "disconnect", c.network, c.containers[i])
	t.Logf("partitioned %s (%s) from %s", c.nodes[i].Name, c.containers[i], c.network)
}

// connect puts node i back on the cluster network at its fixed address.
func (c *cluster) connect(t testing.TB, i int) {
	t.Helper()
	c.docker(t, "network", "connect", "--ip", c.clusterIP(i), c.network, c.containers[i])
	t.Logf("healed %s (%s)", c.nodes[i].Name, c.containers[i])
}

// hasOps reports whether the image's binary has the ops command.
func (c *cluster) hasOps(t testing.TB) bool {
	out, err := runQuiet(time.Minute, nil, "docker", "exec", c.containers[0], "starcite", "ops", "--node", c.nodes[0].Name, "status")
	if err != nil && strings.Contains(out, `unknown command "ops"`) {
		return false
	}
	return true
}

// teardown dumps the logs of a failed run, then removes the project's
// containers, networks and volumes, and checks that nothing is left.
func (c *cluster) teardown(t *testing.T) {
	if t.Failed() {
		if out, err := c.composeRun(t, 2*time.Minute, "logs", "--no-color", "--tail=80"); err == nil {
			t.Logf("--- container logs (last 80 lines each) ---\n%s", out)
		}
	}
	if out, err := c.composeRun(t, 5*time.Minute, "down", "--volumes", "--remove-orphans", "--timeout", "10"); err != nil {
		t.Errorf("compose down: %v\n%s", err, out)
	}
	label := "label=com.docker.compose.project=" + c.project
	for _, kind := range [][]string{
		{"ps", "-aq", "--filter", label},
		{"network", "ls", "-q", "--filter", label},
		{"volume", "ls", "-q", "--filter", label},
	} {
		out, err := runQuiet(time.Minute, nil, "docker", kind...)
		if err != nil {
			t.Errorf("docker %s: %v", strings.Join(kind, " "), err)
			continue
		}
		left := strings.Fields(out)
		if len(left) == 0 {
			continue
		}
		t.Errorf("compose down left %s objects of project %s: %v; removing them", kind[0], c.project, left)
		rm := map[string][]string{"ps": {"rm", "-f", "-v"}, "network": {"network", "rm"}, "volume": {"volume", "rm", "-f"}}[kind[0]]
		runQuiet(time.Minute, nil, "docker", append(rm, left...)...)
	}
}

// freeSubnetPrefix picks a /24 (as its first three octets) that overlaps
// no Docker network and no address of this machine.
func freeSubnetPrefix(t testing.TB) string {
	t.Helper()
	var used []*net.IPNet
	ids := strings.Fields(must(t, time.Minute, nil, "docker", "network", "ls", "-q"))
	if len(ids) > 0 {
		out := must(t, time.Minute, nil, "docker", append([]string{"network", "inspect", "-f",
			"{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, ids...)...)
		for _, s := range strings.Fields(out) {
			if _, n, err := net.ParseCIDR(s); err == nil {
				used = append(used, n)
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				used = append(used, &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask})
			}
		}
	}
	for range 1000 {
		// 172.16.0.0/16 is outside Docker's default address pools.
		prefix := fmt.Sprintf("172.16.%d", 16+rand.IntN(224))
		_, cand, _ := net.ParseCIDR(prefix + ".0/24")
		free := true
		for _, u := range used {
			if u.Contains(cand.IP) || cand.Contains(u.IP) {
				free = false
				break
			}
		}
		if free {
			return prefix
		}
	}
	t.Fatal("no free /24 in 172.16.0.0/16 for the cluster network")
	return ""
}
