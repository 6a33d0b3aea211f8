package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// APIError is an error answer of the HTTP API: the status and the
// {"error": code, "message": message} body (docs/api.md#errors).
// errors.Is(err, ErrSessionNotFound) and the like match it by code.
type APIError struct {
	Status  int
	Code    string // "" when the body was not the API's error shape (e.g. a proxy's page)
	Message string
	Body    []byte // the body as received
}

func (e *APIError) Error() string {
	switch {
	case e.Code == "":
		return "starcite: HTTP " + strconv.Itoa(e.Status)
	case e.Message == "":
		return fmt.Sprintf("starcite: %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("starcite: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Code != "" && t.Code == e.Code
}

// The sentinels of the API's error codes (docs/api.md#errors); match
// them with errors.Is. Status is the one the server answers with.
var (
	ErrUnauthorized           = &APIError{Status: 401, Code: "unauthorized"}
	ErrForbiddenScope         = &APIError{Status: 403, Code: "forbidden_scope"}
	ErrForbiddenSession       = &APIError{Status: 403, Code: "forbidden_session"}
	ErrForbiddenTenant        = &APIError{Status: 403, Code: "forbidden_tenant"}
	ErrSessionNotFound        = &APIError{Status: 404, Code: "session_not_found"}
	ErrNotFound               = &APIError{Status: 404, Code: "not_found"}
	ErrSessionExists          = &APIError{Status: 409, Code: "session_exists"}
	ErrExpectedSeqConflict    = &APIError{Status: 409, Code: "expected_seq_conflict"}
	ErrProducerSeqConflict    = &APIError{Status: 409, Code: "producer_seq_conflict"}
	ErrProducerReplayConflict = &APIError{Status: 409, Code: "producer_replay_conflict"}
	ErrInvalidEvent           = &APIError{Status: 400, Code: "invalid_event"}
	ErrInvalidMetadata        = &APIError{Status: 400, Code: "invalid_metadata"}
	ErrInvalidRefs            = &APIError{Status: 400, Code: "invalid_refs"}
	ErrInvalidCursor          = &APIError{Status: 400, Code: "invalid_cursor"}
	ErrInvalidTailBatchSize   = &APIError{Status: 400, Code: "invalid_tail_batch_size"}
	ErrInvalidLimit           = &APIError{Status: 400, Code: "invalid_limit"}
	ErrInvalidUpgrade         = &APIError{Status: 400, Code: "invalid_websocket_upgrade"}
	ErrInvalidSession         = &APIError{Status: 400, Code: "invalid_session"}
	ErrPayloadTooLarge        = &APIError{Status: 413, Code: "payload_too_large"}
	ErrUnsupportedMediaType   = &APIError{Status: 415, Code: "unsupported_media_type"}
	ErrRaftTimeout            = &APIError{Status: 503, Code: "raft_timeout"}
	ErrRaftUnavailable        = &APIError{Status: 503, Code: "raft_unavailable"}
	ErrArchiveReadUnavailable = &APIError{Status: 503, Code: "archive_read_unavailable"}
	ErrArchiveBacklog         = &APIError{Status: 503, Code: "archive_backlog"}
	ErrReplayUnavailable      = &APIError{Status: 503, Code: "replay_unavailable"}
	ErrInternal               = &APIError{Status: 500, Code: "internal_error"}
	ErrInternalServer         = &APIError{Status: 500, Code: "internal_server_error"}
)

// sentinels are the sentinels above, for lookups by code.
var sentinels = []*APIError{ErrUnauthorized, ErrForbiddenScope, ErrForbiddenSession, ErrForbiddenTenant,
	ErrSessionNotFound, ErrNotFound, ErrSessionExists, ErrExpectedSeqConflict, ErrProducerSeqConflict,
	ErrProducerReplayConflict, ErrInvalidEvent, ErrInvalidMetadata, ErrInvalidRefs, ErrInvalidCursor,
	ErrInvalidTailBatchSize, ErrInvalidLimit, ErrInvalidUpgrade, ErrInvalidSession, ErrPayloadTooLarge,
	ErrUnsupportedMediaType, ErrRaftTimeout, ErrRaftUnavailable, ErrArchiveReadUnavailable,
	ErrArchiveBacklog, ErrReplayUnavailable, ErrInternal, ErrInternalServer}

// apiError builds the error of a non-2xx answer.
func apiError(status int, body []byte) *APIError {
	e := &APIError{Status: status, Body: body}
	var shape struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &shape) == nil {
		e.Code, e.Message = shape.Error, shape.Message
	}
	return e
}

// ErrUnreachable is wrapped by the error of a request or tail that got no
// answer from any node (connection refused or dropped, timeout) within
// the retry policy.
var ErrUnreachable = errors.New("unreachable")

// ErrGap is wrapped by the error of a tail whose server skipped seqs
// again and again after reconnecting (a server bug: the server never
// pushes over a gap).
var ErrGap = errors.New("tail gap")

// CloseError is a tail the server closed for good: the WebSocket close
// code and reason (docs/api.md#close-codes). errors.Is matches it
// against ErrTailUnavailable and ErrTokenExpired by code.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("starcite: tail closed with %d %s", e.Code, e.Reason)
}

// Is reports whether target is the sentinel of e's close code.
func (e *CloseError) Is(target error) bool {
	t, ok := target.(*CloseError)
	return ok && t.Code == e.Code
}

var (
	// ErrTailUnavailable: close 1011, the server cannot produce a gap-free
	// replay from the cursor now (replay_unavailable: e.g. the archive is
	// down while the cursor is older than the events in memory), or a
	// node could not run the socket and retries ran out. Retrying later,
	// from the same cursor, is safe.
	ErrTailUnavailable = &CloseError{Code: 1011}
	// ErrTokenExpired: close 4001, the token expired and no refresh
	// function was configured (WithTokenRefresh).
	ErrTokenExpired = &CloseError{Code: 4001, Reason: "token_expired"}
)
