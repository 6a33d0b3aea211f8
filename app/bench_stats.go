package main

// Result types, percentile math and table output of `starcite bench`.

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// latencySummary is a latency distribution in milliseconds. Percentiles
// are nearest-rank over every sample (no bucketing), so p99 of 100
// samples is the 99th smallest.
type latencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9/100*1000 = 999.0000000000001)
	// from moving the rank up by one.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// summarize sorts samples in place and summarizes them.
func summarize(samples []time.Duration) latencySummary {
	if len(samples) == 0 {
		return latencySummary{}
	}
	slices.Sort(samples)
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return latencySummary{
		Count: int64(len(samples)),
		Mean:  sum / float64(len(samples)) / 1e6,
		P50:   ms(percentile(samples, 50)),
		P95:   ms(percentile(samples, 95)),
		P99:   ms(percentile(samples, 99)),
		P999:  ms(percentile(samples, 99.9)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// errorCounts counts failed operations by class: "<status> <code>" for
// an HTTP error reply, "transport: <what>" for a request that got no
// reply, or a workload-specific class. Safe for concurrent use.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorCounts) add(class string, n int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[class] += n
}

// snapshot returns a copy of the counts and their total.
func (e *errorCounts) snapshot() (map[string]int64, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	var total int64
	for k, v := range e.m {
		out[k] = v
		total += v
	}
	return out, total
}

// nodeUsage is what one server process used during a workload.
type nodeUsage struct {
	Node string `json:"node"`
	PID  int    `json:"pid"`
	// PeakRSSBytes is VmHWM: the peak since the workload started when
	// PeakReset, else since the process started.
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	PeakReset    bool    `json:"peak_reset"`
	CPUSeconds   float64 `json:"cpu_seconds"`
}

// usage is the resource use of the servers and of the bench itself
// during a workload's measured part.
type resourceUse struct {
	Nodes          []nodeUsage `json:"nodes,omitempty"`
	ServerCPUCores float64     `json:"server_cpu_cores"` // all server processes, CPU seconds per wall second
	BenchCPUCores  float64     `json:"bench_cpu_cores"`  // this process
}

// maxPeakRSS is the largest peak RSS over the nodes (0: unknown).
func (u resourceUse) maxPeakRSS() int64 {
	var m int64
	for _, n := range u.Nodes {
		m = max(m, n.PeakRSSBytes)
	}
	return m
}

// benchResult is one row of one workload.
type benchResult struct {
	Workload string `json:"workload"` // append_closed, append_open, tail_e2e, replay
	Auth     string `json:"auth"`     // none | jwt

	Producers   int     `json:"producers,omitempty"`
	OfferedRate float64 `json:"offered_rate_per_s,omitempty"`
	Subscribers int     `json:"subscribers,omitempty"`
	Mode        string  `json:"mode,omitempty"` // replay: hot | cold
	BatchSize   int     `json:"batch_size,omitempty"`
	Events      int64   `json:"events,omitempty"`

	DurationSec float64 `json:"duration_s"`
	Ops         int64   `json:"ops"`              // successful operations measured
	Throughput  float64 `json:"throughput_per_s"` // Ops per second
	// Latency: appends (send → 201; open loop: scheduled time → 201),
	// tail deliveries (append sent → frame received), or replay gaps
	// between consecutive frames.
	Latency latencySummary `json:"latency_ms"`

	SendLag      *latencySummary `json:"send_lag_ms,omitempty"`      // open loop: scheduled → sent
	AllDelivered *latencySummary `json:"all_delivered_ms,omitempty"` // tail: append sent → last subscriber got it
	Append       *latencySummary `json:"append_ms,omitempty"`        // tail: the appends' own latency
	FirstFrameMs float64         `json:"first_frame_ms,omitempty"`   // replay
	MBPerSec     float64         `json:"mb_per_s,omitempty"`         // replay: frame bytes

	Deduped    int64            `json:"deduped,omitempty"`
	Errors     map[string]int64 `json:"errors"`
	ErrorTotal int64            `json:"error_total"`
	Usage      resourceUse      `json:"usage"`
	LoadAvg    string           `json:"load_avg,omitempty"` // /proc/loadavg when the row finished: how shared the machine was
	Note       string           `json:"note,omitempty"`
}

// table prints rows under a header with right-aligned columns; widths
// are fixed up front so rows can be printed as they complete.
type table struct {
	w      io.Writer
	widths []int
}

func newTable(w io.Writer, title string, cols ...string) *table {
	t := &table{w: w, widths: make([]int, len(cols))}
	for i, c := range cols {
		t.widths[i] = max(len(c), 8)
	}
	t.widths[0] = max(t.widths[0], 10)
	fmt.Fprintf(w, "\n%s\n", title)
	t.row(cols...)
	return t
}

func (t *table) row(cells ...string) {
	var b strings.Builder
	for i, c := range cells {
		w := 10
		if i < len(t.widths) {
			w = t.widths[i]
		}
		if i == 0 {
			fmt.Fprintf(&b, "%-*s", w, c)
		} else {
			fmt.Fprintf(&b, "  %*s", w, c)
		}
	}
	fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
}

// fmtMs formats milliseconds with three significant digits or so.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fmtCount formats an integer with thousands separators.
func fmtCount(v int64) string {
	s := fmt.Sprint(v)
	if v < 0 {
		return "-" + fmtCount(-v)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func fmtRate(v float64) string { return fmtCount(int64(math.Round(v))) }

// fmtMB formats bytes as MiB ("-" when unknown).
func fmtMB(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

// fmtErrors prints the error classes of the rows of a table that had any.
func fmtErrors(w io.Writer, label string, errs map[string]int64) {
	if len(errs) == 0 {
		return
	}
	keys := slices.Sorted(maps.Keys(errs))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%s", k, fmtCount(errs[k])))
	}
	fmt.Fprintf(w, "  errors (%s): %s\n", label, strings.Join(parts, ", "))
}
