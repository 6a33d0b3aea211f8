package edge

import (
	"strings"
	"time"

	"starcite/fsm/jsonc"
)

// Join error reasons of /v1/socket (docs/api.md#joining-a-tail,
// docs/api.md#the-lifecycle-topic): the response {"reason": R} of a
// refused join.
const (
	ReasonUnauthorized     = "unauthorized"
	ReasonTokenExpired     = "token_expired"
	ReasonInvalidCursor    = "invalid_cursor"
	ReasonInvalidBatchSize = "invalid_tail_batch_size"
	ReasonForbidden        = "forbidden"
	ReasonForbiddenScope   = "forbidden_scope"
	ReasonForbiddenSession = "forbidden_session"
	ReasonForbiddenTenant  = "forbidden_tenant"
	ReasonUnmatchedTopic   = "unmatched topic"
	// ReasonTooManyChannels: the socket already carries the most channels
	// one socket may (a Go limit; upstream has none).
	ReasonTooManyChannels = "too_many_channels"
)

// Topics a client may join.
const (
	TailTopicPrefix = "tail:"
	LifecycleTopic  = "lifecycle"
)

// TailJoin is a validated tail:<id> join.
type TailJoin struct {
	SessionID string
	Cursor    uint64 // the last seq the client has; 0 = replay everything
	BatchSize int    // events per events push, 1..1000
}

// Expired reports whether the principal's token has expired at now: exp
// in whole seconds, no leeway (a socket outlives its token's leeway, its
// channels do not).
func (p *Principal) Expired(now time.Time) bool {
	return p.Expires > 0 && p.Expires <= now.Unix()
}

// CheckTailJoin runs the checks of a tail join that need no data, in
// order: the topic's session id, token expiry, cursor, batch_size, scope,
// session lock. The remaining two (the session exists, its tenant) are
// CheckTailTenant after the lookup. reason is "" when the join may go on.
func CheckTailJoin(p *Principal, topic string, params jsonc.Value, now time.Time) (TailJoin, string) {
	id := strings.TrimPrefix(topic, TailTopicPrefix)
	if id == "" || params.Kind != jsonc.Object {
		return TailJoin{}, ReasonUnauthorized
	}
	if p.Expired(now) {
		return TailJoin{}, ReasonTokenExpired
	}
	j := TailJoin{SessionID: id, BatchSize: 1}
	if v, ok := params.Get("cursor"); ok {
		n, ok := jsonInteger(v)
		if !ok {
			return TailJoin{}, ReasonInvalidCursor
		}
		j.Cursor = n
	}
	if v, ok := params.Get("batch_size"); ok {
		n, ok := jsonInteger(v)
		if !ok || n < 1 || n > maxTailBatchSize {
			return TailJoin{}, ReasonInvalidBatchSize
		}
		j.BatchSize = int(n)
	}
	if !p.Has(ScopeRead) {
		return TailJoin{}, ReasonForbiddenScope
	}
	if !p.AllowsSession(id) {
		return TailJoin{}, ReasonForbiddenSession
	}
	return j, ""
}

// jsonInteger reads a non-negative JSON integer (never a string, a float
// such as 1.0, or a value above 2^63-1).
func jsonInteger(v jsonc.Value) (uint64, bool) {
	if v.Kind != jsonc.Number || !v.IsInt {
		return 0, false
	}
	return parseDecimal(v.Num)
}

// CheckTailTenant is the last check of a tail join, once the session is
// found: the tenant fence.
func CheckTailTenant(p *Principal, sessionTenant string) string {
	if !p.AllowsTenant(sessionTenant) {
		return ReasonForbiddenTenant
	}
	return ""
}

// CheckLifecycleJoin decides a join of the lifecycle topic: only service
// principals holding session:read that are not locked to a session see
// their tenant's lifecycle events. It returns that tenant, or the reason.
func CheckLifecycleJoin(p *Principal, now time.Time) (tenant, reason string) {
	switch {
	case p.Expired(now):
		return "", ReasonTokenExpired
	case p.open:
		return p.TenantID, ""
	case p.SessionID != "":
		return "", ReasonForbiddenSession
	case p.Type != "service":
		return "", ReasonForbidden
	case !p.Has(ScopeRead):
		return "", ReasonForbiddenScope
	}
	return p.TenantID, ""
}

// JoinErrorReason is the join reason of a failed session lookup: the
// error code REST answers for the same failure.
func JoinErrorReason(err error) string {
	return apiErrorOf(err).code
}
