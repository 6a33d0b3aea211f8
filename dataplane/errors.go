package dataplane

import (
	"errors"
	"fmt"
)

// Errors of the data plane. The edge maps each to its API error code in
// one table (edge/errors.go).
var (
	ErrSessionNotFound        = errors.New("session not found")
	ErrSessionExists          = errors.New("session already exists")
	ErrProducerReplayConflict = errors.New("producer sequence reused with different content")
	// ErrTimeout: the consensus command did not finish in time. The write
	// may still commit; a retry with the same producer_seq is safe.
	ErrTimeout = errors.New("consensus request timed out")
	// ErrUnavailable: no replica of the group can serve the request now.
	ErrUnavailable = errors.New("no available replicas")
	// ErrBacklog: the hot tier is at its budget because the archive lags.
	ErrBacklog = errors.New("archive backlog at its limit")
	// ErrArchiveUnavailable: a session lookup needed the archive catalogue
	// and could not read it.
	ErrArchiveUnavailable = errors.New("archive read unavailable")
	// ErrReplayGap: a gap-free range of events cannot be produced now
	// (events only the archive holds, and the archive is unreachable).
	ErrReplayGap = errors.New("ordered replay unavailable")
	// ErrMetadataTooLarge: an update's merged metadata would exceed
	// fsm.MaxMetadataBytes.
	ErrMetadataTooLarge = errors.New("merged session metadata too large")
	// ErrInternal: the state machine rejected a command it should never
	// have been sent.
	ErrInternal = errors.New("internal data plane error")
	// ErrNotForwardable: a peer forwarded a command no client request
	// causes (fsm.Forwardable); it was refused and changed nothing.
	ErrNotForwardable = errors.New("command may not be forwarded by a peer")
)

// ExpectedSeqConflictError: expected_seq did not match last_seq.
type ExpectedSeqConflictError struct{ Expected, Current uint64 }

func (e *ExpectedSeqConflictError) Error() string {
	return fmt.Sprintf("expected seq %d, current seq is %d", e.Expected, e.Current)
}

// ProducerSeqConflictError: producer_seq was not the producer's next one.
type ProducerSeqConflictError struct {
	ProducerID    string
	Expected, Got uint64
}

func (e *ProducerSeqConflictError) Error() string {
	return fmt.Sprintf("producer %s expected seq %d, got %d", e.ProducerID, e.Expected, e.Got)
}

// ExpectedVersionConflictError: an update's expected_version was not the
// session's version.
type ExpectedVersionConflictError struct{ Expected, Current uint64 }

func (e *ExpectedVersionConflictError) Error() string {
	return fmt.Sprintf("expected version %d, current version is %d", e.Expected, e.Current)
}
