package edge

import (
	"errors"
	"fmt"

	"starcite/dataplane"
)

// apiError is an error the API returns: an HTTP status and the
// {"error": code, "message": message} body of docs/api.md#error-catalogue.
type apiError struct {
	status  int
	code    string
	message string // "" for the framework-level shapes without a message key
}

func (e *apiError) Error() string { return e.code }

// withMessage returns a copy of e carrying a formatted message (the 409s
// whose message names the numbers involved).
func (e *apiError) withMessage(format string, args ...any) *apiError {
	c := *e
	c.message = fmt.Sprintf(format, args...)
	return &c
}

// The error catalogue (docs/api.md#error-catalogue). Messages are
// verbatim.
var (
	errUnauthorized           = &apiError{401, "unauthorized", "Unauthorized"}
	errForbiddenScope         = &apiError{403, "forbidden_scope", "Token scope does not allow this operation"}
	errForbiddenSession       = &apiError{403, "forbidden_session", "Token is not allowed to access this session"}
	errForbiddenTenant        = &apiError{403, "forbidden_tenant", "Token tenant does not match session tenant"}
	errSessionNotFound        = &apiError{404, "session_not_found", "Session was not found"}
	errSessionExists          = &apiError{409, "session_exists", "Session already exists"}
	errExpectedSeqConflict    = &apiError{409, "expected_seq_conflict", ""}
	errProducerSeqConflict    = &apiError{409, "producer_seq_conflict", ""}
	errProducerReplayConflict = &apiError{409, "producer_replay_conflict", "Producer sequence was already used with different event content"}
	errRaftTimeout            = &apiError{503, "raft_timeout", "Cluster request timed out"}
	errRaftUnavailable        = &apiError{503, "raft_unavailable", "No available replicas"}
	errArchiveReadUnavailable = &apiError{503, "archive_read_unavailable", "Archive read unavailable"}
	errArchiveBacklog         = &apiError{503, "archive_backlog", "Node is refusing writes until the archive catches up"}
	errReplayUnavailable      = &apiError{503, "replay_unavailable", "Ordered replay unavailable"}
	errInvalidEvent           = &apiError{400, "invalid_event", "Invalid event payload"}
	errInvalidMetadata        = &apiError{400, "invalid_metadata", "Invalid metadata payload"}
	errInvalidRefs            = &apiError{400, "invalid_refs", "Invalid refs payload"}
	errInvalidCursor          = &apiError{400, "invalid_cursor", "Invalid cursor value"}
	errInvalidTailBatchSize   = &apiError{400, "invalid_tail_batch_size", "Invalid tail batch size value"}
	errInvalidLimit           = &apiError{400, "invalid_limit", "Invalid limit value"}
	errInvalidUpgrade         = &apiError{400, "invalid_websocket_upgrade", "WebSocket upgrade required"}
	errInvalidSession         = &apiError{400, "invalid_session", "Invalid session payload"}
	errPayloadTooLarge        = &apiError{413, "payload_too_large", "Request body is too large"}
	errUnsupportedMediaType   = &apiError{415, "unsupported_media_type", "Unsupported media type"}
	errInternal               = &apiError{500, "internal_error", "Internal server error"}
	errNotFound               = &apiError{404, "not_found", ""}
	errInternalServer         = &apiError{500, "internal_server_error", ""}
)

// apiErrorOf maps an error of the data plane to its API error: the one
// place sentinel errors become codes.
func apiErrorOf(err error) *apiError {
	var exp *dataplane.ExpectedSeqConflictError
	var prod *dataplane.ProducerSeqConflictError
	switch {
	case errors.Is(err, dataplane.ErrSessionNotFound):
		return errSessionNotFound
	case errors.Is(err, dataplane.ErrSessionExists):
		return errSessionExists
	case errors.As(err, &exp):
		return errExpectedSeqConflict.withMessage("Expected seq %d, current seq is %d", exp.Expected, exp.Current)
	case errors.As(err, &prod):
		return errProducerSeqConflict.withMessage("Producer %s expected seq %d, got %d", prod.ProducerID, prod.Expected, prod.Got)
	case errors.Is(err, dataplane.ErrProducerReplayConflict):
		return errProducerReplayConflict
	case errors.Is(err, dataplane.ErrBacklog):
		return errArchiveBacklog
	case errors.Is(err, dataplane.ErrTimeout):
		return errRaftTimeout
	case errors.Is(err, dataplane.ErrUnavailable):
		return errRaftUnavailable
	case errors.Is(err, dataplane.ErrArchiveUnavailable):
		return errArchiveReadUnavailable
	case errors.Is(err, dataplane.ErrReplayGap):
		return errReplayUnavailable
	default:
		return errInternal
	}
}
