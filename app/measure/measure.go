// Package measure holds what the benchmarks measure and how: latency
// summaries (nearest-rank percentiles over every sample) and the CPU time
// and peak RSS of server processes, read from /proc. `starcite bench`
// (package main in app/) and the NATS comparison (test/bench/natsbench)
// both use it, so their figures are taken the same way and compare.
package measure

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Latency is a latency distribution in milliseconds. Percentiles are
// nearest-rank over every sample (no bucketing), so p99 of 100 samples is
// the 99th smallest.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
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

// Summarize sorts samples in place and summarizes them.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{
		Count: int64(len(samples)),
		Mean:  sum / float64(len(samples)) / 1e6,
		P50:   ms(Percentile(samples, 50)),
		P95:   ms(Percentile(samples, 95)),
		P99:   ms(Percentile(samples, 99)),
		P999:  ms(Percentile(samples, 99.9)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// NodeUsage is what one server process used during a workload.
type NodeUsage struct {
	Node string `json:"node"`
	PID  int    `json:"pid"`
	// PeakRSSBytes is VmHWM: the peak since the workload started when
	// PeakReset, else since the process started.
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	PeakReset    bool    `json:"peak_reset"`
	CPUSeconds   float64 `json:"cpu_seconds"`
}

// Usage is the resource use of the servers and of the bench itself
// during a workload's measured part.
type Usage struct {
	Nodes          []NodeUsage `json:"nodes,omitempty"`
	ServerCPUCores float64     `json:"server_cpu_cores"` // all server processes, CPU seconds per wall second
	BenchCPUCores  float64     `json:"bench_cpu_cores"`  // this process
}

// MaxPeakRSS is the largest peak RSS over the nodes (0: unknown).
func (u Usage) MaxPeakRSS() int64 {
	var m int64
	for _, n := range u.Nodes {
		m = max(m, n.PeakRSSBytes)
	}
	return m
}

// Proc is a server process whose resource use is measured.
type Proc struct {
	Name string
	PID  int
}

// Probe measures the servers' and this process's CPU time over a
// workload and the servers' peak RSS.
type Probe struct {
	procs     []Proc
	reset     []bool // VmHWM was reset at start (clear_refs)
	cpu0      []float64
	benchCPU0 float64
	t0        time.Time
}

// Start resets the peak RSS of each process where the kernel lets us
// (writing 5 to /proc/<pid>/clear_refs) and notes CPU times.
func Start(procs []Proc) *Probe {
	u := &Probe{procs: procs, t0: time.Now(), benchCPU0: SelfCPUSeconds()}
	for _, p := range procs {
		err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID), []byte("5"), 0)
		u.reset = append(u.reset, err == nil)
		c, _ := ProcCPUSeconds(p.PID)
		u.cpu0 = append(u.cpu0, c)
	}
	return u
}

// Finish returns what was used since Start.
func (u *Probe) Finish() Usage {
	wall := time.Since(u.t0).Seconds()
	out := Usage{}
	if wall <= 0 {
		return out
	}
	out.BenchCPUCores = (SelfCPUSeconds() - u.benchCPU0) / wall
	for i, p := range u.procs {
		c, err := ProcCPUSeconds(p.PID)
		nu := NodeUsage{Node: p.Name, PID: p.PID, PeakReset: u.reset[i]}
		if err == nil {
			nu.CPUSeconds = c - u.cpu0[i]
			out.ServerCPUCores += nu.CPUSeconds / wall
		}
		nu.PeakRSSBytes, _ = ProcStatusBytes(p.PID, "VmHWM")
		out.Nodes = append(out.Nodes, nu)
	}
	return out
}

// ProcStatusBytes reads a "kB" field of /proc/<pid>/status in bytes.
func ProcStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcCPUSeconds is utime+stime of a process from /proc/<pid>/stat.
func ProcCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	return (ut + st) / clockTicks, nil
}

// SelfCPUSeconds is the CPU time this process has used.
func SelfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
