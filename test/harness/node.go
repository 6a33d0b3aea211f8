// Package harness runs real starcite processes for the black-box tests
// under test/: it builds (or finds) the binary, starts nodes with their
// own data directories and ports (processes and ports of package
// procrun, shared with starcite bench), waits for readiness by polling
// the node, stops, kills and restarts them, and talks to them over HTTP.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"starcite/app/procrun"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the starcite binary under test: $STARCITE_BIN when set
// (make test builds it once), else one built from this checkout.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STARCITE_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "starcite-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "starcite")
		cmd := exec.Command("go", "build", "-o", buildPath, "./app")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// BinaryAt returns a starcite binary built from revision rev of this
// repository (for tests that start a node of an earlier version):
// $STARCITE_BIN_<first 7 characters of rev> when set, else the revision's
// tree is exported with git archive and built in a temporary directory.
// The test is skipped when the checkout has no git history with rev.
func BinaryAt(t testing.TB, rev string) string {
	t.Helper()
	if p := os.Getenv("STARCITE_BIN_" + rev[:7]); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		t.Skipf("revision %s is not in this checkout's history (%v %s): cannot build the earlier version", rev, err, out)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "src.tar")
	if out, err := exec.Command("git", "-C", root, "archive", "--format=tar", "-o", tarball, rev).CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v %s", rev, err, out)
	}
	if out, err := exec.Command("tar", "-x", "-f", tarball, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v %s", rev, err, out)
	}
	bin := filepath.Join(dir, "starcite")
	build := exec.Command("go", "build", "-o", bin, "./app")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", rev, err, out)
	}
	return bin
}

// FreePort returns a TCP port that was free on host a moment ago.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	port, err := procrun.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Node is one starcite process.
type Node struct {
	t       testing.TB
	Name    string // NODE_NAME
	Host    string // loopback address the node binds
	Port    int    // HTTP port
	OpsPort int    // the ops listener's port (health, metrics, pprof); 0 = none
	Dir     string // STARCITE_RAFT_DATA_DIR
	Env     map[string]string
	LogPath string
	Netns   string // network namespace the process runs in ("" = the test's)
	// Bin is the binary Start runs ("" = Binary). Set it between a Stop
	// and a Start to run another version on the same data directory.
	Bin string

	mu   sync.Mutex
	proc *procrun.Process // nil when not running
}

// Options configure StartNode. Zero values pick single-node test defaults.
type Options struct {
	Netns string            // run in this network namespace (fixed ports 4000/7100/7200 there)
	Host  string            // default 127.0.0.1
	Name  string            // default starcite@<Host>
	Dir   string            // default a fresh temp dir
	Env   map[string]string // extra or overriding variables
	// NoOps runs the node without an ops listener: /health/* are then on
	// the API port and /metrics nowhere.
	NoOps bool
}

// NewNode prepares a node without starting it.
func NewNode(t testing.TB, o Options) *Node {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Name == "" {
		o.Name = "starcite@" + o.Host
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	n := &Node{t: t, Name: o.Name, Host: o.Host, Dir: o.Dir, Netns: o.Netns, LogPath: filepath.Join(o.Dir, "node.log")}
	raftPort, distPort, opsPort := 7100, 7200, 7300
	if o.Netns == "" {
		// Shared with every other test process: pick free ports.
		n.Port, raftPort, distPort = FreePort(t, o.Host), FreePort(t, o.Host), FreePort(t, o.Host)
		opsPort = FreePort(t, o.Host)
	} else {
		n.Port = 4000 // a namespace has ports of its own
	}
	if !o.NoOps {
		n.OpsPort = opsPort
	}
	n.Env = map[string]string{
		"NODE_NAME":              o.Name,
		"PORT":                   strconv.Itoa(n.Port),
		"STARCITE_HTTP_HOST":     o.Host,
		"STARCITE_RAFT_PORT":     strconv.Itoa(raftPort),
		"STARCITE_DIST_PORT":     strconv.Itoa(distPort),
		"STARCITE_RAFT_DATA_DIR": filepath.Join(o.Dir, "data"),
		"STARCITE_AUTH_MODE":     "none",
		"STARCITE_NUM_GROUPS":    "8",
		"STARCITE_RAFT_RTT_MS":   "50",
		"STARCITE_LOG_LEVEL":     "info",
	}
	if n.OpsPort != 0 {
		n.Env["STARCITE_OPS_PORT"] = strconv.Itoa(n.OpsPort)
	}
	for k, v := range o.Env {
		n.Env[k] = v
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			n.DumpLog(60)
		}
	})
	return n
}

// StartNode starts a node and waits until it is ready.
func StartNode(t testing.TB, o Options) *Node {
	t.Helper()
	n := NewNode(t, o)
	n.Start()
	n.WaitReady(60 * time.Second)
	return n
}

// URL is the node's HTTP base URL.
func (n *Node) URL() string { return "http://" + net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

// Start launches the process (appending to the node's log file).
func (n *Node) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.t.Fatalf("%s already running", n.Name)
	}
	bin := n.Bin
	if bin == "" {
		bin = Binary(n.t)
	}
	spec := procrun.Spec{Path: bin, Args: []string{"server"}, LogPath: n.LogPath,
		Env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}}
	if n.Netns != "" {
		// ip netns exec execs the binary: the PID is the server's.
		spec.Path, spec.Args = "ip", append([]string{"netns", "exec", n.Netns, spec.Path}, spec.Args...)
	}
	for k, v := range n.Env {
		spec.Env = append(spec.Env, k+"="+v)
	}
	p, err := procrun.Start(spec)
	if err != nil {
		n.t.Fatalf("start %s: %v", n.Name, err)
	}
	n.proc = p
}

// Running reports whether the process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.Exited()
}

// Pid is the server's process id (0 when not running). Under a network
// namespace `ip netns exec` execs the binary, so it is the server's too.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.Pid()
}

// Signal sends sig to the process (SIGSTOP/SIGCONT for pauses).
func (n *Node) Signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.proc.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() { n.stop(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits for a clean exit; it fails the test when
// the node does not exit in time or exits with an error.
func (n *Node) Stop() {
	n.t.Helper()
	if err := n.stop(syscall.SIGTERM, 60*time.Second); err != nil {
		n.t.Fatalf("stop %s: %v", n.Name, err)
	}
}

func (n *Node) stop(sig syscall.Signal, wait time.Duration) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	err := p.Stop(sig, wait)
	n.mu.Lock()
	n.proc = nil
	n.mu.Unlock()
	return err
}

// Restart kills the node (if running), starts it again on the same data
// and waits for readiness.
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	n.Start()
	n.WaitReady(60 * time.Second)
}

// WaitReady polls /health/ready until it answers 200.
func (n *Node) WaitReady(timeout time.Duration) {
	n.t.Helper()
	n.WaitFor(timeout, "ready", func() bool {
		st, _, err := n.Probe("/health/ready")
		return err == nil && st == 200
	})
}

// WaitFor polls cond every 20 ms until it holds; it fails the test after
// timeout or when the process died meanwhile.
func (n *Node) WaitFor(timeout time.Duration, what string, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if !n.Running() {
			n.t.Fatalf("%s exited while waiting for %s", n.Name, what)
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not %s after %s", n.Name, what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns the node's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// DumpLog prints the last lines of the node's log to the test log.
func (n *Node) DumpLog(lines int) {
	n.t.Logf("--- last %d log lines of %s ---\n%s", lines, n.Name, procrun.LogTail(n.LogPath, lines))
}

// RunOnce runs the binary with extra environment and arguments, returning
// its exit code and combined output (for configuration errors and CLIs).
func RunOnce(t testing.TB, env map[string]string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code, err := Exec(Binary(t), env, nil, &out, &out, timeout, args...)
	if err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	return code, out.String()
}

// Exec runs the binary at bin (Binary's) with extra environment, standard
// input (nil: none) and arguments, writing its output to stdout and
// stderr, and returns its exit code. It fails no test, so any goroutine
// may call it.
func Exec(bin string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer, timeout time.Duration, args ...string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("starcite %v did not finish within %s", args, timeout)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// CLIEnv is what `starcite ops` and `starcite shell` need to reach node n
// (its distribution port, cookie and TLS files); pass --node n.Name.
func (n *Node) CLIEnv() map[string]string {
	env := map[string]string{"STARCITE_DIST_PORT": n.Env["STARCITE_DIST_PORT"]}
	for _, k := range append([]string{"STARCITE_COOKIE"}, TLSEnv...) {
		if v, ok := n.Env[k]; ok {
			env[k] = v
		}
	}
	return env
}
