package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Producer appends the events of one producer to one session. Each
// Append takes the next producer_seq; the server accepts a producer's
// seqs only in order and deduplicates an exact resend of its last one,
// which makes every retry safe: an event is in the log once, however
// often it was sent (docs/api.md#producer-sequencing).
//
// A Producer is safe for concurrent use; its appends are sent one at a
// time, in call order.
type Producer struct {
	c          *Client
	sessionID  string
	producerID string

	mu   sync.Mutex
	last uint64 // the last producer_seq known to be taken
	// unsure: an append of seq last+1 ended without an answer, so it may
	// be in the log; the next append finds out.
	unsure bool
}

// ProducerOption configures a Producer.
type ProducerOption func(*Producer)

// ResumeAfter resumes a producer whose appends up to producerSeq are
// done (stored by the application from Producer.LastSeq): the next
// Append uses producerSeq+1. A new producer starts after 0.
func ResumeAfter(producerSeq uint64) ProducerOption {
	return func(p *Producer) { p.last = producerSeq }
}

// Producer returns the producer producerID of a session.
func (c *Client) Producer(sessionID, producerID string, opts ...ProducerOption) *Producer {
	p := &Producer{c: c, sessionID: sessionID, producerID: producerID}
	for _, o := range opts {
		o(p)
	}
	return p
}

// LastSeq is the producer_seq of the last append that succeeded (or the
// one given to ResumeAfter): store it to resume after a restart.
func (p *Producer) LastSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// AppendResult is the server's answer to an append.
type AppendResult struct {
	Seq     uint64 `json:"seq"`      // the event's seq (the original one when deduplicated)
	LastSeq uint64 `json:"last_seq"` // the session's last seq after the append
	// Deduped: the server already had this event; after a retry it means
	// an earlier attempt of the same Append was written.
	Deduped     bool   `json:"deduped"`
	ProducerSeq uint64 `json:"-"` // the producer_seq the event was sent with
	Attempts    int    `json:"-"` // requests sent, retries included
}

// AppendOption sets an optional field of an appended event.
type AppendOption func(map[string]any)

// ExpectedSeq makes the append conditional: refused with
// ErrExpectedSeqConflict unless the session's last seq is n.
func ExpectedSeq(n uint64) AppendOption { return func(b map[string]any) { b["expected_seq"] = n } }

// Source sets the event's source.
func Source(s string) AppendOption { return func(b map[string]any) { b["source"] = s } }

// Metadata sets the event's metadata (the server adds starcite_principal).
func Metadata(m map[string]any) AppendOption { return func(b map[string]any) { b["metadata"] = m } }

// Refs sets the event's refs.
func Refs(m map[string]any) AppendOption { return func(b map[string]any) { b["refs"] = m } }

// IdempotencyKey sets the event's idempotency_key (stored, not deduplicated on).
func IdempotencyKey(k string) AppendOption {
	return func(b map[string]any) { b["idempotency_key"] = k }
}

// Actor sets the event's actor, which must be the token's own.
func Actor(a string) AppendOption { return func(b map[string]any) { b["actor"] = a } }

// Append appends one event of type eventType; payload must encode as a
// JSON object (a json.RawMessage is sent as is). A failed or ambiguous
// attempt is retried with the same producer_seq under the client's
// retry policy. A refusal (*APIError) leaves the producer's seq unused,
// so the next Append takes it.
func (p *Producer) Append(ctx context.Context, eventType string, payload any, opts ...AppendOption) (*AppendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fields := map[string]any{"type": eventType, "payload": payload, "producer_id": p.producerID}
	for _, o := range opts {
		o(fields)
	}
	attempts := 0
	for {
		seq := p.last + 1
		fields["producer_seq"] = seq
		body, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("starcite: encoding event: %w", err)
		}
		raw, out, err := p.c.send(ctx, &request{method: "POST", body: body, resendable: true,
			segments: []string{"v1", "sessions", p.sessionID, "append"}})
		attempts += out.attempts
		switch {
		case err == nil:
			var r AppendResult
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("starcite: decoding append answer: %w", err)
			}
			r.ProducerSeq, r.Attempts = seq, attempts
			p.last, p.unsure = seq, false
			return &r, nil
		case p.unsure && errors.Is(err, ErrProducerReplayConflict):
			// seq holds other content: the earlier append that got no
			// answer was written. This event goes after it.
			p.last, p.unsure = seq, false
			continue
		}
		// seq stays free unless an attempt may have been written.
		if out.ambiguous {
			p.unsure = true
		}
		return nil, err
	}
}
