// Package bench is `starcite bench`: it measures what users feel —
// append latency (closed and open loop), end-to-end tail latency and
// replay rate — against nodes it starts itself (a single node, or with
// --cluster the local 3-node cluster on 127.0.0.1-3) or against running
// nodes (--nodes). It drives nodes over HTTP and WebSocket only, starts
// them with package procrun, reads their resource use with package
// measure, and signs jwt-mode tokens with package devjwt.
// README.md, "Performance", describes the workloads and their figures.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"starcite/app/devjwt"
	"starcite/app/measure"
)

const benchUsage = `usage: starcite bench [flags]

Runs the benchmark workloads and prints a table per workload. Without
--nodes it starts its own server processes from this binary (one node, or
with --cluster three on 127.0.0.1-3) in temporary directories and stops
them afterwards; the closed-loop workload runs once per --auth mode (jwt
mode uses a dev JWKS the bench serves on loopback), the other workloads in
the first mode. With --nodes it targets running nodes.

flags:`

// benchOptions are the flags of `starcite bench`.
type benchOptions struct {
	nodes     []string
	cluster   bool
	jsonPath  string
	workloads []string
	auth      []string
	token     string
	pids      []int
	bin       string
	keep      bool
	label     string

	duration, warmup time.Duration
	producers        []int
	sessions         int
	payload          int
	rates            []float64
	openConns        int
	subscribers      []int
	tailRate         float64
	replayEvents     int
	replayBatches    []int
	fillProducers    int
	idle             time.Duration
}

var benchWorkloads = []string{"closed", "open", "tail", "replay"}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var nodes, workloads, auth, pids, producers, rates, subs, batches string
	fs.StringVar(&nodes, "nodes", "", "comma-separated base URLs of running nodes (http://host:port); default: start nodes")
	fs.BoolVar(&o.cluster, "cluster", false, "start the local 3-node cluster (127.0.0.1-3) instead of a single node")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to this file (default bench-results/starcite-<target>-<time>.json)")
	fs.StringVar(&workloads, "workloads", strings.Join(benchWorkloads, ","), "workloads to run: closed, open, tail, replay")
	fs.StringVar(&auth, "auth", "none,jwt", "auth modes: none and/or jwt (with --nodes: the one mode of the targets)")
	fs.StringVar(&o.token, "token", "", "with --nodes in jwt mode: the bearer token to send (scopes session:create, session:read, session:append)")
	fs.StringVar(&pids, "pids", "", "with --nodes: comma-separated server pids whose RSS and CPU to report")
	fs.StringVar(&o.bin, "server-bin", "", "starcite binary for the nodes the bench starts (default: this binary)")
	fs.BoolVar(&o.keep, "keep", false, "keep the started nodes' data and logs")
	fs.StringVar(&o.label, "label", "", "free-form label stored in the JSON")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each level")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each level")
	fs.StringVar(&producers, "producers", "1,16,64", "closed loop: concurrent producers per level")
	fs.IntVar(&o.sessions, "sessions", 256, "closed and open loop: sessions the producers append to")
	fs.IntVar(&o.payload, "payload", 200, "bytes of each event's payload object")
	fs.StringVar(&rates, "rates", "1000,4000", "open loop: offered appends per second per level")
	fs.IntVar(&o.openConns, "open-conns", 128, "open loop: most requests in flight (connections)")
	fs.StringVar(&subs, "subscribers", "1,1000", "tail: subscribers per level")
	fs.Float64Var(&o.tailRate, "tail-rate", 100, "tail: appends per second")
	fs.IntVar(&o.replayEvents, "replay-events", 100_000, "replay: events in the replayed session")
	fs.StringVar(&batches, "replay-batch", "1,1000", "replay: tail batch_size per run")
	fs.IntVar(&o.fillProducers, "fill-producers", 64, "replay: producers that fill the session")
	fs.DurationVar(&o.idle, "idle", 10*time.Second, "measure the servers' CPU and RSS while idle for this long before the workloads (0: skip)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	o.nodes = split(nodes)
	for i, n := range o.nodes {
		o.nodes[i] = strings.TrimRight(n, "/")
		if !strings.HasPrefix(n, "http://") {
			return o, fmt.Errorf("--nodes: %q is not an http:// URL", n)
		}
	}
	o.workloads = split(workloads)
	for _, w := range o.workloads {
		if !slices.Contains(benchWorkloads, w) {
			return o, fmt.Errorf("--workloads: unknown workload %q (expected %s)", w, strings.Join(benchWorkloads, ", "))
		}
	}
	o.auth = split(auth)
	if len(o.auth) == 0 {
		return o, errors.New("--auth: at least one mode")
	}
	for _, a := range o.auth {
		if a != "none" && a != "jwt" {
			return o, fmt.Errorf("--auth: unknown mode %q (expected none or jwt)", a)
		}
	}
	if len(o.nodes) > 0 {
		if len(o.auth) > 1 {
			return o, errors.New("--auth: give the one mode of the --nodes targets")
		}
		if o.auth[0] == "jwt" && o.token == "" {
			return o, errors.New("--token: required with --nodes in jwt mode")
		}
		if o.cluster {
			return o, errors.New("--cluster: only without --nodes")
		}
	}
	ints := func(name, s string, lo int) ([]int, error) {
		var out []int
		for _, p := range split(s) {
			v, err := strconv.Atoi(p)
			if err != nil || v < lo {
				return nil, fmt.Errorf("%s: %q is not an integer >= %d", name, p, lo)
			}
			out = append(out, v)
		}
		return out, nil
	}
	if o.pids, err = ints("--pids", pids, 1); err != nil {
		return o, err
	}
	if o.producers, err = ints("--producers", producers, 1); err != nil {
		return o, err
	}
	if o.subscribers, err = ints("--subscribers", subs, 1); err != nil {
		return o, err
	}
	if o.replayBatches, err = ints("--replay-batch", batches, 1); err != nil {
		return o, err
	}
	for _, b := range o.replayBatches {
		if b > 1000 {
			return o, fmt.Errorf("--replay-batch: %d exceeds the server's limit of 1000", b)
		}
	}
	for _, p := range split(rates) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 {
			return o, fmt.Errorf("--rates: %q is not a positive number", p)
		}
		o.rates = append(o.rates, v)
	}
	switch {
	case o.duration <= 0:
		return o, errors.New("--duration: must be positive")
	case o.warmup < 0:
		return o, errors.New("--warmup: must not be negative")
	case o.sessions < 1:
		return o, errors.New("--sessions: must be >= 1")
	case o.payload < 0:
		return o, errors.New("--payload: must not be negative")
	case o.openConns < 1:
		return o, errors.New("--open-conns: must be >= 1")
	case o.tailRate <= 0:
		return o, errors.New("--tail-rate: must be positive")
	case o.replayEvents < 1:
		return o, errors.New("--replay-events: must be >= 1")
	case o.idle < 0:
		return o, errors.New("--idle: must not be negative")
	}
	return o, nil
}

// benchReport is the JSON document of a run.
type benchReport struct {
	Tool      string        `json:"tool"`
	Version   string        `json:"version"`
	Label     string        `json:"label,omitempty"`
	StartedAt time.Time     `json:"started_at"`
	Target    string        `json:"target"` // single, cluster3 or nodes
	Nodes     []string      `json:"nodes,omitempty"`
	Machine   benchMachine  `json:"machine"`
	Settings  benchSettings `json:"settings"`
	Results   []benchResult `json:"results"`
	Failures  []string      `json:"failures,omitempty"`
}

type benchSettings struct {
	DurationSec   float64   `json:"duration_s"`
	WarmupSec     float64   `json:"warmup_s"`
	Sessions      int       `json:"sessions"`
	PayloadBytes  int       `json:"payload_bytes"`
	Producers     []int     `json:"producers"`
	OpenRates     []float64 `json:"open_rates"`
	OpenConns     int       `json:"open_conns"`
	Subscribers   []int     `json:"subscribers"`
	TailRate      float64   `json:"tail_rate"`
	ReplayEvents  int       `json:"replay_events"`
	ReplayBatches []int     `json:"replay_batches"`
	ServerEnv     []string  `json:"server_env,omitempty"` // STARCITE_* passed to started nodes
}

// benchMachine describes where the figures come from.
type benchMachine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemTotal  string `json:"mem_total,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"load_avg_at_start,omitempty"`
}

func describeMachine() benchMachine {
	m := benchMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(l, "MemTotal:") {
			m.MemTotal = strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:"))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAvg = loadAvg()
	return m
}

// loadAvg is the 1, 5 and 15 minute load average ("" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// Main runs `starcite bench` with its arguments and returns the exit
// code; version is the binary's, recorded in the results.
func Main(args []string, version string) int {
	o, err := parseBenchFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starcite bench:", err)
		return 2
	}
	if o.bin == "" {
		if o.bin, err = os.Executable(); err != nil {
			fmt.Fprintln(os.Stderr, "starcite bench: cannot find this binary:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()

	out := os.Stdout
	rep := &benchReport{Tool: "starcite bench", Version: version, Label: o.label, StartedAt: time.Now().UTC(),
		Machine: describeMachine(), Settings: benchSettings{
			DurationSec: o.duration.Seconds(), WarmupSec: o.warmup.Seconds(), Sessions: o.sessions,
			PayloadBytes: o.payload, Producers: o.producers, OpenRates: o.rates, OpenConns: o.openConns,
			Subscribers: o.subscribers, TailRate: o.tailRate, ReplayEvents: o.replayEvents, ReplayBatches: o.replayBatches,
		}}
	switch {
	case len(o.nodes) > 0:
		rep.Target, rep.Nodes = "nodes", o.nodes
	case o.cluster:
		rep.Target = "cluster3"
	default:
		rep.Target = "single"
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STARCITE_") && len(o.nodes) == 0 {
			rep.Settings.ServerEnv = append(rep.Settings.ServerEnv, kv)
		}
	}
	if o.jsonPath == "" {
		o.jsonPath = filepath.Join("bench-results", fmt.Sprintf("starcite-%s-%s.json", rep.Target, time.Now().Format("20060102-150405")))
	}
	m := rep.Machine
	fmt.Fprintf(out, "starcite bench %s: target %s; %d CPUs (%s), %s, load %s\n", version, describeTarget(o), m.CPUs, m.CPUModel, m.MemTotal, m.LoadAvg)
	fmt.Fprintln(out, "figures on a shared machine are noisy: compare runs on the same box, several times")

	if len(o.nodes) > 0 {
		err = benchTargets(ctx, o, rep, out)
	} else {
		err = benchStarted(ctx, o, rep, out)
	}
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		fmt.Fprintln(os.Stderr, "starcite bench:", err)
	}
	if werr := writeBenchJSON(o.jsonPath, rep); werr != nil {
		fmt.Fprintln(os.Stderr, "starcite bench: writing results:", werr)
		return 1
	}
	fmt.Fprintf(out, "\nresults: %s (load average now %s)\n", o.jsonPath, loadAvg())
	if err != nil {
		return 1
	}
	return 0
}

// add records a finished row.
func (rep *benchReport) add(res benchResult) {
	res.LoadAvg = loadAvg()
	rep.Results = append(rep.Results, res)
}

func describeTarget(o benchOptions) string {
	switch {
	case len(o.nodes) > 0:
		return strings.Join(o.nodes, ", ")
	case o.cluster:
		return "a 3-node cluster started on 127.0.0.1-3"
	default:
		return "a single node started on 127.0.0.1"
	}
}

func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "bench-" + hex.EncodeToString(b)
}

func (o benchOptions) wants(w string) bool { return slices.Contains(o.workloads, w) }

// maxConns is the keep-alive connections per node the client may open.
func (o benchOptions) maxConns() int {
	m := max(o.openConns, o.fillProducers, 16)
	for _, p := range o.producers {
		m = max(m, p)
	}
	return m
}

// benchTargets runs the workloads against --nodes.
func benchTargets(ctx context.Context, o benchOptions, rep *benchReport, out io.Writer) error {
	client, err := newBenchClient(o.nodes, o.token, o.maxConns())
	if err != nil {
		return err
	}
	defer client.close()
	var procs []measure.Proc
	for _, pid := range o.pids {
		procs = append(procs, measure.Proc{Name: "pid " + strconv.Itoa(pid), PID: pid})
	}
	r := &benchRun{opts: o, out: out, client: client, auth: o.auth[0], runID: newRunID(),
		procs:  func() []measure.Proc { return procs },
		report: rep.add}
	return r.runWorkloads(ctx, o.workloads)
}

// benchStarted starts nodes once per auth mode and runs the workloads.
func benchStarted(ctx context.Context, o benchOptions, rep *benchReport, out io.Writer) error {
	var jwt *devjwt.Issuer
	if slices.Contains(o.auth, "jwt") {
		var err error
		if jwt, err = devjwt.StartIssuer(); err != nil {
			return err
		}
		defer jwt.Close()
	}
	for i, mode := range o.auth {
		workloads := o.workloads
		if i > 0 {
			// Only the closed loop is compared across auth modes.
			workloads = nil
			if o.wants("closed") {
				workloads = []string{"closed"}
			}
		}
		if len(workloads) == 0 {
			continue
		}
		if err := benchOneMode(ctx, o, rep, out, mode, jwt, workloads); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func benchOneMode(ctx context.Context, o benchOptions, rep *benchReport, out io.Writer, mode string, jwt *devjwt.Issuer, workloads []string) error {
	env := []string{"STARCITE_AUTH_MODE=none"}
	token := ""
	if mode == "jwt" {
		env = jwt.NodeEnv()
		token = jwt.Token("bench", "service:bench", "session:create session:read session:append", 24*time.Hour)
	}
	what := "a single node"
	if o.cluster {
		what = "a 3-node cluster"
	}
	fmt.Fprintf(out, "\nstarting %s (auth %s)...\n", what, mode)
	t0 := time.Now()
	fl, err := startFleet(ctx, fleetOptions{bin: o.bin, cluster: o.cluster, env: env, keep: o.keep})
	if err != nil {
		return fmt.Errorf("starting %s: %w", what, err)
	}
	defer fl.close()
	fmt.Fprintf(out, "ready in %.1fs: %s\n", time.Since(t0).Seconds(), strings.Join(fl.urls(), " "))
	client, err := newBenchClient(fl.urls(), token, o.maxConns())
	if err != nil {
		return err
	}
	defer client.close()
	r := &benchRun{opts: o, out: out, client: client, auth: mode, runID: newRunID(), fleet: fl,
		procs:  fl.procs,
		report: rep.add}
	return r.runWorkloads(ctx, workloads)
}

// runWorkloads runs the selected workloads in their fixed order; replay
// goes last because it restarts the nodes.
func (r *benchRun) runWorkloads(ctx context.Context, workloads []string) error {
	has := func(w string) bool { return slices.Contains(workloads, w) }
	if r.opts.idle > 0 && len(r.procs()) > 0 {
		r.idleUsage(ctx)
	}
	if has("closed") || has("open") {
		sessions := r.sessionIDs(r.opts.sessions)
		if err := r.client.createSessions(ctx, sessions); err != nil {
			return err
		}
		if has("closed") {
			r.closedLoop(ctx, sessions)
		}
		if has("open") && ctx.Err() == nil {
			r.openLoop(ctx, sessions)
		}
	}
	if has("tail") && ctx.Err() == nil {
		r.tailLatency(ctx)
	}
	if has("replay") && ctx.Err() == nil {
		if err := r.replay(ctx); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func writeBenchJSON(path string, rep *benchReport) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// raiseFileLimit lifts the soft open-files limit to the hard one: 1,000
// tail subscribers need as many sockets, in the bench and in the nodes
// (which inherit the limit).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
