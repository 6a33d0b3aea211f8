package edge

import (
	"errors"
	"fmt"
	"strconv"

	"starcite/dataplane"
)

// apiError is an error the API returns: an HTTP status and the
// {"error": code, "message": message} body of docs/api.md#error-catalogue.
type apiError struct {
	status  int
	code    string
	message string // "" for the framework-level shapes without a message key
	extra   []byte // further members after message, e.g. `"current_version":3`
}

func (e *apiError) Error() string { return e.code }

// withMessage returns a copy of e carrying a formatted message (the 409s
// whose message names the numbers involved).
func (e *apiError) withMessage(format string, args ...any) *apiError {
	c := *e
	c.message = fmt.Sprintf(format, args...)
	return &c
}

// withVersion returns a copy of e carrying the current_version member of
// an expected_version conflict.
func (e *apiError) withVersion(current uint64) *apiError {
	c := *e
	c.extra = strconv.AppendUint([]byte(`"current_version":`), current, 10)
	return &c
}

// The error catalogue (docs/api.md#error-catalogue). Messages are
// verbatim.
var (
	errUnauthorized           = &apiError{401, "unauthorized", "Unauthorized", nil}
	errForbiddenScope         = &apiError{403, "forbidden_scope", "Token scope does not allow this operation", nil}
	errForbiddenSession       = &apiError{403, "forbidden_session", "Token is not allowed to access this session", nil}
	errForbiddenTenant        = &apiError{403, "forbidden_tenant", "Token tenant does not match session tenant", nil}
	errSessionNotFound        = &apiError{404, "session_not_found", "Session was not found", nil}
	errSessionExists          = &apiError{409, "session_exists", "Session already exists", nil}
	errExpectedSeqConflict    = &apiError{409, "expected_seq_conflict", "", nil}
	errProducerSeqConflict    = &apiError{409, "producer_seq_conflict", "", nil}
	errProducerReplayConflict = &apiError{409, "producer_replay_conflict", "Producer sequence was already used with different event content", nil}
	errRaftTimeout            = &apiError{503, "raft_timeout", "Cluster request timed out", nil}
	errRaftUnavailable        = &apiError{503, "raft_unavailable", "No available replicas", nil}
	errArchiveReadUnavailable = &apiError{503, "archive_read_unavailable", "Archive read unavailable", nil}
	errBackpressure           = &apiError{429, "event_store_backpressure", "Node is backpressuring writes due to event-store capacity", nil}
	errReplayUnavailable      = &apiError{503, "replay_unavailable", "Ordered replay unavailable", nil}
	errInvalidEvent           = &apiError{400, "invalid_event", "Invalid event payload", nil}
	errInvalidMetadata        = &apiError{400, "invalid_metadata", "Invalid metadata payload", nil}
	errInvalidRefs            = &apiError{400, "invalid_refs", "Invalid refs payload", nil}
	errInvalidCursor          = &apiError{400, "invalid_cursor", "Invalid cursor value", nil}
	errInvalidTailBatchSize   = &apiError{400, "invalid_tail_batch_size", "Invalid tail batch size value", nil}
	errInvalidLimit           = &apiError{400, "invalid_limit", "Invalid limit value", nil}
	errInvalidUpgrade         = &apiError{400, "invalid_websocket_upgrade", "WebSocket upgrade required", nil}
	errInvalidSession         = &apiError{400, "invalid_session", "Invalid session payload", nil}
	errInvalidListQuery       = &apiError{400, "invalid_list_query", "Invalid list query", nil}
	errExpectedVersion        = &apiError{409, "expected_version_conflict", "", nil}
	errPayloadTooLarge        = &apiError{413, "payload_too_large", "Request body is too large", nil}
	errUnsupportedMediaType   = &apiError{415, "unsupported_media_type", "Unsupported media type", nil}
	errInternal               = &apiError{500, "internal_error", "Internal server error", nil}
	errNotFound               = &apiError{404, "not_found", "", nil}
	errInternalServer         = &apiError{500, "internal_server_error", "", nil}
)

// apiErrorOf maps an error of the data plane to its API error: the one
// place sentinel errors become codes.
func apiErrorOf(err error) *apiError {
	var exp *dataplane.ExpectedSeqConflictError
	var prod *dataplane.ProducerSeqConflictError
	var ver *dataplane.ExpectedVersionConflictError
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
	case errors.As(err, &ver):
		return errExpectedVersion.withMessage("Expected version %d, current version is %d", ver.Expected, ver.Current).
			withVersion(ver.Current)
	case errors.Is(err, dataplane.ErrMetadataTooLarge):
		return errInvalidMetadata
	case errors.Is(err, dataplane.ErrBacklog):
		return errBackpressure
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
