package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"starcite/fsm"
)

// fileAdapter keeps the S3 layout of docs/operations.md#archive-layout in a
// directory (docs/decisions.md#d17):
//
//	<Dir>/events/v1/<name>/<chunk_start>.ndjson   NDJSON chunk, as in S3
//	<Dir>/sessions/v1/<name>.json                 catalogue object, as in S3
//	<Dir>/locks/v1/<name>.lock                    advisory lock file (empty)
//
// where <name> is objectName(session id). There is no prefix directory:
// the directory itself plays the role of the bucket plus prefix, so
// `<Dir>` can be copied to `s3://bucket/<prefix>/` as it is (minus locks/).
//
// Every change is a temp file in the target directory, fsynced, renamed
// over the target, and the directory fsynced. A writer holds an exclusive
// flock on the session's lock file around read-merge-rename, so processes
// sharing the directory (cluster nodes on a shared volume) and goroutines
// of one process never lose each other's events; readers take no lock,
// since a rename is atomic. Lock files are never removed (removing a flock
// file races with its next user). flock blocks without regard to ctx; the
// holder only ever does a bounded amount of local I/O.
type fileAdapter struct {
	dir string
}

func openFile(cfg Config) (Adapter, error) {
	if strings.TrimSpace(cfg.Dir) == "" {
		return nil, errors.New("archive: file adapter needs a directory (STARCITE_ARCHIVE_DIR)")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("archive: file adapter directory %q: %w", cfg.Dir, err)
	}
	a := &fileAdapter{dir: dir}
	for _, d := range []string{a.eventsRoot(), a.sessionsDir(), a.locksDir()} {
		if err := ensureDir(d); err != nil {
			return nil, fmt.Errorf("archive: file adapter: create %s: %w", d, err)
		}
	}
	probe, err := os.CreateTemp(a.dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("archive: file adapter directory %s is not writable: %w", a.dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return a, nil
}

func (a *fileAdapter) Name() string { return "file" }
func (a *fileAdapter) Close() error { return nil }

func (a *fileAdapter) eventsRoot() string  { return filepath.Join(a.dir, "events", "v1") }
func (a *fileAdapter) sessionsDir() string { return filepath.Join(a.dir, "sessions", "v1") }
func (a *fileAdapter) locksDir() string    { return filepath.Join(a.dir, "locks", "v1") }

func chunkFileName(start uint64) string { return strconv.FormatUint(start, 10) + ".ndjson" }

// lock takes the exclusive advisory lock of a session; call the result to
// release it.
func (a *fileAdapter) lock(name string) (unlock func(), err error) {
	path := filepath.Join(a.locksDir(), name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func (a *fileAdapter) PutSession(ctx context.Context, s Session) error {
	body, err := encodeSession(s)
	if err != nil {
		return fmt.Errorf("archive: file put session: %w", err)
	}
	name := objectName(s.ID)
	final := filepath.Join(a.sessionsDir(), name+".json")
	if _, err := os.Stat(final); err == nil {
		return nil // first write wins
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive: file put session %q: %w", s.ID, err)
	}
	unlock, err := a.lock(name)
	if err != nil {
		return fmt.Errorf("archive: file put session %q: %w", s.ID, err)
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	if err := a.replaceSessionFile(name, body); err != nil {
		return fmt.Errorf("archive: file put session %q: %w", s.ID, err)
	}
	return nil
}

// replaceSessionFile atomically replaces (or creates) a catalogue file.
// The caller holds the name's lock.
func (a *fileAdapter) replaceSessionFile(name string, body []byte) error {
	dir := a.sessionsDir()
	tmp, err := writeTemp(dir, name+".json", body)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".json")); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func (a *fileAdapter) UpdateSession(ctx context.Context, s Session) error {
	body, err := encodeSession(s)
	if err != nil {
		return fmt.Errorf("archive: file update session: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive: file update session %q: %w", s.ID, err)
	}
	name := objectName(s.ID)
	final := filepath.Join(a.sessionsDir(), name+".json")
	unlock, err := a.lock(name)
	if err != nil {
		return fmt.Errorf("archive: file update session %q: %w", s.ID, err)
	}
	defer unlock()
	if newer, err := storedIsNewer(final, s); err != nil || newer {
		return err
	}
	if err := a.replaceSessionFile(name, body); err != nil {
		return fmt.Errorf("archive: file update session %q: %w", s.ID, err)
	}
	return nil
}

// storedIsNewer reports whether the catalogue file at path already holds
// s's header or a later one.
func storedIsNewer(path string, s Session) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("archive: file update session %q: %w", s.ID, err)
	}
	stored, err := decodeSession(b)
	if err != nil {
		return false, fmt.Errorf("archive: file update session %q: %s: %w", s.ID, path, err)
	}
	if stored.ID != s.ID {
		return false, fmt.Errorf("archive: file update session %q: %s holds session %q", s.ID, path, stored.ID)
	}
	return stored.UpdatedAt >= s.UpdatedAt, nil
}

func (a *fileAdapter) GetSession(ctx context.Context, id string) (Session, error) {
	path := filepath.Join(a.sessionsDir(), objectName(id)+".json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("archive: file get session %q: %w", id, err)
	}
	s, err := decodeSession(b)
	if err != nil {
		return Session{}, fmt.Errorf("archive: file get session %q: %s: %w", id, path, err)
	}
	if s.ID != id {
		return Session{}, ErrNotFound // another id with the same hashed name
	}
	return s, nil
}

func (a *fileAdapter) WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	if err := checkEvents(sessionID, events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive: file write session %q: %w", sessionID, err)
	}
	if err := a.writeEvents(ctx, sessionID, events); err != nil {
		return fmt.Errorf("archive: file write session %q: %w", sessionID, err)
	}
	return nil
}

func (a *fileAdapter) writeEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	name := objectName(sessionID)
	sdir := filepath.Join(a.eventsRoot(), name)
	if err := ensureDir(sdir); err != nil {
		return err
	}
	unlock, err := a.lock(name)
	if err != nil {
		return err
	}
	defer unlock()

	type rename struct{ tmp, final string }
	var renames []rename
	defer func() {
		for _, r := range renames {
			os.Remove(r.tmp) // no-op after a successful rename
		}
	}()
	for _, run := range splitChunks(events) {
		if err := ctx.Err(); err != nil {
			return err
		}
		final := filepath.Join(sdir, chunkFileName(run.start))
		existing, err := readChunkFile(final)
		if err != nil {
			return err
		}
		body, changed := mergeChunk(existing, run.events)
		if !changed {
			continue
		}
		tmp, err := writeTemp(sdir, chunkFileName(run.start), body)
		if err != nil {
			return err
		}
		renames = append(renames, rename{tmp, final})
	}
	if len(renames) == 0 {
		return nil
	}
	// All temp files are durable; publish them and make the renames durable
	// with one directory fsync.
	for _, r := range renames {
		if err := os.Rename(r.tmp, r.final); err != nil {
			return err
		}
	}
	return syncDir(sdir)
}

// readChunkFile returns the lines of a chunk file; a missing file is empty.
func readChunkFile(path string) ([]storedLine, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines, err := parseChunk(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nil
}

// maxProbedChunks bounds how many chunk names ReadEvents tries directly;
// wider ranges list the session's directory instead.
const maxProbedChunks = 64

func (a *fileAdapter) ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	from, to, ok := normRange(from, to)
	if !ok || sessionID == "" {
		return nil, nil
	}
	sdir := filepath.Join(a.eventsRoot(), objectName(sessionID))
	starts, err := a.chunkStarts(sdir, from, to)
	if err != nil {
		return nil, fmt.Errorf("archive: file read session %q: %w", sessionID, err)
	}
	var out []fsm.Event
	for _, start := range starts {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("archive: file read session %q: %w", sessionID, err)
		}
		lines, err := readChunkFile(filepath.Join(sdir, chunkFileName(start)))
		if err != nil {
			return nil, fmt.Errorf("archive: file read session %q: %w", sessionID, err)
		}
		if out, err = renderLines(out, lines, tenantID, from, to); err != nil {
			return nil, fmt.Errorf("archive: file read session %q chunk %d: %w", sessionID, start, err)
		}
	}
	return out, nil
}

// chunkStarts lists the chunk starts that may hold seqs in [from, to].
func (a *fileAdapter) chunkStarts(sdir string, from, to uint64) ([]uint64, error) {
	first, last := chunkStart(from), chunkStart(to)
	if (last-first)/ChunkSize < maxProbedChunks {
		var starts []uint64
		for c := first; ; c += ChunkSize {
			starts = append(starts, c)
			if c >= last {
				return starts, nil
			}
		}
	}
	entries, err := os.ReadDir(sdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var starts []uint64
	for _, e := range entries {
		if c, ok := chunkName(e.Name(), first, last); ok {
			starts = append(starts, c)
		}
	}
	slices.Sort(starts)
	return starts, nil
}

// writeTemp writes body to a new temp file in dir, fsyncs and closes it,
// and returns its path.
func writeTemp(dir, base string, body []byte) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return name, nil
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// ensureDir creates dir and its missing parents, fsyncing each parent that
// gained an entry so that the new directories survive a crash.
func ensureDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created concurrently
		}
		return err
	}
	return syncDir(parent)
}
