// Package ops tests the operator tools against real 3-node clusters:
// `starcite ops` (docs/operations.md#starcite-ops), `starcite shell`,
// drains and a rolling restart under load, /metrics and pprof.
package ops

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"starcite/test/harness"
)

const subnet = 11 // nodes on 127.0.11.x

// ops runs `starcite ops --node <n> args...` and returns its exit code
// and output (stdout and stderr together).
func ops(t *testing.T, n *harness.Node, args ...string) (int, string) {
	t.Helper()
	return harness.RunOnce(t, n.CLIEnv(), 3*time.Minute, append([]string{"ops", "--node", n.Name}, args...)...)
}

// mustOps runs an ops command and fails the test unless it prints want.
func mustOps(t *testing.T, n *harness.Node, want string, args ...string) {
	t.Helper()
	code, out := ops(t, n, args...)
	if code != 0 || out != want+"\n" {
		t.Fatalf("ops %v on %s: exit %d, output %q; want exit 0, %q", args, n.Name, code, out, want+"\n")
	}
}

// shell runs `starcite shell --node <n> -c command`.
func shell(t *testing.T, n *harness.Node, command string) (int, string) {
	t.Helper()
	return harness.RunOnce(t, n.CLIEnv(), time.Minute, "shell", "--node", n.Name, "-c", command)
}

func mustShell(t *testing.T, n *harness.Node, command string) string {
	t.Helper()
	code, out := shell(t, n, command)
	if code != 0 {
		t.Fatalf("shell -c %q on %s: exit %d: %s", command, n.Name, code, out)
	}
	return out
}

// statusJSON is `ops --json status` decoded.
func statusJSON(t *testing.T, n *harness.Node) map[string]any {
	t.Helper()
	code, out := ops(t, n, "--json", "status")
	if code != 0 {
		t.Fatalf("status of %s: exit %d: %s", n.Name, code, out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status of %s is not JSON: %v\n%s", n.Name, err, out)
	}
	return v
}

func names(nodes []*harness.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

// waitAllReady waits until every node's observer lists every node as
// ready (the views converge a moment after each node is ready itself).
func waitAllReady(t *testing.T, c *harness.Cluster) {
	t.Helper()
	want := "ready_nodes=" + strings.Join(names(c.Nodes), ",") + "\n"
	for _, n := range c.Nodes {
		var last string
		n.WaitFor(60*time.Second, "every node ready in its observer", func() bool {
			_, last = ops(t, n, "ready-nodes")
			return last == want
		})
	}
}

// waitUntil polls cond every 20 ms until it holds; it fails the test
// after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fields returns the whitespace-separated fields of the first line of
// out whose first field is key (nil when there is none).
func fields(out, key string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			return f
		}
	}
	return nil
}

// health returns the status and reason of GET /health/ready.
func health(n *harness.Node) (int, string) {
	st, body, err := n.Probe("/health/ready")
	if err != nil {
		return 0, err.Error()
	}
	var v struct{ Reason string }
	json.Unmarshal(body, &v)
	return st, v.Reason
}

// forwarded sums the proposals the given nodes served for other nodes.
func forwarded(nodes ...*harness.Node) float64 {
	sum := 0.0
	for _, n := range nodes {
		sum += n.Metric(`starcite_forwarded_requests_total{kind="propose"}`)
	}
	return sum
}

// scrape reads a node's /metrics with the Prometheus text parser.
func scrape(t *testing.T, n *harness.Node) map[string]*dto.MetricFamily {
	t.Helper()
	st, body, err := n.Probe("/metrics")
	if err != nil || st != 200 {
		t.Fatalf("/metrics on %s: %d %v", n.Name, st, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics on %s does not parse: %v", n.Name, err)
	}
	return fams
}

// sample finds the metric of a family whose labels are exactly labels.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if match {
			return m
		}
	}
	return nil
}

// counter is a counter's value (0 when absent); for a histogram, its
// sample count.
func counter(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := sample(fams, name, labels)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// logStream is a running `starcite shell -c "log N"`.
type logStream struct {
	cmd   *exec.Cmd
	lines chan string
}

// streamLog starts streaming n's log and returns once the shell reports
// that it is subscribed.
func streamLog(t *testing.T, n *harness.Node, seconds int) *logStream {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "shell", "--node", n.Name, "-c", fmt.Sprintf("log %d", seconds))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range n.CLIEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &logStream{cmd: cmd, lines: make(chan string, 4096)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	if _, err := s.waitFor("streaming the log of "+n.Name, 30*time.Second); err != nil {
		t.Fatalf("shell log on %s: %v", n.Name, err)
	}
	return s
}

// waitFor reads the stream until a line contains want.
func (s *logStream) waitFor(want string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return "", fmt.Errorf("stream ended without %q; saw:\n%s", want, strings.Join(seen, "\n"))
			}
			if strings.Contains(l, want) {
				return l, nil
			}
			seen = append(seen, l)
		case <-deadline:
			return "", fmt.Errorf("no line with %q within %s; saw:\n%s", want, timeout, strings.Join(seen, "\n"))
		}
	}
}

// rotation is the set of nodes clients use, as a load balancer that
// follows /health/ready would keep it: nodes leave it before they stop
// and come back once they serve. It counts the requests in flight per
// node so a node is stopped only once no client request is on it.
type rotation struct {
	mu       sync.Mutex
	nodes    []*harness.Node
	out      map[*harness.Node]bool
	inflight map[*harness.Node]int
	turn     int
}

func newRotation(nodes []*harness.Node) *rotation {
	return &rotation{nodes: nodes, out: map[*harness.Node]bool{}, inflight: map[*harness.Node]int{}}
}

// acquire picks the next node in rotation; release it after the request.
func (r *rotation) acquire() *harness.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		n := r.nodes[r.turn%len(r.nodes)]
		r.turn++
		if !r.out[n] {
			r.inflight[n]++
			return n
		}
	}
}

func (r *rotation) release(n *harness.Node) {
	r.mu.Lock()
	r.inflight[n]--
	r.mu.Unlock()
}

func (r *rotation) remove(n *harness.Node) {
	r.mu.Lock()
	r.out[n] = true
	r.mu.Unlock()
}

func (r *rotation) add(n *harness.Node) {
	r.mu.Lock()
	delete(r.out, n)
	r.mu.Unlock()
}

func (r *rotation) idle(n *harness.Node) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[n] == 0
}
