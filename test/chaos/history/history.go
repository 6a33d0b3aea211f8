// Package history is the recorded history of a chaos run: one JSON object
// per line, written by the workload and the nemesis as things happen and
// read back by the checker (test/chaos/checker), which knows nothing else
// about the run.
//
// Every record carries its wall-clock time and T, nanoseconds since the
// start of the run on the monotonic clock; operations also carry the
// monotonic time they were invoked (Call) and answered (Ret), which the
// checker uses for real-time order.
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Record types.
const (
	TypeRun       = "run"        // parameters of the run
	TypeCreate    = "create"     // one attempt to create a session
	TypeAppend    = "append"     // one attempt to append an event
	TypeAbandon   = "abandon"    // a producer gave up on an unresolved append
	TypeTailOpen  = "tail_open"  // one attempt to open a tail
	TypeTailFrame = "tail_frame" // one frame received on a tail
	TypeTailClose = "tail_close" // a tail connection ended
	TypeTailDone  = "tail_done"  // a tailer stopped: where it got to
	TypeFault     = "fault"      // the nemesis started or ended a fault
	TypeRead      = "read"       // the final read of a session's log on one node
	TypeEnd       = "end"        // the run is over; nothing follows
)

// Fault kinds.
const (
	FaultKill      = "kill"      // SIGKILL, then a restart on the same data
	FaultPause     = "pause"     // SIGSTOP of a group leader, later SIGCONT
	FaultPartition = "partition" // one node cut off from the others
	FaultArchive   = "archive"   // the shared archive directory replaced by a plain file
)

// Outcome kinds of an append or create attempt, as the client saw it.
const (
	OutcomeOK          = "ok"          // 201
	OutcomeUnavailable = "unavailable" // 503 raft_unavailable: not written
	OutcomeUnsent      = "unsent"      // the connection was refused: the request never left the client
	OutcomeAmbiguous   = "ambiguous"   // transport error, timeout, any other 5xx: may or may not commit
	OutcomeRefused     = "refused"     // any 4xx: definitive, nothing written
)

// Record is one line of a history. Fields not relevant to a type are
// omitted.
type Record struct {
	Type string `json:"type"`
	Time string `json:"time"` // wall clock, RFC 3339 with nanoseconds
	T    int64  `json:"t"`    // monotonic ns since the run started

	// Operations (create, append, tail_open).
	Proc    string `json:"proc,omitempty"` // the client process (writer, tailer, creator)
	Session string `json:"session,omitempty"`
	Node    int    `json:"node,omitempty"` // 1-based node number
	Call    int64  `json:"call,omitempty"` // monotonic ns at invocation
	Ret     int64  `json:"ret,omitempty"`  // monotonic ns at the answer (or the error)
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"` // the API error code, when any
	Err     string `json:"err,omitempty"`  // transport error, when any
	Outcome string `json:"outcome,omitempty"`

	// Appends.
	Producer string          `json:"producer,omitempty"`
	PSeq     uint64          `json:"pseq,omitempty"`
	Variant  int             `json:"variant,omitempty"` // which content this producer_seq carried
	Payload  json.RawMessage `json:"payload,omitempty"`
	Probe    bool            `json:"probe,omitempty"` // a deliberate re-send of an acknowledged append
	Seq      uint64          `json:"seq,omitempty"`
	LastSeq  uint64          `json:"last_seq,omitempty"`
	Deduped  bool            `json:"deduped,omitempty"`
	Expected uint64          `json:"expected,omitempty"` // producer_seq_conflict: the seq the server expected

	// Tails.
	Tail     int      `json:"tail,omitempty"` // connection id
	Cursor   uint64   `json:"cursor,omitempty"`
	Batch    int      `json:"batch,omitempty"`
	Seqs     []uint64 `json:"seqs,omitempty"`
	Hashes   []string `json:"hashes,omitempty"`
	Close    int      `json:"close,omitempty"` // WebSocket close code
	Reason   string   `json:"reason,omitempty"`
	By       string   `json:"by,omitempty"` // who ended a tail: server, client, error
	Last     uint64   `json:"last,omitempty"`
	Target   uint64   `json:"target,omitempty"`
	CaughtUp bool     `json:"caught_up,omitempty"`

	// Faults.
	Fault  string `json:"fault,omitempty"`
	Phase  string `json:"phase,omitempty"` // start, end
	Detail string `json:"detail,omitempty"`

	// Final reads.
	Events []Event `json:"events,omitempty"`

	// The run.
	Params map[string]string `json:"params,omitempty"`
}

// Event is an event as a final read returned it.
type Event struct {
	Seq         uint64          `json:"seq"`
	Type        string          `json:"type"`
	ProducerID  string          `json:"producer_id"`
	ProducerSeq uint64          `json:"producer_seq"`
	Payload     json.RawMessage `json:"payload"`
	Hash        string          `json:"hash"` // of the event's bytes as served
}

// Hash is the digest under which events are compared: FNV-1a 64 of the
// event object's bytes as the server sent them.
func Hash(raw []byte) string {
	h := fnv.New64a()
	h.Write(raw)
	return strconv.FormatUint(h.Sum64(), 16)
}

// Writer appends records to a history file; safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	start time.Time
	err   error
}

// Create starts a history at path.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 1<<16), start: time.Now()}, nil
}

// Now is the monotonic time of the run, in ns.
func (w *Writer) Now() int64 { return int64(time.Since(w.start)) }

// Add writes r, stamping its times.
func (w *Writer) Add(r Record) {
	now := time.Now()
	r.Time = now.UTC().Format(time.RFC3339Nano)
	r.T = int64(now.Sub(w.start))
	b, err := json.Marshal(r)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	b = append(b, '\n')
	if _, err := w.w.Write(b); err != nil && w.err == nil {
		w.err = err
	}
}

// Flush writes buffered records to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read decodes every record of a history.
func Read(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// ReadFile decodes the history at path.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}
