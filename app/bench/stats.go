package bench

// Result types, percentile math and table output of `starcite bench`.

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"starcite/app/measure"
)

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
	Latency measure.Latency `json:"latency_ms"`

	SendLag      *measure.Latency `json:"send_lag_ms,omitempty"`      // open loop: scheduled → sent
	AllDelivered *measure.Latency `json:"all_delivered_ms,omitempty"` // tail: append sent → last subscriber got it
	Append       *measure.Latency `json:"append_ms,omitempty"`        // tail: the appends' own latency
	FirstFrameMs float64          `json:"first_frame_ms,omitempty"`   // replay
	MBPerSec     float64          `json:"mb_per_s,omitempty"`         // replay: frame bytes

	Deduped    int64            `json:"deduped,omitempty"`
	Errors     map[string]int64 `json:"errors"`
	ErrorTotal int64            `json:"error_total"`
	Usage      measure.Usage    `json:"usage"`
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
