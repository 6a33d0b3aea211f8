package actors

import (
	"context"
	"errors"

	"ergo.services/ergo/gen"

	"starcite/dataplane"
	"starcite/edge"
)

// The tail:<id> channel side of a TailSocket (docs/api.md#joining-a-tail,
// docs/api.md#the-gap-push, docs/api.md#channel-failures): the join's
// remaining checks and its reply, the gap for a cursor ahead of the
// session, and the frames that end a channel.

// joinChannel completes a join: the session lookup and tenant fence, the
// reply, then what a raw tail does after its upgrade. Nothing is pushed
// before the reply.
func (t *TailSocket) joinChannel() {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	info, err := t.plane.Session(ctx, t.spec.SessionID)
	cancel()
	var reason string
	switch {
	case errors.Is(err, dataplane.ErrSessionNotFound):
		reason = edge.JoinErrorReason(err)
	case err != nil:
		t.Log().Warning("tail %q: join: %s", t.spec.SessionID, err)
		reason = edge.JoinErrorReason(err)
	default:
		reason = edge.CheckTailTenant(&t.ch.principal, info.TenantID)
	}
	if reason != "" {
		t.out.pushControl(edge.ReplyError(t.ch.joinRef, t.ch.ref, t.ch.topic, reason))
		t.closing, t.exit = true, gen.TerminateReasonNormal
		return
	}
	t.spec.TenantID = info.TenantID
	t.out.pushControl(edge.ReplyOK(t.ch.joinRef, t.ch.ref, t.ch.topic))
	if !t.subscribe() {
		return
	}
	if t.armExpiry(); t.closing {
		return
	}
	t.resumeCheck()
	t.SendAfter(t.PID(), catchUp{}, catchUpEvery)
	t.startReplay()
}

// resumeCheck pushes the resume_invalidated gap when the join's cursor is
// ahead of the session's last seq, and continues from that seq. A lagging
// replica must not invent one, so the last seq is confirmed by a
// linearizable read; when it cannot be, or the socket pushed a gap for
// this topic a moment ago, the channel waits silently for the session to
// pass the cursor, as a raw tail does.
func (t *TailSocket) resumeCheck() {
	if t.cursor == 0 || !t.ch.gapAllowed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	if last, ok := t.plane.LastSeq(ctx, t.spec.SessionID); !ok || last >= t.cursor {
		return
	}
	st, err := t.plane.SessionState(ctx, t.spec.SessionID)
	if err != nil || st.LastSeq >= t.cursor {
		return
	}
	t.out.pushControl(edge.GapPush(t.ch.joinRef, t.ch.topic, edge.Gap{Reason: "resume_invalidated",
		From: t.cursor, Next: st.LastSeq, Committed: st.ArchivedSeq, EarliestCursor: 1}))
	t.cursor = st.LastSeq
	t.Send(t.ch.socket, gapSent{topic: t.ch.topic})
}

// endChannel ends the channel for reason: token_expired then phx_close,
// or phx_error so that the client rejoins from its cursor (a replay that
// cannot be made gap-free now, a client too slow for its live events).
func (t *TailSocket) endChannel(reason endReason) {
	if t.closing {
		return
	}
	t.closing, t.exit = true, gen.TerminateReasonNormal
	switch reason {
	case endTokenExpired:
		channelExpired(t.out, t.ch.joinRef, t.ch.topic)
	case endUnavailable, endSubscribeFailed:
		channelEnds.WithLabelValues("unavailable").Inc()
		t.out.pushControl(edge.ChannelEnd(t.ch.joinRef, t.ch.topic, edge.EventError))
	case endSlowConsumer:
		channelEnds.WithLabelValues("slow_consumer").Inc()
		frames, bytes := t.out.queued()
		t.Log().Warning("tail %q: socket queue full (%d frames, %d bytes): phx_error", t.spec.SessionID, frames, bytes)
		t.out.pushControl(edge.ChannelEnd(t.ch.joinRef, t.ch.topic, edge.EventError))
	}
}

// leave ends the channel because the client left it or joined its topic
// again.
func (t *TailSocket) leave(m leaveChannel) {
	if !t.closing {
		t.closing, t.exit = true, gen.TerminateReasonNormal
		channelLeft(t.out, t.ch.joinRef, t.ch.topic, m)
	}
}
