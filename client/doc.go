// Package client is the Go client of a Starcite cluster: sessions, safe
// appends and resumable tails over the HTTP and WebSocket API described
// in docs/api.md, and used by the `starcite` CLI commands (app/cli).
//
// # Module
//
// The package is its own Go module, starcite/client, inside the server's
// repository, so that an application imports it without the server's
// dependencies (Raft, actors, fasthttp): it needs only the standard
// library and github.com/coder/websocket. The module path has no host
// name, like the server's own module (starcite); a program outside the
// repository points at a checkout with a replace directive:
//
//	require starcite/client v0.0.0
//	replace starcite/client => ../starcite/client
//
// The server module imports it the same way (its go.mod replaces it with
// ./client) for the CLI and the real-node tests under test/client. The
// client module never imports the server module.
//
// # Overview
//
// A [Client] talks to one or more nodes (New's URL plus [WithNodes]); a
// request that cannot reach a node moves on to the next. Tokens are
// static ([WithToken]) or refreshed by a function of the application
// ([WithTokenRefresh]), called again on a 401 answer and when a tail is
// closed with 4001 token_expired.
//
//   - [Client.CreateSession], [Client.GetSession], [Client.ListSessions]
//     (an iterator over pages) and [Client.Events] (one page of the log).
//   - [Client.Producer] returns a [Producer] whose Append assigns
//     producer_seq, retries a failed or ambiguous append with the same
//     producer_seq (the server deduplicates it), and can resume from a
//     stored producer_seq.
//   - [Client.Tail] is an iterator of events: replay from a cursor, then
//     live; it reconnects (to the next node) after a drop, from the last
//     event it delivered, so every seq is delivered exactly once and in
//     order. It speaks the raw tail route, or with [PhoenixSocket] the
//     Phoenix Channels socket.
//
// Every error answer of the API is an [*APIError]; errors.Is matches it
// against the sentinel of its code (ErrSessionNotFound, …). A request
// that reached no node wraps [ErrUnreachable]; a tail closed for good is
// a [*CloseError] (ErrTailUnavailable for 1011, ErrTokenExpired for 4001
// without a refresh function).
package client
