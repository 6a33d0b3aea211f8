package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"time"
)

// TailOption configures a Tail.
type TailOption func(*tailRequest)

// BatchSize asks the server for frames of up to n events (1..1000,
// default 1). Tail yields events one by one either way.
func BatchSize(n int) TailOption { return func(r *tailRequest) { r.batchSize = n } }

// PhoenixSocket tails over the Phoenix Channels socket /v1/socket (the
// channel tail:<session_id>) instead of the raw route
// /v1/sessions/{id}/tail. The events and guarantees are the same; a
// channel failure (phx_error) is retried like a drop, and reported as
// ErrTailUnavailable when the attempts run out.
func PhoenixSocket() TailOption { return func(r *tailRequest) { r.transport = phoenixTail{} } }

// tailRequest is what a transport needs to open one tail connection.
type tailRequest struct {
	sessionID string
	cursor    uint64 // the last seq delivered: the connection starts after it
	batchSize int
	token     string
	transport tailTransport
	// pingEvery: how often the client probes the server (a WebSocket ping
	// on the raw route, a heartbeat on the socket); a probe without an
	// answer within pingEvery drops the connection (a dead peer).
	pingEvery time.Duration
}

// tailTransport opens tail connections: the raw route (rawTail) or the
// Phoenix Channels socket (phoenixTail). Tail owns reconnection, cursor
// and dedupe.
type tailTransport interface {
	open(ctx context.Context, c *Client, node *url.URL, r tailRequest) (tailConn, error)
}

// tailConn is one open tail connection.
type tailConn interface {
	// next returns the events of the next frame, in order. A close by
	// the server is a *CloseError.
	next(ctx context.Context) ([]Event, error)
	close()
}

// maxGaps: a server that skips seqs this many times in a row, each time
// after a reconnect, is reported (ErrGap) rather than retried forever.
const maxGaps = 3

// Tail iterates over the events of a session with seq > cursor: the
// stored ones, then live ones as they are appended, until ctx ends (its
// error is yielded last) or an error that retrying cannot fix.
//
// Each event is yielded once, in seq order, with no seq skipped. After a
// dropped connection (node killed, restarted or drained, network cut)
// Tail reconnects, moving to the next node, from the last event it
// yielded; the client's retry policy bounds consecutive failed attempts
// (counted afresh after each event delivered). A close 4001 fetches a
// new token (WithTokenRefresh) and goes on. Errors: an HTTP refusal is an
// *APIError (ErrSessionNotFound, ErrForbiddenScope, …); close 1011
// replay_unavailable is ErrTailUnavailable (other 1011s are retried like
// a drop), 4001 without a refresh function ErrTokenExpired,
// other close codes a *CloseError; no node reachable wraps
// ErrUnreachable. A close 1000 ends the iteration without an error.
func (c *Client) Tail(ctx context.Context, sessionID string, cursor uint64, opts ...TailOption) iter.Seq2[Event, error] {
	r := tailRequest{sessionID: sessionID, cursor: cursor, batchSize: 1, pingEvery: 30 * time.Second, transport: rawTail{}}
	for _, o := range opts {
		o(&r)
	}
	return func(yield func(Event, error) bool) {
		t := tailer{c: c, r: r, yield: yield}
		if err := t.run(ctx); err != nil {
			yield(Event{}, err)
		}
	}
}

// tailer is the state of one Tail iteration.
type tailer struct {
	c        *Client
	r        tailRequest
	yield    func(Event, error) bool
	failures int // consecutive connection attempts without an event
	gaps     int // consecutive connections that skipped a seq
	stopped  bool
}

// run connects and reconnects until the consumer stops (nil), the
// stream ends (nil) or fails for good.
func (t *tailer) run(ctx context.Context) error {
	refreshed := false // one refresh per failed handshake sequence
	for {
		i, node := t.c.node()
		token, err := t.c.tokens.get(ctx)
		if err != nil {
			return err
		}
		t.r.token = token
		conn, err := t.r.transport.open(ctx, t.c, node, t.r)
		if err == nil {
			refreshed = false
			err = t.read(ctx, conn)
			conn.close()
			if err == nil || t.stopped {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var closed *CloseError
		var refused *APIError
		errors.As(err, &closed)
		errors.As(err, &refused)
		expired := closed != nil && closed.Code == 4001
		if expired || errors.Is(err, ErrUnauthorized) && !refreshed {
			// A new token, then at once the same node again; a refresh
			// function that keeps returning dead tokens runs out of
			// attempts like a failing node.
			if _, ok, rerr := t.c.tokens.replace(ctx, token); rerr != nil {
				return rerr
			} else if !ok {
				return err
			}
			refreshed = !expired
			if t.failures++; t.failures >= t.c.retry.Attempts {
				return err
			}
			continue
		}
		switch {
		case errors.Is(err, ErrGap):
			if t.gaps++; t.gaps >= maxGaps {
				return err
			}
		case closed != nil && !reconnectable(closed):
			return closed
		case refused != nil && !transient(refused, true):
			return refused
		}
		if t.failures++; t.failures >= t.c.retry.Attempts {
			if refused != nil || closed != nil {
				return err
			}
			return fmt.Errorf("starcite: tail %s: %w: %w", t.r.sessionID, ErrUnreachable, err)
		}
		t.c.failover(i)
		if err := t.c.retry.backoff(ctx, t.failures); err != nil {
			return err
		}
	}
}

// read yields the events of one connection until it fails; nil when the
// server ended the stream (1000) or the consumer stopped.
func (t *tailer) read(ctx context.Context, conn tailConn) error {
	for {
		events, err := conn.next(ctx)
		if err != nil {
			var closed *CloseError
			if errors.As(err, &closed) && closed.Code == 1000 {
				return nil
			}
			return err
		}
		for _, e := range events {
			switch {
			case e.Seq <= t.r.cursor:
				continue // already delivered
			case e.Seq != t.r.cursor+1:
				return fmt.Errorf("starcite: tail %s: %w: expected seq %d, got %d",
					t.r.sessionID, ErrGap, t.r.cursor+1, e.Seq)
			}
			t.r.cursor = e.Seq
			t.failures, t.gaps = 0, 0
			if !t.yield(e, nil) {
				t.stopped = true
				return nil
			}
		}
	}
}

// reconnectable reports whether a tail closed with e should resume from
// its cursor (docs/api.md#close-codes): the node going away,
// restarting or draining (1001, 1012), shedding a slow consumer (1013),
// idle or protocol trouble (1002), the connection ending without a close
// frame (1005, 1006), or a node that could not run the socket (1011 for
// any reason but replay_unavailable). A replay the cluster cannot make
// gap-free (1011 replay_unavailable) is the caller's to handle.
func reconnectable(e *CloseError) bool {
	switch e.Code {
	case 1001, 1002, 1005, 1006, 1012, 1013, 1014:
		return true
	case 1011:
		return e.Reason != "replay_unavailable"
	}
	return false
}
