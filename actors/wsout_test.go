package actors

import (
	"fmt"
	"testing"

	"ergo.services/ergo/gen"
)

// next without a connection: the queue logic alone (no pings, no cut-off).
func take(t *testing.T, o *wsOut) string {
	t.Helper()
	frame, cl, ok := o.next(nil)
	switch {
	case !ok:
		return "stopped"
	case cl != nil:
		return fmt.Sprintf("close %d %s", cl.code, cl.reason)
	}
	o.wrote(len(frame))
	return string(frame)
}

func TestWSOutUrgentFirst(t *testing.T) {
	o := newWSOut(nil, nil, 0, closeGoingAway)
	o.push([]byte("e1"))
	o.pushControl([]byte("reply"))
	o.push([]byte("e2"))
	o.pushUrgent([]byte("heartbeat"))
	o.closeAfter(1001, "idle")
	o.push([]byte("late")) // after the close: dropped
	for _, want := range []string{"heartbeat", "e1", "reply", "e2", "close 1001 idle"} {
		if got := take(t, o); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestWSOutLimits(t *testing.T) {
	o := newWSOut(nil, nil, 0, closeGoingAway)
	for i := 0; i < maxQueuedFrames; i++ {
		if !o.push([]byte("x")) {
			t.Fatalf("push %d refused", i)
		}
	}
	if o.push([]byte("x")) {
		t.Fatal("push beyond maxQueuedFrames accepted")
	}
	// control frames still fit, up to the hard limit
	if !o.pushControl([]byte("phx_error")) || !o.pushUrgent([]byte("reply")) {
		t.Fatal("control frame refused below the hard limit")
	}
	if n, b := o.queued(); n != maxQueuedFrames+2 || b != int64(maxQueuedFrames+len("phx_error")+len("reply")) {
		t.Fatalf("queued %d frames, %d bytes", n, b)
	}

	o = newWSOut(nil, nil, 0, closeGoingAway)
	if !o.push(make([]byte, maxQueuedBytes)) || o.push([]byte("x")) {
		t.Fatal("byte limit not enforced")
	}
}

func TestWSOutWakesWaiters(t *testing.T) {
	o := newWSOut(nil, nil, 0, closeGoingAway)
	a, b := gen.PID{Node: "n", ID: 1}, gen.PID{Node: "n", ID: 2}
	if o.waitDrain(a) {
		t.Fatal("waiting on an empty queue")
	}
	for i := 0; i <= resumeFrames; i++ {
		o.push([]byte("x"))
	}
	if !o.backlogged() || !o.waitDrain(a) || !o.waitDrain(b) {
		t.Fatal("not backlogged past resumeFrames")
	}
	frame, _, _ := o.next(nil)
	woken := o.wrote(len(frame))
	if len(woken) != 2 {
		t.Fatalf("woke %v, want both waiters once the queue is at resumeFrames", woken)
	}
	frame, _, _ = o.next(nil)
	if woken := o.wrote(len(frame)); len(woken) != 0 {
		t.Fatalf("woke %v again", woken)
	}
}
