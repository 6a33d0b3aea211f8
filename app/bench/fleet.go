package bench

// The server processes `starcite bench` starts: a single node or the
// local 3-node cluster.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"starcite/app/measure"
	"starcite/app/procrun"
)

// benchNode is one server process the bench runs.
type benchNode struct {
	name    string // NODE_NAME
	host    string // loopback address it binds
	url     string // http://host:port
	dir     string // STARCITE_RAFT_DATA_DIR
	logPath string
	env     []string // NAME=value, on top of the inherited environment

	mu   sync.Mutex
	proc *procrun.Process // nil when not started
}

func (n *benchNode) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.Pid()
}

func (n *benchNode) start(bin string, extra []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("%s: already running", n.name)
	}
	// The inherited environment first, so that STARCITE_* variables set by
	// the caller reach the nodes (as rel/dev-cluster.sh does); the node's
	// own settings win over them (exec keeps the last value of a name).
	// Killed if the bench dies without cleaning up.
	p, err := procrun.Start(procrun.Spec{Path: bin, Args: []string{"server"}, LogPath: n.logPath,
		Env: append(append(os.Environ(), n.env...), extra...), DieWithParent: true})
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.proc = p
	return nil
}

// stop sends SIGTERM, waits up to grace for the exit, then SIGKILL.
func (n *benchNode) stop(grace time.Duration) {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p != nil {
		p.Stop(syscall.SIGTERM, grace)
	}
}

func (n *benchNode) exited() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc == nil || n.proc.Exited()
}

// logTail returns the last lines of the node's log, for error reports.
func (n *benchNode) logTail(lines int) string { return procrun.LogTail(n.logPath, lines) }

// fleet is the set of nodes the bench started, all stopped by close.
type fleet struct {
	bin   string
	root  string // temp dir holding every node's data and log
	keep  bool   // keep root after close
	nodes []*benchNode
	extra []string // current extra environment (restart may change it)
}

// fleetOptions describe the nodes to start.
type fleetOptions struct {
	bin     string
	cluster bool     // 3 nodes on 127.0.0.1-3, else one on 127.0.0.1
	env     []string // extra NAME=value for every node (auth settings, ...)
	keep    bool
}

// startFleet starts the nodes and waits until every one is ready.
func startFleet(ctx context.Context, o fleetOptions) (*fleet, error) {
	root, err := os.MkdirTemp("", "starcite-bench-")
	if err != nil {
		return nil, err
	}
	f := &fleet{bin: o.bin, root: root, keep: o.keep}
	hosts := []string{"127.0.0.1"}
	if o.cluster {
		hosts = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	}
	// One HTTP, Raft and distribution port shared by every node, each on
	// its own address, as in rel/dev-cluster.sh.
	ports, err := procrun.FreePorts(hosts, 3)
	if err != nil {
		f.close()
		return nil, err
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = "starcite@" + h
	}
	common := []string{
		"PORT=" + strconv.Itoa(ports[0]),
		"STARCITE_RAFT_PORT=" + strconv.Itoa(ports[1]),
		"STARCITE_DIST_PORT=" + strconv.Itoa(ports[2]),
		"STARCITE_ARCHIVE_DIR=" + filepath.Join(root, "archive"),
	}
	if o.cluster {
		cookie := make([]byte, 16)
		rand.Read(cookie)
		common = append(common,
			"CLUSTER_NODES="+strings.Join(names, ","),
			"STARCITE_WRITE_NODE_IDS="+strings.Join(names, ","),
			"STARCITE_COOKIE="+hex.EncodeToString(cookie))
	}
	common = append(common, o.env...)
	for i, h := range hosts {
		dir := filepath.Join(root, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.close()
			return nil, err
		}
		nodeEnv := []string{
			"NODE_NAME=" + names[i],
			"STARCITE_HTTP_HOST=" + h,
			"STARCITE_RAFT_DATA_DIR=" + filepath.Join(dir, "data"),
		}
		if os.Getenv("STARCITE_PPROF_PORT") != "" && os.Getenv("STARCITE_PPROF_HOST") == "" {
			// pprof on every node's own address, at the port given.
			nodeEnv = append(nodeEnv, "STARCITE_PPROF_HOST="+h)
		}
		n := &benchNode{
			name: names[i], host: h, dir: dir,
			url:     "http://" + net.JoinHostPort(h, strconv.Itoa(ports[0])),
			logPath: filepath.Join(root, fmt.Sprintf("node%d.log", i+1)),
			env:     append(nodeEnv, common...),
		}
		f.nodes = append(f.nodes, n)
	}
	if err := f.startAll(ctx); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *fleet) urls() []string {
	out := make([]string, len(f.nodes))
	for i, n := range f.nodes {
		out[i] = n.url
	}
	return out
}

func (f *fleet) startAll(ctx context.Context) error {
	for _, n := range f.nodes {
		if err := n.start(f.bin, f.extra); err != nil {
			return err
		}
	}
	return f.waitReady(ctx, 3*time.Minute)
}

// waitReady polls GET /health/ready of every node until it answers 200.
func (f *fleet) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, n := range f.nodes {
		for {
			if n.exited() {
				return fmt.Errorf("%s exited during boot; log %s:\n%s", n.name, n.logPath, n.logTail(15))
			}
			resp, err := hc.Get(n.url + "/health/ready")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %s; log %s:\n%s", n.name, timeout, n.logPath, n.logTail(15))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopAll stops every node (in parallel: a cluster shuts down faster
// when its nodes leave together).
func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Go(func() { n.stop(60 * time.Second) })
	}
	wg.Wait()
}

// restart stops every node and starts it again with extra variables
// (replacing those of the previous restart), then waits for readiness.
func (f *fleet) restart(ctx context.Context, extra ...string) error {
	f.stopAll()
	f.extra = extra
	return f.startAll(ctx)
}

// pids returns the node processes as procs for usage sampling.
func (f *fleet) procs() []measure.Proc {
	out := make([]measure.Proc, 0, len(f.nodes))
	for _, n := range f.nodes {
		if pid := n.pid(); pid > 0 {
			out = append(out, measure.Proc{Name: n.name, PID: pid})
		}
	}
	return out
}

// close stops the nodes and removes their data unless kept.
func (f *fleet) close() {
	f.stopAll()
	if f.keep {
		fmt.Fprintf(os.Stderr, "bench: node data and logs kept in %s\n", f.root)
		return
	}
	os.RemoveAll(f.root)
}
