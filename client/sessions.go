package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Session is a session as the server describes it. The routes return
// different subsets (docs/api.md#sessions): create has LastSeq (0) and
// no TenantID; list items have TenantID and no LastSeq; GetSession has
// both and ArchivedSeq.
type Session struct {
	ID               string         `json:"id"`
	Title            *string        `json:"title"` // nil when the session has none
	TenantID         string         `json:"tenant_id,omitempty"`
	CreatorPrincipal *Principal     `json:"creator_principal"`
	Metadata         map[string]any `json:"metadata"`
	CreatedAt        time.Time      `json:"created_at"`
	LastSeq          uint64         `json:"last_seq"`
	ArchivedSeq      uint64         `json:"archived_seq"`
	// Raw is the session object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// Principal identifies who created a session.
type Principal struct {
	TenantID string `json:"tenant_id"`
	ID       string `json:"id"`
	Type     string `json:"type"` // user, agent or service
}

// Event is one event of a session's log, as tails and the events route
// deliver it.
type Event struct {
	Seq            uint64          `json:"seq"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	Actor          string          `json:"actor"`
	ProducerID     string          `json:"producer_id"`
	ProducerSeq    uint64          `json:"producer_seq"`
	Source         string          `json:"source"` // "" when not given (null on the wire)
	Metadata       map[string]any  `json:"metadata"`
	Refs           map[string]any  `json:"refs"`
	IdempotencyKey string          `json:"idempotency_key"` // "" when not given
	InsertedAt     time.Time       `json:"inserted_at"`
	TenantID       string          `json:"tenant_id"`
	// Raw is the event object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

func decodeSession(raw []byte) (*Session, error) {
	var s Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("starcite: decoding session: %w", err)
	}
	s.Raw = append(json.RawMessage(nil), raw...)
	return &s, nil
}

func decodeEvent(raw json.RawMessage) (Event, error) {
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return Event{}, fmt.Errorf("starcite: decoding event: %w", err)
	}
	e.Raw = raw
	return e, nil
}

// NewSession is what CreateSession sends; every field is optional.
type NewSession struct {
	ID       string         // "" lets the server generate ses_…
	Title    string         // "" for none
	Metadata map[string]any // stored verbatim
}

// CreateSession creates a session. A session that exists is
// ErrSessionExists.
func (c *Client) CreateSession(ctx context.Context, s NewSession) (*Session, error) {
	body := map[string]any{}
	if s.ID != "" {
		body["id"] = s.ID
	}
	if s.Title != "" {
		body["title"] = s.Title
	}
	if s.Metadata != nil {
		body["metadata"] = s.Metadata
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("starcite: encoding session: %w", err)
	}
	raw, _, err := c.send(ctx, &request{method: "POST", segments: []string{"v1", "sessions"}, body: b})
	if err != nil {
		return nil, err
	}
	return decodeSession(raw)
}

// GetSession returns a session with its LastSeq and ArchivedSeq.
func (c *Client) GetSession(ctx context.Context, id string) (*Session, error) {
	raw, _, err := c.send(ctx, &request{method: "GET", segments: []string{"v1", "sessions", id}, resendable: true})
	if err != nil {
		return nil, err
	}
	return decodeSession(raw)
}

// ListOptions selects the sessions ListSessions returns.
type ListOptions struct {
	Limit    int               // sessions per page, 1..1000; 0 for the server's default (100)
	Cursor   string            // start after this session id; "" from the first
	Metadata map[string]string // exact-match filters on string metadata values
}

// SessionPage is one page of ListSessions.
type SessionPage struct {
	Sessions   []Session
	NextCursor string // "" on the last page
}

// ListSessions iterates over the pages of the sessions the token may
// read, in ascending id order. Iteration stops after the last page or
// after yielding an error.
func (c *Client) ListSessions(ctx context.Context, o ListOptions) iter.Seq2[SessionPage, error] {
	return func(yield func(SessionPage, error) bool) {
		q := url.Values{}
		if o.Limit != 0 {
			q.Set("limit", strconv.Itoa(o.Limit))
		}
		for k, v := range o.Metadata {
			// The dotted filter form; a key that form cannot carry would be
			// ignored by the server, widening the list: refuse it here.
			if k == "" || strings.ContainsAny(k, "[]") {
				yield(SessionPage{}, fmt.Errorf("starcite: metadata filter key %q: want a non-empty key without brackets", k))
				return
			}
			q.Set("metadata."+k, v)
		}
		cursor := o.Cursor
		for {
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			page, err := c.listPage(ctx, q)
			if !yield(page, err) || err != nil || page.NextCursor == "" {
				return
			}
			cursor = page.NextCursor
		}
	}
}

func (c *Client) listPage(ctx context.Context, q url.Values) (SessionPage, error) {
	raw, _, err := c.send(ctx, &request{method: "GET", segments: []string{"v1", "sessions"}, query: q, resendable: true})
	if err != nil {
		return SessionPage{}, err
	}
	var wire struct {
		Sessions   []json.RawMessage `json:"sessions"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return SessionPage{}, fmt.Errorf("starcite: decoding session list: %w", err)
	}
	var page SessionPage
	if wire.NextCursor != nil {
		page.NextCursor = *wire.NextCursor
	}
	for _, r := range wire.Sessions {
		s, err := decodeSession(r)
		if err != nil {
			return SessionPage{}, err
		}
		page.Sessions = append(page.Sessions, *s)
	}
	return page, nil
}

// EventPage is one page of a session's log.
type EventPage struct {
	Events  []Event
	LastSeq uint64 // the session's last seq when the page was read
}

// Events reads up to limit events (1..1000; 0 for the server's default,
// 100) with seq > cursor. The next page starts after the last event's
// seq; the log is read to its end when that reaches LastSeq.
func (c *Client) Events(ctx context.Context, sessionID string, cursor uint64, limit int) (*EventPage, error) {
	q := url.Values{"cursor": {strconv.FormatUint(cursor, 10)}}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	raw, _, err := c.send(ctx, &request{method: "GET", segments: []string{"v1", "sessions", sessionID, "events"},
		query: q, resendable: true})
	if err != nil {
		return nil, err
	}
	var wire struct {
		Events  []json.RawMessage `json:"events"`
		LastSeq uint64            `json:"last_seq"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("starcite: decoding events: %w", err)
	}
	page := &EventPage{LastSeq: wire.LastSeq, Events: make([]Event, 0, len(wire.Events))}
	for _, r := range wire.Events {
		e, err := decodeEvent(r)
		if err != nil {
			return nil, err
		}
		page.Events = append(page.Events, e)
	}
	return page, nil
}
