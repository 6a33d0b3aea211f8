package actors

import (
	"strconv"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"

	"starcite/edge"
)

// joinLifecycle starts a LifecycleChannel for a lifecycle join that passed
// its checks (all of them need no data).
type joinLifecycle struct {
	joinRef, ref edge.Ref
	tenant       string
	expires      int64 // token exp (Unix seconds); 0 = never
	out          *wsOut
}

// LifecycleChannel is one joined lifecycle topic: it receives its
// tenant's committed header changes from the fan-out of this node (the
// lifecycle feed) and pushes them as lifecycle events, live only
// (docs/api.md#the-lifecycle-topic).
type LifecycleChannel struct {
	act.Actor
	j      joinLifecycle
	pushed uint64
}

func newLifecycleChannel() gen.ProcessBehavior { return &LifecycleChannel{} }

func (c *LifecycleChannel) Init(args ...any) error {
	c.j = args[0].(joinLifecycle)
	return c.Send(c.PID(), begin{})
}

func (c *LifecycleChannel) HandleMessage(from gen.PID, message any) error {
	switch m := message.(type) {
	case begin:
		// Subscribed before the reply: an event committed once the
		// client knows it joined is never missed.
		if _, err := c.Call(FanoutName, SubscribeLifecycle{TenantID: c.j.tenant, PID: c.PID()}); err != nil {
			c.Log().Error("lifecycle channel: subscribe: %s", err)
			c.j.out.pushControl(edge.ReplyError(c.j.joinRef, c.j.ref, edge.LifecycleTopic, "join crashed"))
			return gen.TerminateReasonNormal
		}
		c.j.out.pushControl(edge.ReplyOK(c.j.joinRef, c.j.ref, edge.LifecycleTopic))
		if c.j.expires > 0 {
			c.SendAfter(c.PID(), tokenExpired{}, max(time.Until(time.Unix(c.j.expires, 0)), 0))
		}
	case SessionChanged:
		if m.Header.TenantID != c.j.tenant {
			return nil // the tenant fence, once more
		}
		for _, ev := range edge.LifecycleEvents(m.Kind, &m.Header) {
			if !c.j.out.push(edge.LifecyclePush(c.j.joinRef, ev)) {
				channelEnds.WithLabelValues("slow_consumer").Inc()
				c.j.out.pushControl(edge.ChannelEnd(c.j.joinRef, edge.LifecycleTopic, edge.EventError))
				return gen.TerminateReasonNormal
			}
			c.pushed++
		}
	case tokenExpired:
		channelExpired(c.j.out, c.j.joinRef, edge.LifecycleTopic)
		return gen.TerminateReasonNormal
	case leaveChannel:
		channelLeft(c.j.out, c.j.joinRef, edge.LifecycleTopic, m)
		return gen.TerminateReasonNormal
	}
	return nil
}

func (c *LifecycleChannel) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{
		"tenant_id": c.j.tenant,
		"join_ref":  c.j.joinRef.S,
		"pushed":    strconv.FormatUint(c.pushed, 10),
		"expires":   strconv.FormatInt(c.j.expires, 10),
	}
}
