package actors

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
	"github.com/fasthttp/websocket"

	"starcite/edge"
)

// SocketsName is the registered name of the simple_one_for_one
// supervisor that starts one ChannelSocket per /v1/socket connection.
const SocketsName gen.Atom = "sockets"

// Socket timings and close codes (docs/api.md#socket-limits-and-close-codes).
const (
	socketIdle = 60 * time.Second // without any inbound frame (pongs count)
	// A join whose cursor is ahead of the session gets one gap push per
	// topic in this window; a repeat inside it waits silently instead,
	// which breaks a client's join/gap loop.
	gapWindow = 10 * time.Second
	// maxChannels bounds the channels of one socket, each an actor: a
	// client cannot grow a node's memory without limit through one
	// connection (the connection cap bounds the sockets).
	maxChannels = 1000

	closeSocketIdle     = 1001 // never 1000: phoenix.js does not reconnect after 1000
	closeBadFrame       = 1007
	closeFrameTooBig    = 1009 // written by the websocket library itself
	closeSocketShutdown = 1012 // node stopping or drained: reconnect elsewhere
)

// StartSocket asks the sockets supervisor for a ChannelSocket; the new
// actor answers the caller with its PID.
type StartSocket struct {
	Principal edge.Principal
	Conn      *websocket.Conn
	Done      chan struct{} // closed once the connection is closed for good
}

// Messages from a socket's read loop.
type (
	inbound   struct{ frame edge.Frame }
	readEnded struct {
		code   int // 0: the client went away; else close with it
		reason string
	}
)

// Messages between a ChannelSocket and its channels.
type (
	// leaveChannel ends a channel with phx_close: the client left (reply
	// ok to its leave first) or joined the topic again.
	leaveChannel struct {
		reply bool
		ref   edge.Ref
	}
	// gapSent: a tail channel pushed a gap for its topic.
	gapSent struct{ topic string }
)

// tailChannel is what a TailSocket serving a channel knows of it.
type tailChannel struct {
	socket     gen.PID
	joinRef    edge.Ref
	ref        edge.Ref // of the join message, which the reply echoes
	topic      string
	principal  edge.Principal
	gapAllowed bool
}

// joinTail starts a TailSocket for a tail:<id> join that passed the
// checks needing no data.
type joinTail struct {
	tailChannel
	join edge.TailJoin
	out  *wsOut
}

// channel is one joined (or joining) topic of a socket.
type channel struct {
	joinRef edge.Ref
	pid     gen.PID
}

// ChannelSocket owns one /v1/socket connection: it decodes nothing (the
// read loop does) but routes every client frame — heartbeats answered
// here, joins checked and started as one actor per channel (TailSocket,
// LifecycleChannel), leaves and duplicate joins handed to the channel so
// that its last frames precede its phx_close. Channels push their frames
// into the socket's queue themselves.
type ChannelSocket struct {
	act.Actor
	plane     TailPlane
	principal edge.Principal
	out       *wsOut
	channels  map[string]channel // by topic
	topicOf   map[gen.PID]string
	gaps      map[string]time.Time // last gap push per topic
	closing   bool
	joins     uint64
}

// NewChannelSocket returns the factory of ChannelSocket actors.
func NewChannelSocket(p TailPlane) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &ChannelSocket{plane: p} }
}

func (s *ChannelSocket) Init(args ...any) error {
	st := args[0].(StartSocket)
	s.principal = st.Principal
	s.channels = map[string]channel{}
	s.topicOf = map[gen.PID]string{}
	s.gaps = map[string]time.Time{}
	s.out = newWSOut(st.Conn, st.Done, 0, closeSocketShutdown)
	alias, err := s.SpawnMeta(s.out, gen.MetaOptions{})
	if err != nil {
		return err
	}
	if err := s.MonitorAlias(alias); err != nil {
		return err
	}
	channelSockets.Inc()
	if err := s.SendResponse(args[1].(gen.PID), args[2].(gen.Ref), s.PID()); err != nil {
		return err
	}
	if s.plane.Draining() {
		s.closeWith(closeSocketShutdown, "node_draining")
	}
	return nil
}

func (s *ChannelSocket) Terminate(reason error) { channelSockets.Dec() }

func (s *ChannelSocket) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case inbound:
		if !s.closing {
			s.route(m.frame)
		}
	case readEnded:
		if m.code == 0 || m.code == closeFrameTooBig {
			return gen.TerminateReasonNormal
		}
		s.closeWith(m.code, m.reason)
	case gapSent:
		now := time.Now()
		for topic, at := range s.gaps {
			if now.Sub(at) >= gapWindow {
				delete(s.gaps, topic) // the map holds only the open windows
			}
		}
		s.gaps[m.topic] = now
	case gen.MessageDownPID:
		s.channelDown(m)
	case drainTails:
		s.closeWith(closeSocketShutdown, "node_draining")
	case gen.MessageDownAlias:
		return gen.TerminateReasonNormal // the writer is gone: so is the connection
	case closeTimeout:
		return gen.TerminateReasonNormal
	}
	return nil
}

// route handles one client frame (docs/api.md#control-events).
func (s *ChannelSocket) route(f edge.Frame) {
	if f.Topic == edge.TopicPhoenix && f.Event == edge.EventHeartbeat {
		// Ahead of every queued push: a replaying channel never delays it.
		s.out.pushUrgent(edge.ReplyOK(edge.Ref{}, f.Ref, edge.TopicPhoenix))
		return
	}
	ch, joined := s.channels[f.Topic]
	switch {
	case f.Event == edge.EventJoin:
		if joined {
			// One channel per topic: the newest join wins, the old
			// channel closes after its last frame.
			s.forget(f.Topic, ch)
			s.Send(ch.pid, leaveChannel{})
		}
		s.join(f)
	case joined && ch.joinRef != f.JoinRef:
		// A frame for a channel this socket already replaced or closed:
		// the client raced the server, its phx_close is on the way.
	case joined && f.Event == edge.EventLeave:
		s.forget(f.Topic, ch)
		s.Send(ch.pid, leaveChannel{reply: true, ref: f.Ref})
	case joined:
		// Channels take no client events and never reply.
	case f.Event == edge.EventLeave:
		s.out.pushControl(edge.ReplyOK(f.JoinRef, f.Ref, f.Topic))
	default:
		s.out.pushControl(edge.ReplyError(edge.Ref{}, f.Ref, f.Topic, edge.ReasonUnmatchedTopic))
	}
}

// join checks a join and starts its channel; refusals are replied here.
func (s *ChannelSocket) join(f edge.Frame) {
	lifecycle := f.Topic == edge.LifecycleTopic
	if !lifecycle && !strings.HasPrefix(f.Topic, edge.TailTopicPrefix) {
		s.out.pushControl(edge.ReplyError(edge.Ref{}, f.Ref, f.Topic, edge.ReasonUnmatchedTopic))
		return
	}
	if len(s.channels) >= maxChannels {
		s.out.pushControl(edge.ReplyError(f.JoinRef, f.Ref, f.Topic, edge.ReasonTooManyChannels))
		return
	}
	now := time.Now()
	var start any
	var factory gen.ProcessFactory
	if lifecycle {
		tenant, reason := edge.CheckLifecycleJoin(&s.principal, now)
		if reason != "" {
			s.out.pushControl(edge.ReplyError(f.JoinRef, f.Ref, f.Topic, reason))
			return
		}
		start = joinLifecycle{joinRef: f.JoinRef, ref: f.Ref, tenant: tenant,
			expires: s.principal.Expires, out: s.out}
		factory = newLifecycleChannel
	} else {
		j, reason := edge.CheckTailJoin(&s.principal, f.Topic, f.Payload, now)
		if reason != "" {
			s.out.pushControl(edge.ReplyError(f.JoinRef, f.Ref, f.Topic, reason))
			return
		}
		last, seen := s.gaps[f.Topic]
		start = joinTail{join: j, out: s.out, tailChannel: tailChannel{socket: s.PID(), joinRef: f.JoinRef,
			ref: f.Ref, topic: f.Topic, principal: s.principal, gapAllowed: !seen || now.Sub(last) >= gapWindow}}
		factory = NewTailSocket(s.plane)
	}
	pid, err := s.Spawn(factory, gen.ProcessOptions{LinkParent: true}, start)
	if err == nil {
		err = s.MonitorPID(pid)
	}
	if err != nil {
		s.Log().Error("socket: start channel %q: %s", f.Topic, err)
		s.out.pushControl(edge.ReplyError(f.JoinRef, f.Ref, f.Topic, "join crashed"))
		return
	}
	s.joins++
	s.channels[f.Topic] = channel{joinRef: f.JoinRef, pid: pid}
	s.topicOf[pid] = f.Topic
}

// forget removes a channel from the routing table; frames for its topic
// are then those of a topic not joined.
func (s *ChannelSocket) forget(topic string, ch channel) {
	delete(s.channels, topic)
	delete(s.topicOf, ch.pid)
}

// channelDown: a channel ended. One that ended on purpose wrote its own
// last frames; one that crashed gets phx_error, so the client rejoins.
func (s *ChannelSocket) channelDown(m gen.MessageDownPID) {
	topic, ok := s.topicOf[m.PID]
	if !ok {
		return
	}
	ch := s.channels[topic]
	s.forget(topic, ch)
	if !errors.Is(m.Reason, gen.TerminateReasonNormal) {
		s.Log().Warning("socket: channel %q ended: %s", topic, m.Reason)
		channelEnds.WithLabelValues("crashed").Inc()
		s.out.pushControl(edge.ChannelEnd(ch.joinRef, topic, edge.EventError))
	}
}

// channelLeft writes the last frames of a channel the client left (the
// leave's reply, then phx_close) or joined again (phx_close): after every
// frame the channel pushed before.
func channelLeft(out *wsOut, joinRef edge.Ref, topic string, m leaveChannel) {
	why := "replaced"
	if m.reply {
		why = "left"
		out.pushControl(edge.ReplyOK(joinRef, m.ref, topic))
	}
	channelEnds.WithLabelValues(why).Inc()
	out.pushControl(edge.ChannelEnd(joinRef, topic, edge.EventClose))
}

// channelExpired writes the last frames of a channel whose token expired:
// the token_expired push, then phx_close (the client needs a new socket).
func channelExpired(out *wsOut, joinRef edge.Ref, topic string) {
	channelEnds.WithLabelValues("token_expired").Inc()
	out.pushControl(edge.TokenExpiredPush(joinRef, topic))
	out.pushControl(edge.ChannelEnd(joinRef, topic, edge.EventClose))
}

// closeWith queues a close frame behind the queued frames and ends the
// socket once the writer has sent it.
func (s *ChannelSocket) closeWith(code int, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	socketCloses.WithLabelValues(strconv.Itoa(code)).Inc()
	s.out.closeAfter(code, reason)
	s.SendAfter(s.PID(), closeTimeout{}, closeGrace)
}

func (s *ChannelSocket) HandleInspect(from gen.PID, item ...string) map[string]string {
	frames, bytes := s.out.queued()
	topics := make([]string, 0, len(s.channels))
	for t := range s.channels {
		topics = append(topics, t)
	}
	return map[string]string{
		"principal":     s.principal.Actor(),
		"tenant_id":     s.principal.TenantID,
		"channels":      strings.Join(topics, " "),
		"joins":         strconv.FormatUint(s.joins, 10),
		"queued_frames": strconv.Itoa(frames),
		"queued_bytes":  strconv.FormatInt(bytes, 10),
		"expires":       strconv.FormatInt(s.principal.Expires, 10),
	}
}

// Sockets serves upgraded /v1/socket connections (edge.SocketServer): it
// starts the connection's ChannelSocket and then runs the read loop on
// the upgrade goroutine, decoding frames there.
type Sockets struct {
	node atomic.Pointer[gen.Node]
}

// SetNode connects Sockets to the running node.
func (s *Sockets) SetNode(n gen.Node) { s.node.Store(&n) }

// Serve runs one socket connection until it is closed.
func (s *Sockets) Serve(conn *websocket.Conn, p edge.Principal) {
	node := s.node.Load()
	if node == nil {
		conn.Close()
		return
	}
	done := make(chan struct{})
	v, err := (*node).CallWithTimeout(SocketsName, StartSocket{Principal: p, Conn: conn, Done: done}, 5)
	pid, ok := v.(gen.PID)
	if err != nil || !ok {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeInternal, "socket_unavailable"),
			time.Now().Add(time.Second))
		conn.Close()
		return
	}
	(*node).Send(pid, readLoop(conn, func(f edge.Frame) error { return (*node).Send(pid, inbound{f}) }))
	<-done
}

// readLoop reads until the connection fails or a frame breaks the
// protocol, and returns how it ended. Every inbound frame, control
// frames included, restarts the idle timer; binary frames are ignored.
func readLoop(conn *websocket.Conn, deliver func(edge.Frame) error) readEnded {
	extend := func() { conn.SetReadDeadline(time.Now().Add(socketIdle)) }
	extend()
	conn.SetReadLimit(edge.MaxSocketFrame)
	conn.SetPongHandler(func(string) error { extend(); return nil })
	ping := conn.PingHandler()
	conn.SetPingHandler(func(data string) error { extend(); return ping(data) })
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				return readEnded{code: closeFrameTooBig}
			case errors.As(err, &ne) && ne.Timeout():
				return readEnded{code: closeSocketIdle, reason: "idle_timeout"}
			}
			return readEnded{}
		}
		extend()
		if typ != websocket.TextMessage {
			continue
		}
		f, err := edge.DecodeFrame(data)
		if err != nil {
			return readEnded{code: closeBadFrame, reason: "invalid_frame"}
		}
		if deliver(f) != nil {
			return readEnded{}
		}
	}
}
