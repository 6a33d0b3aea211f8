package actors

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
	"github.com/fasthttp/websocket"

	"starcite/dataplane"
	"starcite/edge"
	"starcite/fsm"
)

// TailsName is the registered name of the simple_one_for_one supervisor
// that starts one TailSocket per raw tail WebSocket.
const TailsName gen.Atom = "tails"

// Tail limits and timings (docs/api.md#tail, docs/decisions.md#d9,
// docs/decisions.md#d10, docs/decisions.md#d31).
const (
	replayPage   = 1000             // events per replay read
	catchUpEvery = 5 * time.Second  // compare the store's last seq with the cursor
	pingEvery    = 30 * time.Second // raw tails: server pings keep compliant clients alive
	idleTimeout  = 120 * time.Second
	// inbound frames of a raw tail are ignored; cap what we read
	maxInboundSize = 64 << 10
	// maxFrameBytes bounds a batch frame (frames hold "up to" batch_size
	// events), so one frame can never exceed what the queue admits.
	maxFrameBytes = 1 << 20
	// Live events arriving during replay wait in a buffer; past this many
	// the buffer is dropped and the events are re-read from the store.
	maxBuffered = 4096
	// joinTimeout bounds the lookup of a channel join, so the reply is
	// written within the client's 10 s join timeout.
	joinTimeout = 8 * time.Second
)

// Close codes of the raw tail route (docs/api.md#close-codes).
const (
	closeGoingAway    = 1001 // node shutting down
	closeIdle         = 1002 // 120 s without a frame from the client
	closeInternal     = 1011 // a gap-free replay cannot be produced now
	closeRestart      = 1012 // the node was drained: reconnect to another node
	closeTokenExpired = 4001
)

// StartTail asks the tails supervisor for a raw-route TailSocket; the new
// actor answers the caller with its PID.
type StartTail struct {
	Spec edge.Tail
	Conn *websocket.Conn
	Done chan struct{} // closed once the connection is closed for good
}

type (
	begin        struct{}
	replayStep   struct{}
	catchUp      struct{}
	tokenExpired struct{}
	closeTimeout struct{}
	clientGone   struct{ idle bool }
)

// TailPlane is what a TailSocket reads: package dataplane's *Plane in a
// node, a fake in a test.
type TailPlane interface {
	// Draining reports whether this node was drained (its tails close).
	Draining() bool
	// LastSeq is a session's last seq, without a consensus round trip.
	LastSeq(ctx context.Context, id string) (uint64, bool)
	Events(ctx context.Context, id string, after uint64, limit int, linearizable bool) (dataplane.Page, error)
	// Session is a session's header, for a channel join's checks.
	Session(ctx context.Context, id string) (fsm.SessionInfo, error)
	// SessionState is a session with its current seqs, as of a
	// linearizable read (a channel's resume check).
	SessionState(ctx context.Context, id string) (fsm.SessionInfo, error)
}

// TailSocket is the tail engine: it owns one subscriber's cursor, the
// replay, the buffer of live events that arrive during replay, and the
// token-expiry and catch-up timers. It serves both transports: a raw
// tail (one connection, its own writer) and a tail:<id> channel of a
// ChannelSocket (frames pushed into the socket's shared queue). Socket
// I/O happens elsewhere: reads on the upgrade goroutine, writes in the
// wsOut meta process.
type TailSocket struct {
	act.Actor
	plane TailPlane
	spec  edge.Tail
	out   *wsOut
	ch    *tailChannel // nil on the raw route

	cursor       uint64
	replaying    bool
	replayQueued bool
	buffer       map[uint64]fsm.Event
	overflowed   bool
	closing      bool
	exit         error // set once the actor should end (channels)
}

// NewTailSocket returns the factory of TailSocket actors.
func NewTailSocket(p TailPlane) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &TailSocket{plane: p} }
}

func (t *TailSocket) Init(args ...any) error {
	t.buffer = map[uint64]fsm.Event{}
	switch st := args[0].(type) {
	case StartTail:
		t.spec, t.cursor = st.Spec, st.Spec.Cursor
		t.out = newWSOut(st.Conn, st.Done, pingEvery, closeGoingAway)
		alias, err := t.SpawnMeta(t.out, gen.MetaOptions{})
		if err != nil {
			return err
		}
		if err := t.MonitorAlias(alias); err != nil {
			return err
		}
		if err := t.SendResponse(args[1].(gen.PID), args[2].(gen.Ref), t.PID()); err != nil {
			return err
		}
	case joinTail:
		t.ch = &st.tailChannel
		t.out = st.out
		t.spec = edge.Tail{SessionID: st.join.SessionID, Cursor: st.join.Cursor, BatchSize: st.join.BatchSize,
			Expires: st.principal.Expires}
		t.cursor = st.join.Cursor
	}
	tailSockets.Inc()
	return t.Send(t.PID(), begin{})
}

func (t *TailSocket) Terminate(reason error) { tailSockets.Dec() }

func (t *TailSocket) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case begin:
		if t.ch != nil {
			t.joinChannel()
		} else {
			t.begin()
		}
	case replayStep:
		t.replayQueued = false
		t.replay()
	case drained:
		if t.replaying {
			t.queueReplay()
		}
	case CursorUpdate:
		t.live(m)
	case catchUp:
		t.SendAfter(t.PID(), catchUp{}, catchUpEvery)
		if !t.replaying && !t.closing {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			last, ok := t.plane.LastSeq(ctx, t.spec.SessionID)
			cancel()
			if ok && last > t.cursor {
				t.startReplay()
			}
		}
	case resync:
		t.startReplay()
	case tokenExpired:
		t.end(endTokenExpired)
	case drainTails:
		if t.ch == nil {
			t.closeWith(closeRestart, "node_draining")
		} // a channel's socket closes the connection
	case leaveChannel:
		t.leave(m)
	case clientGone:
		if m.idle && !t.closing {
			t.closeWith(closeIdle, "idle_timeout")
			return nil
		}
		return gen.TerminateReasonNormal
	case gen.MessageDownAlias:
		return gen.TerminateReasonNormal // the writer is gone: so is the socket
	case closeTimeout:
		return gen.TerminateReasonNormal
	}
	return t.exit
}

// begin starts a raw tail, whose request was authorized before the upgrade.
func (t *TailSocket) begin() {
	if t.plane.Draining() {
		// Accepted, then told to go elsewhere: the client reconnects
		// to a node that serves.
		t.closeWith(closeRestart, "node_draining")
		return
	}
	if !t.subscribe() {
		return
	}
	t.armExpiry()
	t.SendAfter(t.PID(), catchUp{}, catchUpEvery)
	t.startReplay()
}

// subscribe registers with the fan-out before the first read: whatever
// commits from here on arrives as a CursorUpdate, whatever committed
// before is in the store. The one place a tail subscribes.
func (t *TailSocket) subscribe() bool {
	if _, err := t.Call(FanoutName, Subscribe{SessionID: t.spec.SessionID, PID: t.PID()}); err != nil {
		t.Log().Error("tail %q: subscribe: %s", t.spec.SessionID, err)
		t.end(endSubscribeFailed)
		return false
	}
	return true
}

// armExpiry ends the tail at the token's exp exactly, no leeway
// (docs/api.md#close-codes).
func (t *TailSocket) armExpiry() {
	if t.spec.Expires == 0 {
		return
	}
	left := time.Until(time.Unix(t.spec.Expires, 0))
	if left <= 0 {
		t.end(endTokenExpired)
		return
	}
	t.SendAfter(t.PID(), tokenExpired{}, left)
}

// live handles a committed event of the session: pushed at once when it
// continues the cursor, else buffered and the gap filled from the store
// (docs/api.md#replay-then-live, docs/decisions.md#d9).
func (t *TailSocket) live(u CursorUpdate) {
	if t.closing || u.Seq <= t.cursor {
		return // already delivered, or before the client's cursor
	}
	if t.replaying || u.Seq > t.cursor+1 {
		if len(t.buffer) >= maxBuffered {
			// The events are in the store: drop the buffer, replay again.
			clear(t.buffer)
			t.overflowed = true
		} else {
			t.buffer[u.Seq] = u.Event
		}
		t.startReplay() // a gap is never pushed over: fill it from the store
		return
	}
	t.emit([]fsm.Event{u.Event}, false)
}

func (t *TailSocket) startReplay() {
	if !t.replaying {
		t.replaying = true
		t.queueReplay()
	}
}

func (t *TailSocket) queueReplay() {
	if !t.replayQueued {
		t.replayQueued = true
		t.Send(t.PID(), replayStep{})
	}
}

// replay reads and sends one page after the cursor, then continues (when
// the writer has room) or finishes.
func (t *TailSocket) replay() {
	if t.closing {
		return
	}
	if t.out.backlogged() && t.out.waitDrain(t.PID()) {
		return // drained{} resumes
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	page, err := t.plane.Events(ctx, t.spec.SessionID, t.cursor, replayPage, false)
	cancel()
	if err != nil {
		t.Log().Warning("tail %q: replay from %d: %s", t.spec.SessionID, t.cursor, err)
		t.end(endUnavailable)
		return
	}
	sent := t.emit(page.Events, true)
	tailReplayed.Add(float64(sent))
	if sent < len(page.Events) {
		// The writer filled up mid-page: the rest is read again once it
		// has drained (reads of the hot tier are cheap).
		if !t.closing && !t.out.waitDrain(t.PID()) {
			t.queueReplay()
		}
		return
	}
	if len(page.Events) == replayPage {
		t.queueReplay()
		return
	}
	t.replaying = false
	// Buffered live events continue the replay where they are contiguous.
	var run []fsm.Event
	for ev, ok := t.buffer[t.cursor+1]; ok; ev, ok = t.buffer[t.cursor+1+uint64(len(run))] {
		run = append(run, ev)
	}
	t.emit(run, true) // what does not fit now is read again below
	for seq := range t.buffer {
		if seq <= t.cursor {
			delete(t.buffer, seq)
		}
	}
	if len(t.buffer) > 0 || t.overflowed {
		// Later events are known but not the ones between: the store has
		// them by now (commits apply in order), so read again.
		t.overflowed = false
		t.startReplay()
	}
}

// emit sends events in frames of up to batch_size events and advances the
// cursor; it returns how many events it sent. Frames never hold a gap:
// callers pass runs starting at cursor+1. With pace, it stops once the
// writer is backlogged (replay); live events are always sent, and a
// client too slow for them is cut off.
func (t *TailSocket) emit(evs []fsm.Event, pace bool) int {
	sent := 0
	for len(evs) > 0 && !t.closing {
		if pace && t.out.backlogged() {
			break
		}
		n := t.frameSize(evs)
		frame := t.frame(evs[:n])
		if !t.out.push(frame) {
			t.end(endSlowConsumer)
			return sent
		}
		t.cursor = evs[n-1].Seq
		evs = evs[n:]
		sent += n
	}
	return sent
}

// frameSize is how many of evs the next frame holds: up to batch_size,
// and up to maxFrameBytes unless a single event is larger.
func (t *TailSocket) frameSize(evs []fsm.Event) int {
	n, size := 1, len(evs[0].JSON)
	for n < min(len(evs), t.spec.BatchSize) && size+len(evs[n].JSON)+1 <= maxFrameBytes {
		size += len(evs[n].JSON) + 1
		n++
	}
	return n
}

// frame renders a run of events for the transport: on the raw route the
// event object itself (batch_size 1) or a JSON array; on a channel an
// events push.
func (t *TailSocket) frame(evs []fsm.Event) []byte {
	if t.ch != nil {
		return edge.EventsPush(t.ch.joinRef, t.ch.topic, evs)
	}
	if t.spec.BatchSize == 1 {
		return evs[0].JSON // shared, immutable bytes
	}
	size := 1
	for _, ev := range evs {
		size += len(ev.JSON) + 1
	}
	frame := make([]byte, 0, size)
	frame = append(frame, '[')
	for i, ev := range evs {
		if i > 0 {
			frame = append(frame, ',')
		}
		frame = append(frame, ev.JSON...)
	}
	return append(frame, ']')
}

// Why a tail ends, mapped per transport by end.
type endReason uint8

const (
	endTokenExpired    endReason = iota // raw 4001; channel token_expired + phx_close
	endUnavailable                      // raw 1011 replay_unavailable; channel phx_error (the client rejoins)
	endSubscribeFailed                  // raw 1011 subscribe_failed; channel phx_error
	endSlowConsumer                     // raw 1013 cut-off; channel phx_error
)

// end finishes the tail for reason.
func (t *TailSocket) end(reason endReason) {
	if t.ch != nil {
		t.endChannel(reason)
		return
	}
	switch reason {
	case endTokenExpired:
		t.closeWith(closeTokenExpired, "token_expired")
	case endUnavailable:
		t.closeWith(closeInternal, "replay_unavailable")
	case endSubscribeFailed:
		t.closeWith(closeInternal, "subscribe_failed")
	case endSlowConsumer:
		if t.closing {
			return
		}
		t.closing = true
		tailCloses.WithLabelValues(strconv.Itoa(closeTryAgain)).Inc()
		frames, bytes := t.out.queued()
		t.Log().Warning("tail %q: slow consumer (%d frames, %d bytes queued): closing", t.spec.SessionID, frames, bytes)
		t.out.cutOff()
		t.SendAfter(t.PID(), closeTimeout{}, closeGrace)
	}
}

// closeWith queues a close frame behind the frames already queued and
// ends the raw tail once the writer has sent it.
func (t *TailSocket) closeWith(code int, reason string) {
	if t.closing {
		return
	}
	t.closing = true
	tailCloses.WithLabelValues(strconv.Itoa(code)).Inc()
	t.out.closeAfter(code, reason)
	t.SendAfter(t.PID(), closeTimeout{}, closeGrace)
}

func (t *TailSocket) HandleInspect(from gen.PID, item ...string) map[string]string {
	frames, bytes := t.out.queued()
	m := map[string]string{
		"session_id":    t.spec.SessionID,
		"cursor":        strconv.FormatUint(t.cursor, 10),
		"batch_size":    strconv.Itoa(t.spec.BatchSize),
		"replaying":     strconv.FormatBool(t.replaying),
		"buffered":      strconv.Itoa(len(t.buffer)),
		"queued_frames": strconv.Itoa(frames),
		"queued_bytes":  strconv.FormatInt(bytes, 10),
		"expires":       strconv.FormatInt(t.spec.Expires, 10),
		"transport":     "raw",
	}
	if t.ch != nil {
		m["transport"] = "channel"
		m["topic"] = t.ch.topic
		m["join_ref"] = t.ch.joinRef.S
	}
	return m
}

// Tails serves upgraded raw tail connections (edge.TailServer): it starts
// the connection's TailSocket and then runs the read loop on the upgrade
// goroutine, which fasthttp requires to outlive the connection.
type Tails struct {
	node atomic.Pointer[gen.Node]
}

// SetNode connects Tails to the running node.
func (s *Tails) SetNode(n gen.Node) { s.node.Store(&n) }

// Serve runs one tail connection until it is closed.
func (s *Tails) Serve(conn *websocket.Conn, spec edge.Tail) {
	node := s.node.Load()
	if node == nil {
		conn.Close()
		return
	}
	done := make(chan struct{})
	v, err := (*node).CallWithTimeout(TailsName, StartTail{Spec: spec, Conn: conn, Done: done}, 5)
	pid, ok := v.(gen.PID)
	if err != nil || !ok {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeInternal, "tail_unavailable"),
			time.Now().Add(time.Second))
		conn.Close()
		return
	}
	extend := func() { conn.SetReadDeadline(time.Now().Add(idleTimeout)) }
	extend()
	conn.SetReadLimit(maxInboundSize)
	conn.SetPongHandler(func(string) error { extend(); return nil })
	ping := conn.PingHandler()
	conn.SetPingHandler(func(data string) error { extend(); return ping(data) })
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			var ne net.Error
			(*node).Send(pid, clientGone{idle: errors.As(err, &ne) && ne.Timeout()})
			break
		}
		io.Copy(io.Discard, r) // inbound frames are ignored (docs/api.md#keepalive)
		extend()
	}
	<-done
}
