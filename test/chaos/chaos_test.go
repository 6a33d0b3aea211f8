// Package chaos is the fault-injection suite: a 3-node cluster of real
// processes, each in its own network namespace, under a workload of
// producers and tails (workload.go) while a nemesis kills, pauses and
// partitions nodes and takes the archive away (nemesis.go). Everything
// that happens is recorded in a history file (package history), and the
// verdict comes from an independent checker that reads only that file
// (test/chaos/checker, also runnable on its own:
// `go run ./test/chaos/checker HISTORY`).
//
// Knobs (environment):
//
//	STARCITE_CHAOS_DURATION  how long the nemesis runs (default 2m; `make chaos DURATION=30m`)
//	STARCITE_CHAOS_SEED      seed of the workload and nemesis choices (default: the clock)
//	STARCITE_CHAOS_HISTORY   where to write the history (default: a temp file, kept when the test fails)
//	STARCITE_CHAOS_WRITERS, STARCITE_CHAOS_TAILERS, STARCITE_CHAOS_SESSIONS  workload size
package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"starcite/test/chaos/history"
	"starcite/test/harness"
)

const subnet = 12 // nodes on 10.213.12.x, namespaces sc12_*

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 2m", name, v)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func TestChaos(t *testing.T) {
	cfg := Config{
		Duration:    envDuration(t, "STARCITE_CHAOS_DURATION", 2*time.Minute),
		Seed:        uint64(time.Now().UnixNano()),
		Writers:     envInt(t, "STARCITE_CHAOS_WRITERS", 8),
		Tailers:     envInt(t, "STARCITE_CHAOS_TAILERS", 6),
		Sessions:    envInt(t, "STARCITE_CHAOS_SESSIONS", 10),
		MaxSessions: 60,
	}
	if v := os.Getenv("STARCITE_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STARCITE_CHAOS_SEED=%q: %v", v, err)
		}
		cfg.Seed = s
	}
	histPath := os.Getenv("STARCITE_CHAOS_HISTORY")
	keep := histPath != ""
	if !keep {
		histPath = filepath.Join(t.TempDir(), "history.jsonl")
	}
	checker := buildChecker(t)

	archive := filepath.Join(t.TempDir(), "archive")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet, Isolated: true, Env: map[string]string{
		"STARCITE_ARCHIVE_ADAPTER":           "file",
		"STARCITE_ARCHIVE_DIR":               archive,
		"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "500",
		"STARCITE_NUM_GROUPS":                "8",
	}})

	h, err := history.Create(histPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.Close()
		if t.Failed() && !keep {
			kept := filepath.Join(os.TempDir(), "starcite-chaos-"+strconv.FormatUint(cfg.Seed, 10)+".jsonl")
			if b, err := os.ReadFile(histPath); err == nil && os.WriteFile(kept, b, 0o644) == nil {
				t.Logf("history kept at %s", kept)
			}
		}
	}()
	h.Add(history.Record{Type: history.TypeRun, Params: map[string]string{
		"duration": cfg.Duration.String(), "seed": strconv.FormatUint(cfg.Seed, 10),
		"writers": strconv.Itoa(cfg.Writers), "tailers": strconv.Itoa(cfg.Tailers),
		"sessions": strconv.Itoa(cfg.Sessions), "nodes": strconv.Itoa(len(c.Nodes)),
	}})
	t.Logf("chaos run: %s, seed %d, history %s", cfg.Duration, cfg.Seed, histPath)

	w := newWorkload(cfg, c.Nodes, h)
	if err := w.CreateInitial(); err != nil {
		t.Fatal(err)
	}
	w.RunWriters()
	w.RunTailers()
	w.RunCreator()

	nem := newNemesis(t, c, h, cfg.Seed, archive, w.Sessions)
	start := time.Now()
	nem.Run(start.Add(cfg.Duration))
	t.Logf("nemesis done after %s: %v", time.Since(start).Round(time.Second), nem.Counts)

	// Every fault is healed and every node ready: writers resolve what
	// they have in flight, tails catch up with the final logs, and every
	// node's copy of every log is read.
	w.StopWrites(2 * time.Minute)
	if err := w.SetTargets(time.Now().Add(2 * time.Minute)); err != nil {
		t.Errorf("final last_seq: %v", err)
	}
	w.StopTails(2 * time.Minute)
	w.FinalReads(time.Now().Add(2 * time.Minute))
	h.Add(history.Record{Type: history.TypeEnd})
	if err := h.Flush(); err != nil {
		t.Fatalf("history: %v", err)
	}
	t.Logf("workload: %s", w.Summary())

	// The verdict: the checker, from the history alone.
	out, err := exec.Command(checker, histPath).CombinedOutput()
	t.Logf("checker:\n%s", out)
	if err != nil {
		t.Fatalf("the checker found violations (%v); history: %s", err, histPath)
	}
}

// buildChecker compiles test/chaos/checker once for this test.
func buildChecker(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "checker")
	cmd := exec.Command("go", "build", "-o", bin, "./test/chaos/checker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the checker: %v\n%s", err, out)
	}
	return bin
}
