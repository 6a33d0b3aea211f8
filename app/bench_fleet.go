package main

// The server processes `starcite bench` starts (a single node or the local
// 3-node cluster), the dev JWKS it serves for jwt mode, and what it reads
// about processes from /proc.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"starcite/app/measure"
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
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *benchNode) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *benchNode) start(bin string, extra []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s: already running", n.name)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server")
	// The inherited environment first, so that STARCITE_* variables set by
	// the caller reach the nodes (as rel/dev-cluster.sh does); the node's
	// own settings win over them (exec keeps the last value of a name).
	cmd.Env = append(append(os.Environ(), n.env...), extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, and killed if the bench dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	return nil
}

// stop sends SIGTERM, waits up to grace for the exit, then SIGKILL.
func (n *benchNode) stop(grace time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
	n.mu.Lock()
	n.cmd, n.done = nil, nil
	n.mu.Unlock()
}

func (n *benchNode) exited() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the node's log, for error reports.
func (n *benchNode) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

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
	ports, err := freePortsOn(hosts, 3)
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

// freePortsOn returns count TCP ports that were free on every host a
// moment ago (the nodes of the local cluster share port numbers).
func freePortsOn(hosts []string, count int) ([]int, error) {
	var ports []int
	seen := map[int]bool{}
	for attempt := 0; len(ports) < count; attempt++ {
		if attempt > 200 {
			return nil, fmt.Errorf("no free port common to %s", strings.Join(hosts, ", "))
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return nil, fmt.Errorf("free port on %s: %w", hosts[0], err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := !seen[port]
		var others []net.Listener
		for _, h := range hosts[1:] {
			if !ok {
				break
			}
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			others = append(others, l)
		}
		for _, l := range others {
			l.Close()
		}
		ln.Close()
		if ok {
			seen[port] = true
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// devJWT is the dev identity provider of jwt-mode runs: an RSA key, its
// JWKS served over HTTP on loopback, and tokens signed with it.
type devJWT struct {
	key      *rsa.PrivateKey
	kid      string
	issuer   string
	audience string
	srv      *http.Server
	url      string
}

func startDevJWT() (*devJWT, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	j := &devJWT{key: key, kid: "bench-1", issuer: "https://bench.starcite.local", audience: "starcite-api"}
	b64 := base64.RawURLEncoding.EncodeToString
	doc, err := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": j.kid,
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dev JWKS listener: %w", err)
	}
	j.url = "http://" + ln.Addr().String() + "/.well-known/jwks.json"
	j.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})}
	go j.srv.Serve(ln)
	return j, nil
}

// nodeEnv is what a node needs to trust the dev JWKS.
func (j *devJWT) nodeEnv() []string {
	return []string{
		"STARCITE_AUTH_MODE=jwt",
		"STARCITE_AUTH_JWT_ISSUER=" + j.issuer,
		"STARCITE_AUTH_JWT_AUDIENCE=" + j.audience,
		"STARCITE_AUTH_JWKS_URL=" + j.url,
	}
}

// token mints an RS256 token for tenant "bench" with every scope, valid
// for ttl.
func (j *devJWT) token(ttl time.Duration) (string, error) {
	now := time.Now().Unix()
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": j.kid})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": j.issuer, "aud": j.audience, "iat": now, "exp": now + int64(ttl/time.Second),
		"tenant_id": "bench", "sub": "service:bench",
		"scope": "session:create session:read session:append",
	})
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(header) + "." + b64(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, j.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

func (j *devJWT) close() {
	if j != nil && j.srv != nil {
		j.srv.Close()
	}
}
