package archive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func openFileAdapter(t testing.TB, dir string) Adapter {
	t.Helper()
	a, err := Open(context.Background(), Config{Adapter: "file", Dir: dir})
	if err != nil {
		t.Fatalf("Open(file): %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func putRawFile(t testing.TB, a Adapter, key string, body []byte) {
	t.Helper()
	fa, ok := a.(*fileAdapter)
	if !ok {
		fa = a.(*cachedAdapter).Adapter.(*fileAdapter)
	}
	path := filepath.Join(fa.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileHarness() harness {
	return harness{
		name:   "file",
		open:   func(t testing.TB) Adapter { return openFileAdapter(t, t.TempDir()) },
		putRaw: putRawFile,
	}
}

// cachedFileHarness runs the suite through the read cache, with a budget
// small enough that entries get evicted.
func cachedFileHarness() harness {
	return harness{
		name:   "cached-file",
		open:   func(t testing.TB) Adapter { return NewCached(openFileAdapter(t, t.TempDir()), 256<<10) },
		putRaw: putRawFile,
	}
}

func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	a := openFileAdapter(t, dir)
	evs := testEvents(1, 300, "a")
	mustWrite(t, a, "sess-1", evs)
	if err := a.PutSession(context.Background(), Session{ID: "sess-1", TenantID: "acme", CreatedAt: baseTime}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "events", "v1", "c2Vzcy0x", "1.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 256 || lines[0] != string(evs[0].JSON) || lines[255] != string(evs[255].JSON) {
		t.Fatalf("chunk 1: %d lines (trailing newline: %v)", len(lines), strings.HasSuffix(string(b), "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, "events", "v1", "c2Vzcy0x", "257.ndjson")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sessions", "v1", "c2Vzcy0x.json")); err != nil {
		t.Fatal(err)
	}
	// No temp files are left behind.
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

const writerDirEnv = "STARCITE_ARCHIVE_TEST_WRITER_DIR"

// TestFileWriterProcess is the body of a child process of
// TestFileMultiProcess; it does nothing when run directly.
func TestFileWriterProcess(t *testing.T) {
	dir := os.Getenv(writerDirEnv)
	if dir == "" {
		t.Skip("child process of TestFileMultiProcess")
	}
	variant := os.Getenv("STARCITE_ARCHIVE_TEST_WRITER")
	a := openFileAdapter(t, dir)
	evs := testEvents(1, 1000, variant)
	step := 37 + len(variant)*50
	for lo := 0; lo < len(evs); lo += step {
		mustWrite(t, a, "shared", evs[lo:min(lo+step, len(evs))])
	}
}

// TestFileMultiProcess runs several processes writing the same session
// into one directory at once, as cluster nodes sharing a volume would.
func TestFileMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileWriterProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), writerDirEnv+"="+dir, "STARCITE_ARCHIVE_TEST_WRITER="+strings.Repeat("w", i+1))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	a := openFileAdapter(t, dir)
	got := mustRead(t, a, "shared", 1, 2000)
	if len(got) != 1000 {
		t.Fatalf("got %d events (%s), want 1000", len(got), seqRange(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		ok := false
		for w := 1; w <= 4; w++ {
			ok = ok || string(e.JSON) == string(testEvent(e.Seq, strings.Repeat("w", w), 16).JSON)
		}
		if !ok {
			t.Fatalf("seq %d has content of no writer: %s", e.Seq, e.JSON)
		}
	}
}
