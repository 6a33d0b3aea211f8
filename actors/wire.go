package actors

import (
	"errors"
	"fmt"

	"ergo.services/ergo/gen"
	"ergo.services/ergo/net/edf"

	"starcite/dataplane"
	"starcite/fsm"
)

// nodeVersionName is the Name of the version a node reports in Ergo's
// handshake. Builds that apply session header commands report it (earlier
// builds report none), which is how a node knows that every replica of a
// group can apply them (docs/decisions.md#d48).
const nodeVersionName = "starcite"

// NodeVersion is this node's version for Ergo's handshake.
func NodeVersion(build string) gen.Version {
	return gen.Version{Name: nodeVersionName, Release: build}
}

// Every type that crosses nodes is registered with Ergo's encoding (EDF)
// before the node starts, nested types before the types that hold them
// (docs/decisions.md#d40). Server and CLI are one binary, so both sides
// always agree. New fields would break older peers: evolve by adding types.
func init() {
	for _, t := range []any{
		fsm.Event{}, fsm.EventsResult{},
		dataplane.SessionWire{}, dataplane.ListRequest{},
		dataplane.ProposeRequest{}, dataplane.ProposeReply{},
		dataplane.ReadRequest{}, dataplane.ReadReply{},
		dataplane.SessionRecord{}, dataplane.HeaderReadRequest{}, dataplane.HeaderReadReply{},
		CursorUpdate{}, remoteSubscribe{}, remoteUnsubscribe{}, remoteCursor{},
		remoteLifecycleSubscribe{}, remoteChange{},
		ping{}, DrainMark{}, pong{},
		StatusRequest{}, NodeStatus{}, ObserverStatus{}, OpsRequest{}, OpsReply{},
	} {
		if err := edf.RegisterTypeOf(t); err != nil && !errors.Is(err, gen.ErrTaken) {
			panic(fmt.Sprintf("register %T: %v", t, err))
		}
	}
}
