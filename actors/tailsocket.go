package actors

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
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
// that starts one TailSocket per WebSocket.
const TailsName gen.Atom = "tails"

// Tail socket limits and timings (docs/api.md#tail, docs/decisions.md#d9,
// docs/decisions.md#d10, docs/decisions.md#d31).
const (
	replayPage     = 1000             // events per replay read
	catchUpEvery   = 5 * time.Second  // compare the store's last seq with the cursor
	pingEvery      = 30 * time.Second // server pings keep compliant clients alive
	idleTimeout    = 120 * time.Second
	writeTimeout   = 10 * time.Second
	closeGrace     = 5 * time.Second // after a close frame is queued, end the actor regardless
	maxInboundSize = 64 << 10        // inbound frames are ignored; cap what we read
	// Flow control: replay pauses while more than replayResume frames or
	// replayResumeBytes wait to be written, and resumes when the writer
	// has drained below both.
	replayResume      = 256
	replayResumeBytes = 4 << 20
	// A socket whose queue exceeds these is a slow consumer: closed with
	// 1013 "slow_consumer" so its client reconnects from its cursor.
	maxQueuedFrames = 4096
	maxQueuedBytes  = 32 << 20
	// maxFrameBytes bounds a batch frame (frames hold "up to" batch_size
	// events), so one frame can never exceed what the queue admits.
	maxFrameBytes = 1 << 20
	// Live events arriving during replay wait in a buffer; past this many
	// the buffer is dropped and the events are re-read from the store.
	maxBuffered = 4096
)

// Close codes the server uses (docs/api.md#close-codes).
const (
	closeGoingAway    = 1001 // node shutting down
	closeIdle         = 1002 // 120 s without a frame from the client
	closeInternal     = 1011 // a gap-free replay cannot be produced now
	closeRestart      = 1012 // the node was drained: reconnect to another node
	closeTryAgain     = 1013 // slow consumer
	closeTokenExpired = 4001
)

// StartTail asks the tails supervisor for a TailSocket; the new actor
// answers the caller with its PID.
type StartTail struct {
	Spec edge.Tail
	Conn *websocket.Conn
	Done chan struct{} // closed once the connection is closed for good
}

type (
	begin        struct{}
	replayStep   struct{}
	drained      struct{}
	catchUp      struct{}
	tokenExpired struct{}
	closeTimeout struct{}
	clientGone   struct{ idle bool }
)

// outbox counts what the socket queued and the writer has not written
// yet: shared by the two so the socket can pace replay and detect a
// client that does not read, without a message per frame.
type outbox struct {
	frames  atomic.Int64
	bytes   atomic.Int64
	waiting atomic.Bool // the socket waits for the queue to drain
}

// backlogged reports whether replay should wait for the writer.
func (b *outbox) backlogged() bool {
	return b.frames.Load() > replayResume || b.bytes.Load() > replayResumeBytes
}

// waitDrain arms the writer's drained signal; it reports false when the
// queue drained meanwhile (the signal may then never come: go on).
func (b *outbox) waitDrain() bool {
	b.waiting.Store(true)
	if b.backlogged() {
		return true
	}
	b.waiting.Store(false)
	return false
}

// TailPlane is what a TailSocket reads: package dataplane's *Plane in a
// node, a fake in a test.
type TailPlane interface {
	// Draining reports whether this node was drained (its tails close).
	Draining() bool
	// LastSeq is a session's last seq, without a consensus round trip.
	LastSeq(ctx context.Context, id string) (uint64, bool)
	Events(ctx context.Context, id string, after uint64, limit int, linearizable bool) (dataplane.Page, error)
}

// TailSocket owns one WebSocket tail: its cursor, the replay, the buffer
// of live events that arrive during replay, the token-expiry and catch-up
// timers. Socket I/O happens elsewhere: the upgrade goroutine reads
// (Tails.Serve), a writer meta process writes.
type TailSocket struct {
	act.Actor
	plane TailPlane
	spec  edge.Tail
	conn  *websocket.Conn
	out   gen.Alias
	box   *outbox

	cursor       uint64
	replaying    bool
	replayQueued bool
	buffer       map[uint64]fsm.Event
	overflowed   bool
	closing      bool
}

// NewTailSocket returns the factory of TailSocket actors.
func NewTailSocket(p TailPlane) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &TailSocket{plane: p} }
}

func (t *TailSocket) Init(args ...any) error {
	st := args[0].(StartTail)
	t.spec, t.conn, t.cursor = st.Spec, st.Conn, st.Spec.Cursor
	t.box = &outbox{}
	t.buffer = map[uint64]fsm.Event{}
	w := &wsWriter{conn: st.Conn, box: t.box, owner: t.PID(), done: st.Done, stop: make(chan struct{})}
	alias, err := t.SpawnMeta(w, gen.MetaOptions{})
	if err != nil {
		return err
	}
	t.out = alias
	if err := t.MonitorAlias(alias); err != nil {
		return err
	}
	tailSockets.Inc()
	if err := t.SendResponse(args[1].(gen.PID), args[2].(gen.Ref), t.PID()); err != nil {
		return err
	}
	return t.Send(t.PID(), begin{})
}

func (t *TailSocket) Terminate(reason error) { tailSockets.Dec() }

func (t *TailSocket) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case begin:
		if t.plane.Draining() {
			// Accepted, then told to go elsewhere: the client reconnects
			// to a node that serves.
			t.closeWith(closeRestart, "node_draining")
			return nil
		}
		// Subscribe before the first read: whatever commits from here on
		// arrives as a CursorUpdate, whatever committed before is in the store.
		if _, err := t.Call(FanoutName, Subscribe{SessionID: t.spec.SessionID, PID: t.PID()}); err != nil {
			t.Log().Error("tail %q: subscribe: %s", t.spec.SessionID, err)
			t.closeWith(closeInternal, "subscribe_failed")
			return nil
		}
		if t.spec.Expires > 0 {
			// At exp exactly, no leeway (docs/api.md#close-codes).
			left := time.Until(time.Unix(t.spec.Expires, 0))
			if left <= 0 {
				t.closeWith(closeTokenExpired, "token_expired")
				return nil
			}
			t.SendAfter(t.PID(), tokenExpired{}, left)
		}
		t.SendAfter(t.PID(), catchUp{}, catchUpEvery)
		t.startReplay()
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
		t.closeWith(closeTokenExpired, "token_expired")
	case drainTails:
		t.closeWith(closeRestart, "node_draining")
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
	return nil
}

// live handles a committed event of the session
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
	if t.box.backlogged() && t.box.waitDrain() {
		return // drained{} resumes
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	page, err := t.plane.Events(ctx, t.spec.SessionID, t.cursor, replayPage, false)
	cancel()
	if err != nil {
		t.Log().Warning("tail %q: replay from %d: %s", t.spec.SessionID, t.cursor, err)
		t.closeWith(closeInternal, "replay_unavailable")
		return
	}
	sent := t.emit(page.Events, true)
	tailReplayed.Add(float64(sent))
	if sent < len(page.Events) {
		// The writer filled up mid-page: the rest is read again once it
		// has drained (reads of the hot tier are cheap).
		if !t.box.waitDrain() {
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

// emit sends events as frames of up to batch_size events and advances the
// cursor; it returns how many events it sent. Frames never hold a gap:
// callers pass runs starting at cursor+1. With pace, it stops once the
// writer is backlogged (replay); live events are always sent, and a
// client too slow for them is cut off.
func (t *TailSocket) emit(evs []fsm.Event, pace bool) int {
	sent := 0
	for len(evs) > 0 && !t.closing {
		if pace && t.box.backlogged() {
			break
		}
		n := 1
		var frame []byte
		if t.spec.BatchSize == 1 {
			frame = evs[0].JSON // shared, immutable bytes
		} else {
			// Up to batch_size events, and up to maxFrameBytes unless a
			// single event is larger.
			size := 2 + len(evs[0].JSON)
			for n < min(len(evs), t.spec.BatchSize) && size+len(evs[n].JSON)+1 <= maxFrameBytes {
				size += len(evs[n].JSON) + 1
				n++
			}
			frame = make([]byte, 0, size)
			frame = append(frame, '[')
			for i, ev := range evs[:n] {
				if i > 0 {
					frame = append(frame, ',')
				}
				frame = append(frame, ev.JSON...)
			}
			frame = append(frame, ']')
		}
		t.cursor = evs[n-1].Seq
		evs = evs[n:]
		sent += n
		frames := t.box.frames.Add(1)
		bytes := t.box.bytes.Add(int64(len(frame)))
		if frames > maxQueuedFrames || bytes > maxQueuedBytes {
			t.box.frames.Add(-1)
			t.box.bytes.Add(-int64(len(frame)))
			t.slowConsumer()
			return sent
		}
		if err := t.Send(t.out, wsFrame(frame)); err != nil {
			t.closeWith(closeInternal, "writer_unavailable")
			return sent
		}
	}
	return sent
}

// slowConsumer ends a socket whose client stopped reading. The writer is
// stuck behind a full TCP window, so the close frame is written directly
// (allowed concurrently with the writer) and the connection is closed,
// which fails the writer's pending write and ends it.
func (t *TailSocket) slowConsumer() {
	if t.closing {
		return
	}
	t.closing = true
	tailCloses.WithLabelValues(strconv.Itoa(closeTryAgain)).Inc()
	t.Log().Warning("tail %q: slow consumer (%d frames, %d bytes queued): closing", t.spec.SessionID,
		t.box.frames.Load(), t.box.bytes.Load())
	t.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeTryAgain, "slow_consumer"),
		time.Now().Add(time.Second))
	t.conn.Close()
	t.SendAfter(t.PID(), closeTimeout{}, closeGrace)
}

// closeWith queues a close frame behind the frames already queued and
// ends the socket once the writer has sent it.
func (t *TailSocket) closeWith(code int, reason string) {
	if t.closing {
		return
	}
	t.closing = true
	tailCloses.WithLabelValues(strconv.Itoa(code)).Inc()
	t.Send(t.out, wsClose{code: code, reason: reason})
	t.SendAfter(t.PID(), closeTimeout{}, closeGrace)
}

func (t *TailSocket) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{
		"session_id":    t.spec.SessionID,
		"cursor":        strconv.FormatUint(t.cursor, 10),
		"batch_size":    strconv.Itoa(t.spec.BatchSize),
		"replaying":     strconv.FormatBool(t.replaying),
		"buffered":      strconv.Itoa(len(t.buffer)),
		"queued_frames": strconv.FormatInt(t.box.frames.Load(), 10),
		"queued_bytes":  strconv.FormatInt(t.box.bytes.Load(), 10),
		"expires":       strconv.FormatInt(t.spec.Expires, 10),
	}
}

type (
	wsFrame []byte
	wsClose struct {
		code   int
		reason string
	}
)

// wsWriter is the meta process that writes a TailSocket's frames, so a
// slow network never blocks the actor's mailbox. Start runs the ping
// ticker; HandleMessage writes frames and the close frame.
type wsWriter struct {
	gen.MetaProcess
	conn      *websocket.Conn
	box       *outbox
	owner     gen.PID
	done      chan struct{}
	stop      chan struct{}
	closeSent atomic.Bool
	once      sync.Once
}

func (w *wsWriter) Init(p gen.MetaProcess) error { w.MetaProcess = p; return nil }

func (w *wsWriter) Start() error {
	tick := time.NewTicker(pingEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return nil
		case <-tick.C:
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return nil // the connection is gone; Terminate cleans up
			}
		}
	}
}

func (w *wsWriter) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case wsFrame:
		w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		err := w.conn.WriteMessage(websocket.TextMessage, m)
		w.box.frames.Add(-1)
		w.box.bytes.Add(-int64(len(m)))
		if !w.box.backlogged() && w.box.waiting.CompareAndSwap(true, false) {
			w.Send(w.owner, drained{})
		}
		return err
	case wsClose:
		w.closeSent.Store(true)
		w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(m.code, m.reason),
			time.Now().Add(2*time.Second))
		return gen.TerminateReasonNormal
	}
	return nil
}

func (w *wsWriter) HandleCall(gen.PID, gen.Ref, any) (any, error) { return nil, nil }

func (w *wsWriter) Terminate(reason error) {
	w.once.Do(func() {
		if !w.closeSent.Load() && errors.Is(reason, gen.TerminateReasonShutdown) {
			w.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(closeGoingAway, "server_shutdown"), time.Now().Add(time.Second))
		}
		w.conn.Close()
		close(w.stop)
		close(w.done) // releases the upgrade goroutine
	})
}

func (w *wsWriter) HandleInspect(gen.PID, ...string) map[string]string { return nil }

// Tails serves upgraded tail connections (edge.TailServer): it starts the
// connection's TailSocket and then runs the read loop on the upgrade
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
