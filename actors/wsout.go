package actors

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ergo.services/ergo/gen"
	"github.com/fasthttp/websocket"
)

// Outbound limits of one WebSocket, shared by every sender on it.
const (
	// Senders that pace themselves (replay) pause while more than
	// resumeFrames or resumeBytes wait, and resume below both.
	resumeFrames = 256
	resumeBytes  = 4 << 20
	// A push beyond these is refused: the raw tail closes as a slow
	// consumer, a channel ends with phx_error.
	maxQueuedFrames = 4096
	maxQueuedBytes  = 32 << 20
	// Control frames (replies, channel ends) are queued beyond those, up
	// to twice as much; past that the client reads nothing at all and the
	// connection is cut (1013 slow_consumer).
	hardQueuedFrames = 2 * maxQueuedFrames
	hardQueuedBytes  = 2 * maxQueuedBytes

	writeTimeout = 10 * time.Second
	closeGrace   = 5 * time.Second // after a close is queued, the owner ends regardless
)

const closeTryAgain = 1013 // slow consumer: reconnect and resume from the cursor

// wsOut is the outbound side of one WebSocket: a queue of frames in two
// lanes and the meta process that writes them. Any process of the node
// may push (a channel socket and its channels share one); the writer
// drains the urgent lane first, so a heartbeat reply never waits behind a
// replay. Frames of one lane keep the order they were pushed in.
type wsOut struct {
	gen.MetaProcess
	conn      *websocket.Conn
	done      chan struct{} // closed once the connection is closed for good
	ping      time.Duration // 0: no server pings
	shutdown  int           // close code when the node stops the writer
	closeSent atomic.Bool

	mu      sync.Mutex
	urgent  [][]byte
	frames  [][]byte
	bytes   int64
	waiters map[gen.PID]struct{}
	closing *wsClose // written once both lanes are empty
	stopped bool     // no frame is accepted any more
	wake    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

type wsClose struct {
	code   int
	reason string
}

// drained tells a process that waited (waitDrain) that the queue has room.
type drained struct{}

func newWSOut(conn *websocket.Conn, done chan struct{}, ping time.Duration, shutdown int) *wsOut {
	return &wsOut{conn: conn, done: done, ping: ping, shutdown: shutdown,
		waiters: map[gen.PID]struct{}{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// push queues a frame unless the queue is over its limits.
func (o *wsOut) push(frame []byte) bool {
	return o.enqueue(frame, false, maxQueuedFrames, maxQueuedBytes)
}

// pushControl queues a frame that must not be dropped; false when the
// client has stopped reading altogether (the connection is then cut).
func (o *wsOut) pushControl(frame []byte) bool {
	if o.enqueue(frame, false, hardQueuedFrames, hardQueuedBytes) {
		return true
	}
	o.cutOff()
	return false
}

// pushUrgent queues a frame ahead of every non-urgent one.
func (o *wsOut) pushUrgent(frame []byte) bool {
	if o.enqueue(frame, true, hardQueuedFrames, hardQueuedBytes) {
		return true
	}
	o.cutOff()
	return false
}

// enqueue reports false only when the frame is over the limits. Once the
// connection is closing or gone, frames are dropped: nobody reads them.
func (o *wsOut) enqueue(frame []byte, urgent bool, maxFrames int, maxBytes int64) bool {
	o.mu.Lock()
	if o.stopped || o.closing != nil {
		o.mu.Unlock()
		return true
	}
	n := len(o.urgent) + len(o.frames)
	ok := n < maxFrames && o.bytes+int64(len(frame)) <= maxBytes
	if ok {
		if urgent {
			o.urgent = append(o.urgent, frame)
		} else {
			o.frames = append(o.frames, frame)
		}
		o.bytes += int64(len(frame))
	}
	o.mu.Unlock()
	if ok {
		o.signal()
	}
	return ok
}

func (o *wsOut) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// backlogged reports whether a paced sender should wait.
func (o *wsOut) backlogged() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.backloggedLocked()
}

func (o *wsOut) backloggedLocked() bool {
	return len(o.urgent)+len(o.frames) > resumeFrames || o.bytes > resumeBytes
}

// waitDrain registers pid for a drained message; it reports false when
// the queue is no longer backlogged (go on now: the message may never come).
func (o *wsOut) waitDrain(pid gen.PID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.backloggedLocked() {
		return false
	}
	o.waiters[pid] = struct{}{}
	return true
}

// queued returns the frames and bytes waiting.
func (o *wsOut) queued() (int, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.urgent) + len(o.frames), o.bytes
}

// closeAfter queues a close frame behind the frames already queued; the
// writer ends after writing it. Later pushes are dropped.
func (o *wsOut) closeAfter(code int, reason string) {
	o.mu.Lock()
	if o.closing == nil && !o.stopped {
		o.closing = &wsClose{code: code, reason: reason}
	}
	o.mu.Unlock()
	o.signal()
}

// cutOff ends a connection whose client stopped reading: the writer is
// stuck behind a full TCP window, so the close frame is written directly
// (allowed concurrently with a pending write) and the connection closed,
// which fails that write and ends the writer.
func (o *wsOut) cutOff() {
	o.mu.Lock()
	first := !o.stopped
	o.stopped = true
	o.mu.Unlock()
	if first {
		o.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeTryAgain, "slow_consumer"),
			time.Now().Add(time.Second))
		closeConn(o.conn)
	}
}

// closeConn closes the TCP connection under a WebSocket. fasthttp hands
// an upgraded connection over wrapped in a type whose Close does nothing:
// it closes the connection itself when the upgrade handler returns, and
// that handler is the read loop, blocked in a read until the client sends
// something or the idle limit passes. Closing the wrapped connection ends
// that read at once and tells the client, instead of leaving it waiting
// for the rest of a frame the writer gave up on.
func closeConn(c *websocket.Conn) {
	nc := c.NetConn()
	if h, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = h.UnsafeConn()
	}
	nc.Close()
}

// next takes the frame to write, or the close once the lanes are empty;
// it blocks until there is one or the writer is stopped.
func (o *wsOut) next(tick <-chan time.Time) (frame []byte, cl *wsClose, ok bool) {
	for {
		o.mu.Lock()
		switch {
		case o.stopped:
			o.mu.Unlock()
			return nil, nil, false
		case len(o.urgent) > 0:
			frame, o.urgent[0] = o.urgent[0], nil
			o.urgent = o.urgent[1:]
		case len(o.frames) > 0:
			frame, o.frames[0] = o.frames[0], nil
			o.frames = o.frames[1:]
		case o.closing != nil:
			cl = o.closing
		}
		o.mu.Unlock()
		if frame != nil || cl != nil {
			return frame, cl, true
		}
		select {
		case <-o.wake:
		case <-o.stop:
			return nil, nil, false
		case <-tick:
			if err := o.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return nil, nil, false
			}
		}
	}
}

// wrote accounts for a written frame and returns whom to wake.
func (o *wsOut) wrote(size int) []gen.PID {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bytes -= int64(size)
	if len(o.waiters) == 0 || o.backloggedLocked() {
		return nil
	}
	pids := make([]gen.PID, 0, len(o.waiters))
	for pid := range o.waiters {
		pids = append(pids, pid)
	}
	clear(o.waiters)
	return pids
}

// Meta process: Start writes until the connection ends or the close is
// written; the end of the meta (DownAlias to its owner) ends the owner.

func (o *wsOut) Init(p gen.MetaProcess) error { o.MetaProcess = p; return nil }

func (o *wsOut) Start() error {
	var tick <-chan time.Time // nil: never
	if o.ping > 0 {
		t := time.NewTicker(o.ping)
		defer t.Stop()
		tick = t.C
	}
	for {
		frame, cl, ok := o.next(tick)
		if !ok {
			return nil
		}
		if cl != nil {
			o.closeSent.Store(true)
			o.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(cl.code, cl.reason),
				time.Now().Add(2*time.Second))
			return nil
		}
		o.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		err := o.conn.WriteMessage(websocket.TextMessage, frame)
		for _, pid := range o.wrote(len(frame)) {
			o.Send(pid, drained{})
		}
		if err != nil {
			return nil // the connection is gone; Terminate cleans up
		}
	}
}

func (o *wsOut) HandleMessage(gen.PID, any) error              { return nil }
func (o *wsOut) HandleCall(gen.PID, gen.Ref, any) (any, error) { return nil, nil }

func (o *wsOut) Terminate(reason error) {
	o.once.Do(func() {
		o.mu.Lock()
		o.stopped = true
		o.mu.Unlock()
		if !o.closeSent.Load() && errors.Is(reason, gen.TerminateReasonShutdown) {
			o.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(o.shutdown, "server_shutdown"), time.Now().Add(time.Second))
		}
		closeConn(o.conn)
		close(o.stop)
		close(o.done) // releases the upgrade goroutine
	})
}

func (o *wsOut) HandleInspect(gen.PID, ...string) map[string]string { return nil }
