// Command natsbench is the NATS JetStream side of `make bench-compare`:
// it starts a local 3-node JetStream cluster (fsync on every write,
// `sync_interval: always`), creates a stream over 256 subjects with 3
// replicas, runs the closed-loop workload of `starcite bench` against it
// (publishers each waiting for the ack of one 200-byte message before
// sending the next) and, given the JSON of a Starcite run, prints the
// ratio of the two. It is a separate program so that the starcite binary
// never links the NATS client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"starcite/app/measure"
	"starcite/app/procrun"
)

type options struct {
	server    string
	duration  time.Duration
	warmup    time.Duration
	producers []int
	subjects  int
	payload   int
	jsonPath  string
	starcite  string
	keep      bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	var producers string
	flag.StringVar(&o.server, "nats-server", "", "nats-server binary (default: from PATH, else $(go env GOPATH)/bin)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each level")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each level")
	flag.StringVar(&producers, "producers", "1,16,64", "concurrent publishers per level")
	flag.IntVar(&o.subjects, "subjects", 256, "subjects bench.<n> the publishers spread over")
	flag.IntVar(&o.payload, "payload", 200, "message size in bytes")
	flag.StringVar(&o.jsonPath, "json", "", "write the results as JSON to this file")
	flag.StringVar(&o.starcite, "starcite", "", "JSON of a `starcite bench` run to compare with")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' data and logs")
	flag.Parse()
	for _, p := range strings.Split(producers, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "natsbench: --producers: %q is not a positive integer\n", p)
			return 2
		}
		o.producers = append(o.producers, v)
	}
	if o.subjects < 1 || o.duration <= 0 || o.warmup < 0 || o.payload < 0 {
		fmt.Fprintln(os.Stderr, "natsbench: --subjects, --duration must be positive; --warmup, --payload not negative")
		return 2
	}
	if o.server == "" {
		o.server = findServer()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := report{Tool: "natsbench", StartedAt: time.Now().UTC(), Target: "nats-jetstream-r3",
		Settings: map[string]any{"duration_s": o.duration.Seconds(), "warmup_s": o.warmup.Seconds(),
			"subjects": o.subjects, "payload_bytes": o.payload, "replicas": 3, "sync_interval": "always"}}
	err := bench(ctx, o, &rep)
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		fmt.Fprintln(os.Stderr, "natsbench:", err)
	}
	if o.jsonPath != "" {
		if werr := writeJSON(o.jsonPath, rep); werr != nil {
			fmt.Fprintln(os.Stderr, "natsbench: writing results:", werr)
			return 1
		}
		fmt.Printf("\nresults: %s\n", o.jsonPath)
	}
	if err != nil {
		return 1
	}
	if o.starcite != "" {
		if err := compare(os.Stdout, o.starcite, rep); err != nil {
			fmt.Fprintln(os.Stderr, "natsbench: compare:", err)
			return 1
		}
	}
	return 0
}

func findServer() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		return filepath.Join(strings.TrimSpace(string(out)), "bin", "nats-server")
	}
	return "nats-server"
}

// ---- results (the fields of `starcite bench` JSON that compare reads) ----

type result struct {
	Workload    string           `json:"workload"`
	Auth        string           `json:"auth"`
	Producers   int              `json:"producers,omitempty"`
	DurationSec float64          `json:"duration_s"`
	Ops         int64            `json:"ops"`
	Throughput  float64          `json:"throughput_per_s"`
	Latency     measure.Latency  `json:"latency_ms"`
	Errors      map[string]int64 `json:"errors"`
	ErrorTotal  int64            `json:"error_total"`
	Usage       measure.Usage    `json:"usage"`
}

type report struct {
	Tool      string         `json:"tool"`
	StartedAt time.Time      `json:"started_at"`
	Target    string         `json:"target"`
	Settings  map[string]any `json:"settings"`
	Results   []result       `json:"results"`
	Failures  []string       `json:"failures,omitempty"`
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ---- the cluster ----

type server struct {
	name string
	url  string
	proc *procrun.Process
}

// startCluster starts three JetStream servers on loopback with fsync on
// every write; stop stops them.
func startCluster(o options, dir string) (servers []*server, stop func(), err error) {
	stop = func() {
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Go(func() { s.proc.Stop(syscall.SIGTERM, 15*time.Second) })
		}
		wg.Wait()
	}
	ports, err := procrun.FreePorts([]string{"127.0.0.1"}, 6)
	if err != nil {
		return nil, stop, err
	}
	client, route := ports[:3], ports[3:]
	routes := make([]string, 3)
	for i := range 3 {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", route[i])
	}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: bench
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, client[i], filepath.Join(dir, name), route[i], strings.Join(routes, ", "))
		confPath := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return servers, stop, err
		}
		p, err := procrun.Start(procrun.Spec{Path: o.server, Args: []string{"-c", confPath}, Env: os.Environ(),
			LogPath: filepath.Join(dir, name+".log"), DieWithParent: true})
		if err != nil {
			return servers, stop, fmt.Errorf("start %s (%s): %w", name, o.server, err)
		}
		servers = append(servers, &server{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", client[i]), proc: p})
	}
	return servers, stop, nil
}

// setupStream creates the stream once the cluster has a meta leader and
// waits until a publish is acknowledged.
func setupStream(ctx context.Context, o options, servers []*server) error {
	deadline := time.Now().Add(90 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, s := range servers {
			select {
			case <-s.proc.Done():
				return fmt.Errorf("nats-server %s exited during boot", s.name)
			default:
			}
		}
		lastErr = func() error {
			nc, err := nats.Connect(servers[0].url, nats.Timeout(2*time.Second))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
				Name: "BENCH", Subjects: []string{"bench.*"}, Replicas: 3, Storage: jetstream.FileStorage,
			}); err != nil {
				return err
			}
			_, err = js.Publish(cctx, "bench.0", make([]byte, o.payload))
			return err
		}()
		if lastErr == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("stream not ready: %v", lastErr)
}

func bench(ctx context.Context, o options, rep *report) error {
	dir, err := os.MkdirTemp("", "natsbench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(os.Stderr, "natsbench: data and logs kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("\nstarting a 3-node NATS JetStream cluster (%s, R3, sync_interval always)...\n", o.server)
	t0 := time.Now()
	servers, stop, err := startCluster(o, dir)
	defer stop()
	if err != nil {
		return err
	}
	if err := setupStream(ctx, o, servers); err != nil {
		return err
	}
	fmt.Printf("ready in %.1fs\n", time.Since(t0).Seconds())

	fmt.Printf("\npublish latency, closed loop (NATS JetStream R3; %d subjects, %d-byte messages, %s per level after %s warm-up)\n",
		o.subjects, o.payload, o.duration, o.warmup)
	fmt.Printf("%-10s  %10s  %8s  %8s  %8s  %8s  %8s  %10s  %8s  %9s\n",
		"publishers", "publish/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "srv RSS MB", "srv CPU", "bench CPU")
	for _, p := range o.producers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := level(ctx, o, servers, p)
		if err != nil {
			return err
		}
		var rss int64
		for _, n := range r.Usage.Nodes {
			rss = max(rss, n.PeakRSSBytes)
		}
		fmt.Printf("%-10d  %10.0f  %8.3f  %8.3f  %8.3f  %8.2f  %8d  %10.0f  %8.2f  %9.2f\n", p, r.Throughput,
			r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.ErrorTotal,
			float64(rss)/(1<<20), r.Usage.ServerCPUCores, r.Usage.BenchCPUCores)
		for k, v := range r.Errors {
			fmt.Printf("  errors (%d publishers): %s ×%d\n", p, k, v)
		}
		rep.Results = append(rep.Results, r)
	}
	return nil
}

// level runs one closed-loop level: every publisher has its own
// connection (spread over the servers) and its own subjects (p, p+n,
// ...), and waits for each ack before publishing again.
func level(ctx context.Context, o options, servers []*server, publishers int) (result, error) {
	res := result{Workload: "nats_closed", Auth: "none", Producers: publishers}
	conns := make([]*nats.Conn, publishers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for p := range conns {
		nc, err := nats.Connect(servers[p%len(servers)].url, nats.Timeout(5*time.Second))
		if err != nil {
			return res, fmt.Errorf("connect %s: %w", servers[p%len(servers)].url, err)
		}
		conns[p] = nc
	}
	start := time.Now()
	from, to := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	var mu sync.Mutex
	errs := map[string]int64{}
	samples := make([][]time.Duration, publishers)
	probe := make(chan *measure.Probe, 1)
	go func() { time.Sleep(time.Until(from)); probe <- measure.Start(procs(servers)) }()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			js, err := jetstream.New(conns[p])
			if err != nil {
				mu.Lock()
				errs["jetstream: "+err.Error()]++
				mu.Unlock()
				return
			}
			var subjects []string
			if p >= o.subjects {
				subjects = []string{fmt.Sprintf("bench.%d", p%o.subjects)}
			}
			for s := p; s < o.subjects; s += publishers {
				subjects = append(subjects, fmt.Sprintf("bench.%d", s))
			}
			msg := make([]byte, o.payload)
			for i := range msg {
				msg[i] = 'x'
			}
			var local []time.Duration
			for k := 0; ctx.Err() == nil; k++ {
				t0 := time.Now()
				if !t0.Before(to) {
					break
				}
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := js.Publish(pctx, subjects[k%len(subjects)], msg)
				cancel()
				lat := time.Since(t0)
				if t0.Before(from) {
					continue
				}
				if err != nil {
					mu.Lock()
					errs[errorClass(err)]++
					mu.Unlock()
					continue
				}
				local = append(local, lat)
			}
			samples[p] = local
		})
	}
	wg.Wait()
	u := (<-probe).Finish()
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	res.DurationSec = o.duration.Seconds()
	res.Ops = int64(len(all))
	res.Throughput = float64(res.Ops) / o.duration.Seconds()
	res.Latency = measure.Summarize(all)
	res.Errors = errs
	for _, v := range errs {
		res.ErrorTotal += v
	}
	res.Usage = u
	return res, nil
}

func errorClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return "no responders"
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("api %d", apiErr.ErrorCode)
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60] + "…"
	}
	return msg
}

// procs are the servers as package measure names them.
func procs(servers []*server) []measure.Proc {
	out := make([]measure.Proc, len(servers))
	for i, s := range servers {
		out[i] = measure.Proc{Name: s.name, PID: s.proc.Pid()}
	}
	return out
}

// ---- comparison ----

// compare prints Starcite's closed-loop rows next to these NATS rows:
// ratio = Starcite / NATS, so a throughput ratio above 1 and a p99 ratio
// below 1 favour Starcite.
func compare(w io.Writer, starcitePath string, nats report) error {
	b, err := os.ReadFile(starcitePath)
	if err != nil {
		return err
	}
	var sc struct {
		Target  string   `json:"target"`
		Results []result `json:"results"`
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		return fmt.Errorf("%s: %w", starcitePath, err)
	}
	byProducers := map[int]result{}
	for _, r := range nats.Results {
		byProducers[r.Producers] = r
	}
	fmt.Fprintf(w, "\nStarcite (%s) vs NATS JetStream R3, closed loop, same machine, one run after the other\n", sc.Target)
	fmt.Fprintf(w, "%-5s  %9s  %11s  %11s  %9s  %11s  %11s  %9s\n",
		"auth", "producers", "starcite/s", "nats/s", "ops ratio", "starcite p99", "nats p99", "p99 ratio")
	rows := 0
	for _, r := range sc.Results {
		n, ok := byProducers[r.Producers]
		if r.Workload != "append_closed" || !ok {
			continue
		}
		fmt.Fprintf(w, "%-5s  %9d  %11.0f  %11.0f  %9s  %11.2f  %11.2f  %9s\n", r.Auth, r.Producers,
			r.Throughput, n.Throughput, ratio(r.Throughput, n.Throughput),
			r.Latency.P99, n.Latency.P99, ratio(r.Latency.P99, n.Latency.P99))
		rows++
	}
	if rows == 0 {
		return fmt.Errorf("%s has no closed-loop rows with the same producer counts", starcitePath)
	}
	fmt.Fprintln(w, "ratios are starcite/nats: throughput above 1 and p99 below 1 favour Starcite")
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
