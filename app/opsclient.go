package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"ergo.services/ergo"
	"ergo.services/ergo/gen"

	"starcite/actors"
	"starcite/app/config"
	"starcite/dataplane"
)

// `starcite ops` and `starcite shell` join the cluster as a hidden,
// short-lived Ergo node (it dials out only and is registered nowhere), call
// the ops actor of one node, print its answer and leave: the Go counterpart
// of `bin/starcite rpc` (docs/decisions.md#d14). The types they send are
// registered by package actors, the same code as the server's.

const opsUsage = `usage: starcite ops [--node NAME] [--json] <command> [args]

commands:
  status                     diagnostic snapshot of the node (a table; JSON with --json)
  ready-nodes                ready_nodes=<n1>,<n2>,...
  node-status [node]         node_status=ready|draining|drained|suspect|lost|unknown
  drain-status [node]        drain_status=led_groups=<n>,pending_transfers=<m>
  drain [node]               mark a write node draining cluster-wide (default: the --node)
  undrain [node]             mark it ready again
  group-replicas <group_id>  group_<id>_replicas=<n1>,<n2>,<n3>
  wait-ready [timeout_ms]    until the node's consensus is ready (default 30000)
  wait-drained [timeout_ms]  until the node is drained on every node (default 30000)

--node defaults to NODE_NAME; the node is reached at the host of its name
on STARCITE_DIST_PORT (default 7200) with STARCITE_COOKIE, or the cookie
file <STARCITE_RAFT_DATA_DIR>/cookie of a single node, and over mutual TLS
with STARCITE_CLUSTER_TLS_CA, _CERT and _KEY when they are set.

exit status: 0 done, 1 the command failed or the wait timed out, 2 usage
or configuration error, 3 the node cannot be reached`

// Exit codes of ops and shell.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// opsCommands are the commands of docs/operations.md#starcite-ops; the
// shell has more.
var opsCommands = map[string]bool{"status": true, "ready-nodes": true, "node-status": true, "drain-status": true,
	"drain": true, "undrain": true, "group-replicas": true, "wait-ready": true, "wait-drained": true}

// opsCallTimeout bounds a command that does not wait.
const opsCallTimeout = 10 * time.Second

func opsMain(args []string) int {
	fs := flag.NewFlagSet("ops", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	node := fs.String("node", "", "target node (default NODE_NAME)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || fs.Arg(0) == "help" {
		if err != nil {
			fmt.Fprintf(os.Stderr, "starcite ops: %s\n\n", err)
		}
		fmt.Fprintln(os.Stderr, opsUsage)
		if err == nil && fs.NArg() > 0 {
			return exitOK
		}
		return exitUsage
	}
	cmd, cmdArgs := fs.Arg(0), fs.Args()[1:]
	if !opsCommands[cmd] {
		fmt.Fprintf(os.Stderr, "starcite ops: unknown command %q\n\n%s\n", cmd, opsUsage)
		return exitUsage
	}
	out := &opsOutput{json: *asJSON, stdout: os.Stdout, stderr: os.Stderr}
	target, err := opsTarget(*node)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starcite ops:", err)
		return exitUsage
	}
	c, err := dialOps(target)
	if err != nil {
		return out.fail(exitUnreachable, err.Error())
	}
	defer c.close()
	if cmd == "wait-ready" || cmd == "wait-drained" {
		return c.wait(cmd, cmdArgs, out)
	}
	reply, err := c.call(actors.OpsRequest{Command: cmd, Args: cmdArgs}, opsCallTimeout)
	if err != nil {
		return out.fail(exitUnreachable, err.Error())
	}
	return out.reply(reply)
}

// opsOutput prints answers as text or JSON.
type opsOutput struct {
	json           bool
	stdout, stderr io.Writer
}

func (o *opsOutput) reply(r actors.OpsReply) int {
	if r.Err != "" {
		return o.fail(exitFailed, r.Err)
	}
	if o.json && r.JSON != nil {
		var b bytes.Buffer
		if json.Indent(&b, r.JSON, "", "  ") == nil {
			fmt.Fprintln(o.stdout, b.String())
			return exitOK
		}
	}
	fmt.Fprintln(o.stdout, r.Text)
	return exitOK
}

// fail prints a failure as its one line (the messages of
// docs/operations.md#starcite-ops, as they are), or as {"error": ...} on
// stdout with --json.
func (o *opsOutput) fail(code int, msg string) int {
	if o.json {
		b, _ := json.Marshal(map[string]string{"error": msg})
		fmt.Fprintln(o.stdout, string(b))
	} else {
		fmt.Fprintln(o.stderr, msg)
	}
	return code
}

// target is the node the operator tools call and how to reach it.
type target struct {
	node   string
	cookie string
	port   int
	tls    *dataplane.PeerTLS // the cluster's mutual TLS, when configured
}

// opsTarget reads the node to call and how to reach it from the
// environment the server uses: NODE_NAME, STARCITE_DIST_PORT,
// STARCITE_COOKIE (or a single node's cookie file) and
// STARCITE_CLUSTER_TLS_* (docs/security.md#inter-node-ports).
func opsTarget(node string) (target, error) {
	e := config.NewEnv(os.LookupEnv)
	if node == "" {
		node = e.Str("NODE_NAME", config.DefaultNodeName)
	}
	if name, host, ok := strings.Cut(node, "@"); !ok || name == "" || host == "" {
		return target{}, fmt.Errorf("invalid node name %q (expected name@host)", node)
	}
	t := target{node: node, port: e.Port("STARCITE_DIST_PORT", 7200)}
	if err := e.Err(); err != nil {
		return target{}, err
	}
	t.cookie = e.Str("STARCITE_COOKIE", "")
	if t.cookie == "" {
		path := filepath.Join(e.Str("STARCITE_RAFT_DATA_DIR", "./data"), "cookie")
		b, rerr := os.ReadFile(path)
		if rerr != nil || strings.TrimSpace(string(b)) == "" {
			return target{}, fmt.Errorf("no cookie: set STARCITE_COOKIE (a single node keeps its own in %s, not readable here)", path)
		}
		t.cookie = strings.TrimSpace(string(b))
	}
	var err error
	if t.tls, err = config.ClusterTLS(e); err != nil {
		return target{}, err
	}
	return t, nil
}

// opsClient is the hidden node and the node it talks to.
type opsClient struct {
	node   gen.Node
	target gen.Atom
	addr   string
}

func dialOps(t target) (*opsClient, error) {
	var opts gen.NodeOptions
	opts.Env = map[gen.Env]any{"disable_metrics": true}
	opts.Network.Mode = gen.NetworkModeHidden
	opts.Network.Cookie = t.cookie
	// The built-in registrar would bind a host-wide port; the target is
	// reached through a static route instead, like the servers do.
	opts.Network.Registrar = staticRegistrar{}
	opts.Log.DefaultLogger.Disable = true
	opts.ShutdownTimeout = 5 * time.Second
	var rnd [4]byte
	rand.Read(rnd[:])
	host, _ := os.Hostname()
	host = regexp.MustCompile(`[^A-Za-z0-9.-]`).ReplaceAllString(host, "")
	if host == "" {
		host = "localhost"
	}
	name := gen.Atom(fmt.Sprintf("starcite-ops-%d-%s@%s", os.Getpid(), hex.EncodeToString(rnd[:]), host))
	n, err := ergo.StartNode(name, opts)
	if err != nil {
		return nil, fmt.Errorf("start the ops node: %w", err)
	}
	n.SetCTRLC(false) // Ctrl-C ends the command, not just its node
	c := &opsClient{node: n, target: gen.Atom(t.node)}
	tgtHost := c.target.Host()
	c.addr = net.JoinHostPort(tgtHost, strconv.Itoa(t.port))
	var certs gen.CertAuthManager
	if t.tls != nil {
		certs = actors.DistributionTLS(t.tls)
	}
	if err := actors.AddPeerRoute(n.Network(), t.node, tgtHost, t.port, certs); err != nil {
		n.StopForce()
		return nil, fmt.Errorf("route to %s: %w", t.node, err)
	}
	return c, nil
}

func (c *opsClient) close() { c.node.StopForce() }

// call sends one request to the ops actor and waits up to timeout
// (rounded up to whole seconds, Ergo's unit).
func (c *opsClient) call(req actors.OpsRequest, timeout time.Duration) (actors.OpsReply, error) {
	secs := int((timeout + time.Second - 1) / time.Second)
	v, err := c.node.CallWithTimeout(gen.ProcessID{Name: actors.OpsName, Node: c.target}, req, secs)
	if err != nil {
		return actors.OpsReply{}, c.explain(err, timeout)
	}
	r, ok := v.(actors.OpsReply)
	if !ok {
		return actors.OpsReply{}, fmt.Errorf("%s answered %T, not an ops reply (another version?)", string(c.target), v)
	}
	return r, nil
}

// explain turns a call error into one line an operator can act on.
func (c *opsClient) explain(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, gen.ErrProcessUnknown):
		return fmt.Errorf("%s is up but its ops actor is not running (still starting?)", string(c.target))
	case errors.Is(err, gen.ErrTimeout):
		return fmt.Errorf("%s did not answer within %s", string(c.target), timeout)
	case errors.Is(err, gen.ErrNoRoute), errors.Is(err, gen.ErrNoConnection):
		return fmt.Errorf("cannot reach %s at %s: %v (is it running, and are STARCITE_COOKIE and STARCITE_CLUSTER_TLS_* the cluster's?)",
			string(c.target), c.addr, err)
	}
	return fmt.Errorf("call %s: %w", string(c.target), err)
}

// wait runs wait-ready or wait-drained. A node that cannot be reached yet
// (just started, or restarting) is tried again every 200 ms until the
// timeout: in a rolling restart the wait follows the start at once.
func (c *opsClient) wait(cmd string, args []string, out *opsOutput) int {
	what := "local_ready"
	if cmd == "wait-drained" {
		what = "local_drained"
	}
	timeout, err := actors.ParseTimeout(args)
	if err != nil {
		return out.fail(exitFailed, err.Error())
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		left := time.Until(deadline)
		if left <= 0 {
			msg := actors.TimeoutMessage(what, timeout)
			if last != nil {
				msg += " (" + last.Error() + ")"
			}
			return out.fail(exitFailed, msg)
		}
		ms := strconv.FormatInt(max(left.Milliseconds(), 1), 10)
		reply, err := c.call(actors.OpsRequest{Command: cmd, Args: []string{ms}}, left+5*time.Second)
		switch {
		case err == nil && reply.Timeout:
			// The node's own message counts from when it got the request.
			return out.fail(exitFailed, actors.TimeoutMessage(what, timeout))
		case err == nil:
			return out.reply(reply)
		}
		last = err
		time.Sleep(min(200*time.Millisecond, time.Until(deadline)))
	}
}
