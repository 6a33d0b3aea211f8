// Package archive is the cold tier of Starcite: it stores committed events
// and the session catalogue durably, outside the Raft groups, and reads
// them back for replay (docs/operations.md#archive).
//
// Neighbours: the archiver (the background flush loop of
// docs/operations.md#the-archiver) calls WriteEvents with up to 5,000
// committed events of one session and, once it returns, acknowledges them
// to the session's consensus group; the read path (tail replay and the
// events route) calls ReadEvents through the chunk cache of NewCached for
// seqs that are no longer in memory; session create calls PutSession, a
// header change (update, archive) UpdateSession, and the session lookup
// falls back to GetSession. Events come in and go out as
// fsm.Event, whose JSON is the canonical event object of package fsm; this
// package never interprets their content beyond seq, and re-renders stored
// forms (including those written by the upstream Elixir service) in that
// canonical layout.
//
// Three adapters implement Adapter:
//
//   - "file" (the embedded default, docs/decisions.md#d17): the S3
//     layout (docs/operations.md#archive-layout) in a local or shared
//     directory, with atomic renames and advisory locks so that several
//     processes may share it.
//   - "s3": the same layout and its conditional-PUT write protocol.
//   - "postgres": the upstream tables plus microsecond columns.
//
// Writes are idempotent on (session, seq): an event already stored wins and
// is never rewritten, so a retried or concurrent flush is harmless. A
// catalogue entry is replaced only by a copy with a later updated_at, so
// late or concurrent header writes never roll it back.
//
// # Object names for long session ids
//
// Session ids are named in keys and file names by b64u(id), URL-safe base64
// without padding (docs/operations.md#archive-layout). Ids have no length
// limit but a file name is limited to 255 bytes and an S3 key to 1,024, so
// when b64u(id) is longer than 200 characters the name is
// "h.<hex sha256(id)>" instead, in both the file and the S3 adapter. The
// '.' never occurs in b64u, so such a name can never collide with the plain
// name of a shorter id. The catalogue object keeps the full id; GetSession
// checks it.
package archive

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"starcite/fsm"
)

// ErrNotFound: no such session in the catalogue (or node marker).
var ErrNotFound = errors.New("archive: not found")

// Principal is the creator of a session.
type Principal struct{ TenantID, ID, Type string }

// Session is one catalogue entry: a copy of the session header the
// replicas hold (fsm.Header), refreshed after every change.
type Session struct {
	ID        string
	Title     *string
	TenantID  string
	Creator   *Principal // nil for legacy rows
	Metadata  []byte     // canonical JSON object
	CreatedAt int64      // Unix microseconds
	// UpdatedAt orders the copies of one session's header: it strictly
	// increases with every change, so the later copy wins. Entries written
	// before headers could change read back as CreatedAt, version 1, not
	// archived.
	UpdatedAt int64
	Version   uint64
	Archived  bool
}

// Adapter is one archive backend.
type Adapter interface {
	// PutSession writes the catalogue entry; first write wins, an existing entry is success.
	PutSession(ctx context.Context, s Session) error
	// UpdateSession writes s over the catalogue entry when s.UpdatedAt is later than the stored
	// entry's, or creates it when there is none; an older or equal copy changes nothing (copies
	// written concurrently or late never roll the entry back).
	UpdateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error) // ErrNotFound
	// WriteEvents durably stores events of one session (ascending seq, contiguous). Idempotent on
	// (session, seq): an event already stored wins and is not rewritten; a retried or concurrent
	// call never duplicates or clobbers. Returns only after the data is durable.
	WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error
	// ReadEvents returns stored events with from <= seq <= to, ascending, each JSON in the canonical
	// layout (tenantID fills in when the stored form lacks tenant_id; inserted_at always with
	// microseconds and Z). Missing seqs are simply absent (the caller checks contiguity).
	ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error)
	// PutNodeMarker writes a node's marker (marker.go), replacing its earlier one.
	PutNodeMarker(ctx context.Context, m NodeMarker) error
	// GetNodeMarker reads a node's marker; ErrNotFound when it has none here.
	GetNodeMarker(ctx context.Context, node string) (NodeMarker, error)
	Name() string // "file", "s3", "postgres"
	Close() error
}

// Config selects and configures an adapter
// (docs/operations.md#archive-and-memory-variables; the environment is read
// elsewhere). Zero values of S3MaxWriteRetries and PostgresPoolSize mean
// the defaults of docs/operations.md#archive-and-memory-variables (4 and
// 10).
type Config struct {
	Adapter string // file | s3 | postgres
	Dir     string // file adapter root

	S3Bucket          string
	S3Prefix          string // trimmed of whitespace and '/'; empty means "starcite"
	S3Region          string // empty: the SDK's default chain, else us-east-1
	S3Endpoint        string // http(s)://host[:port]; empty means AWS
	S3AccessKeyID     string // with S3SecretAccessKey; both empty: the SDK's default chain
	S3SecretAccessKey string
	S3SessionToken    string
	S3PathStyle       bool // true by default: the config loader must set it
	S3MaxWriteRetries int

	PostgresURL      string
	PostgresPoolSize int
	Migrate          bool // apply embedded migrations at open (postgres)
}

// Defaults applied by Open to zero Config fields.
const (
	DefaultS3Prefix          = "starcite"
	DefaultS3MaxWriteRetries = 4
	DefaultPostgresPoolSize  = 10
)

// ChunkSize is the number of seqs per archive chunk
// (docs/operations.md#archive-layout) and per read-cache entry.
const ChunkSize = 256

// Open validates cfg, connects to the backend and, for postgres with
// Migrate, applies the embedded migrations.
func Open(ctx context.Context, cfg Config) (Adapter, error) {
	switch strings.ToLower(strings.TrimSpace(cfg.Adapter)) {
	case "file":
		return openFile(cfg)
	case "s3":
		return openS3(ctx, cfg)
	case "postgres":
		return openPostgres(ctx, cfg)
	case "":
		return nil, errors.New("archive: no adapter configured (want file, s3 or postgres)")
	default:
		return nil, fmt.Errorf("archive: unknown adapter %q (want file, s3 or postgres)", cfg.Adapter)
	}
}

// chunkStart is the first seq of the chunk holding seq (seq >= 1).
func chunkStart(seq uint64) uint64 { return (seq-1)/ChunkSize*ChunkSize + 1 }

// chunkName reads a chunk object's name ("<first seq>.ndjson") and
// reports whether it is a chunk overlapping first..last.
func chunkName(name string, first, last uint64) (uint64, bool) {
	n, ok := strings.CutSuffix(name, ".ndjson")
	if !ok {
		return 0, false
	}
	c, err := strconv.ParseUint(n, 10, 64)
	if err != nil || c == 0 || chunkStart(c) != c || c < first || c > last {
		return 0, false
	}
	return c, true
}

// maxPlainName is the longest b64u(id) used as a name as it is.
const maxPlainName = 200

// objectName names a session in keys and file names: b64u(id), or
// "h.<hex sha256(id)>" when that is longer than maxPlainName (see the
// package doc).
func objectName(id string) string {
	if base64.RawURLEncoding.EncodedLen(len(id)) <= maxPlainName {
		return base64.RawURLEncoding.EncodeToString([]byte(id))
	}
	sum := sha256.Sum256([]byte(id))
	return "h." + hex.EncodeToString(sum[:])
}

// checkEvents validates a WriteEvents batch: seqs >= 1, strictly
// ascending, and JSON that fits on one NDJSON line.
func checkEvents(sessionID string, events []fsm.Event) error {
	if sessionID == "" {
		return errors.New("archive: empty session id")
	}
	var prev uint64
	for i, e := range events {
		if e.Seq == 0 || (i > 0 && e.Seq <= prev) {
			return fmt.Errorf("archive: session %q: events not in ascending seq order (seq %d after %d)", sessionID, e.Seq, prev)
		}
		if len(e.JSON) == 0 {
			return fmt.Errorf("archive: session %q seq %d: empty event JSON", sessionID, e.Seq)
		}
		for _, c := range e.JSON {
			if c == '\n' || c == '\r' {
				return fmt.Errorf("archive: session %q seq %d: event JSON contains a line break", sessionID, e.Seq)
			}
		}
		prev = e.Seq
	}
	return nil
}

// chunkRun is the events of one WriteEvents batch that fall into one chunk.
type chunkRun struct {
	start  uint64
	events []fsm.Event
}

// splitChunks groups ascending events by chunk.
func splitChunks(events []fsm.Event) []chunkRun {
	var runs []chunkRun
	for i := 0; i < len(events); {
		start := chunkStart(events[i].Seq)
		j := i + 1
		for j < len(events) && chunkStart(events[j].Seq) == start {
			j++
		}
		runs = append(runs, chunkRun{start: start, events: events[i:j]})
		i = j
	}
	return runs
}

// normRange clamps a ReadEvents range to seqs >= 1; ok is false when it is empty.
func normRange(from, to uint64) (uint64, uint64, bool) {
	if from == 0 {
		from = 1
	}
	return from, to, from <= to
}

// parallel runs fn(i) for i in [0, n) on at most limit goroutines and
// returns the first error by index.
func parallel(n, limit int, fn func(i int) error) error {
	if n <= 1 || limit <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
