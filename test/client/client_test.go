// Package client tests the Go client (module starcite/client, client/)
// and the client commands of the binary (app/cli) against real nodes:
// tails and producers across a node killed with SIGKILL, token refresh on
// a 4001 close, a 1011 close as a typed error, and every command with its
// exit statuses and bad input, black-box (docs/client.md).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"starcite/client"
	"starcite/test/harness"
)

const subnet = 13 // cluster nodes on 127.0.13.x

// wait bounds every await of these tests; nothing asserts timings.
const wait = 90 * time.Second

func newClient(t *testing.T, nodes []*harness.Node, opts ...client.Option) *client.Client {
	t.Helper()
	var more []string
	for _, n := range nodes[1:] {
		more = append(more, n.URL())
	}
	c, err := client.New(nodes[0].URL(), append([]client.Option{client.WithNodes(more...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// await polls cond until it holds, failing the test after wait.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payloadI decodes the {"i": n} payloads these tests append.
func payloadI(t *testing.T, e client.Event) uint64 {
	t.Helper()
	var p struct{ I uint64 }
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("event %d payload %s: %v", e.Seq, e.Payload, err)
	}
	return p.I
}

// tailInto runs a tail in the background and sends each event (or the
// error that ended it) on the returned channel.
func tailInto(ctx context.Context, c *client.Client, session string, opts ...client.TailOption) <-chan client.Event {
	out := make(chan client.Event, 4096)
	go func() {
		defer close(out)
		for e, err := range c.Tail(ctx, session, 0, opts...) {
			if err != nil {
				return
			}
			out <- e
		}
	}()
	return out
}

// receive takes events from ch until seq upto, checking that each seq
// comes once and in order and carries payload i = seq.
func receive(t *testing.T, ch <-chan client.Event, from, upto uint64) {
	t.Helper()
	timeout := time.After(wait)
	for want := from; want <= upto; want++ {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("tail ended before seq %d", want)
			}
			if e.Seq != want || payloadI(t, e) != want {
				t.Fatalf("tail delivered seq %d (payload %d), want %d", e.Seq, payloadI(t, e), want)
			}
		case <-timeout:
			t.Fatalf("no seq %d within %s", want, wait)
		}
	}
}

// readLog reads a session's whole log through the events route.
func readLog(t *testing.T, c *client.Client, session string) []client.Event {
	t.Helper()
	var all []client.Event
	for cursor := uint64(0); ; {
		page, err := c.Events(context.Background(), session, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Events...)
		if len(page.Events) == 0 || page.Events[len(page.Events)-1].Seq >= page.LastSeq {
			return all
		}
		cursor = page.Events[len(page.Events)-1].Seq
	}
}

// checkLog asserts that the log holds events 1..n, each producer_seq once
// with payload i = producer_seq.
func checkLog(t *testing.T, log []client.Event, producer string, n uint64) {
	t.Helper()
	if uint64(len(log)) != n {
		t.Fatalf("log holds %d events, want %d", len(log), n)
	}
	for i, e := range log {
		want := uint64(i + 1)
		if e.Seq != want || e.ProducerID != producer || e.ProducerSeq != want || payloadI(t, e) != want {
			t.Fatalf("log[%d] = seq %d producer %s/%d payload %d, want %d", i, e.Seq, e.ProducerID, e.ProducerSeq, payloadI(t, e), want)
		}
	}
}

// TestKilledNode: on a 3-node cluster, (1) a tail connected to a node
// that is killed with SIGKILL goes on from another node and delivers
// every seq exactly once; (2) a producer whose node — the leader of its
// session's group — is killed mid-stream retries, every append succeeds
// and the log holds each event once.
func TestKilledNode(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	a, b, d := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for _, transport := range []struct {
		name string
		opts []client.TailOption
	}{{"raw route", nil}, {"phoenix socket", []client.TailOption{client.PhoenixSocket()}}} {
		t.Run("tail over the "+transport.name, func(t *testing.T) {
			const total = 300
			session := "tail-kill-" + strings.ReplaceAll(transport.name, " ", "-")
			viewer := newClient(t, []*harness.Node{a, b, d}) // connects to a first
			writer := newClient(t, []*harness.Node{b, d})
			if _, err := writer.CreateSession(ctx, client.NewSession{ID: session}); err != nil {
				t.Fatal(err)
			}
			events := tailInto(ctx, viewer, session, append(transport.opts, client.BatchSize(7))...)
			p := writer.Producer(session, "w")
			appended := make(chan error, 1)
			go func() {
				for i := uint64(1); i <= total; i++ {
					if _, err := p.Append(ctx, "n", map[string]uint64{"i": i}); err != nil {
						appended <- fmt.Errorf("append %d: %w", i, err)
						return
					}
				}
				appended <- nil
			}()
			receive(t, events, 1, 100)
			a.Kill() // the viewer's node, while events keep coming
			receive(t, events, 101, total)
			if err := <-appended; err != nil {
				t.Fatal(err)
			}
			select {
			case e, ok := <-events:
				if ok {
					t.Fatalf("extra event %d after %d", e.Seq, total)
				}
			default:
			}
			checkLog(t, readLog(t, writer, session), "w", total)
			a.Start()
			a.WaitReady(wait)
		})
	}

	t.Run("producer", func(t *testing.T) {
		const session, total = "producer-kill", 300
		setup := newClient(t, c.Nodes)
		if _, err := setup.CreateSession(ctx, client.NewSession{ID: session}); err != nil {
			t.Fatal(err)
		}
		group := c.Group(session)
		var leader *harness.Node
		await(t, "a leader of the session's group", func() bool { leader = c.Leader(group); return leader != nil })
		nodes := []*harness.Node{leader}
		for _, n := range c.Nodes {
			if n != leader {
				nodes = append(nodes, n)
			}
		}
		p := newClient(t, nodes).Producer(session, "w") // appends through the leader first
		retried := 0
		killed := make(chan struct{})
		for i := uint64(1); i <= total; i++ {
			if i == 100 {
				go func() { leader.Kill(); close(killed) }() // lands while the next appends are in flight
			}
			r, err := p.Append(ctx, "n", map[string]uint64{"i": i})
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			if r.ProducerSeq != i || r.Seq != i {
				t.Fatalf("append %d answered seq %d producer_seq %d", i, r.Seq, r.ProducerSeq)
			}
			if r.Attempts > 1 {
				if retried++; retried == 1 {
					t.Logf("append %d took %d attempts (deduped %v)", i, r.Attempts, r.Deduped)
				}
			}
		}
		if retried == 0 {
			t.Fatal("no append was retried: the kill did not reach the producer")
		}
		<-killed
		checkLog(t, readLog(t, newClient(t, nodes[1:]), session), "w", total)
		leader.Start()
		leader.WaitReady(wait)
	})
}

// TestTailUnavailable: a replay that needs the archive while it is down
// is closed 1011 replay_unavailable, which the tail returns as
// ErrTailUnavailable instead of retrying or skipping events.
func TestTailUnavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	n := harness.StartNode(t, harness.Options{Env: map[string]string{
		"STARCITE_ARCHIVE_ADAPTER":           "file",
		"STARCITE_ARCHIVE_DIR":               dir,
		"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "100",
	}})
	c := newClient(t, []*harness.Node{n})
	ctx := context.Background()
	if _, err := c.CreateSession(ctx, client.NewSession{ID: "cold"}); err != nil {
		t.Fatal(err)
	}
	p := c.Producer("cold", "w")
	for i := uint64(1); i <= 20; i++ {
		if _, err := p.Append(ctx, "n", map[string]uint64{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	n.WaitFor(wait, "the events archived", func() bool {
		s, err := c.GetSession(ctx, "cold")
		return err == nil && s.ArchivedSeq == 20
	})
	n.Restart() // memory is empty: a replay from 0 needs the archive
	// The archive directory vanishes and a file takes its place.
	if err := os.Rename(dir, dir+".off"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for e, err := range c.Tail(tctx, "cold", 0) {
		var closed *client.CloseError
		if !errors.Is(err, client.ErrTailUnavailable) || !errors.As(err, &closed) || closed.Reason != "replay_unavailable" {
			t.Fatalf("tail yielded seq %d, err %v; want ErrTailUnavailable", e.Seq, err)
		}
	}
	// The socket's channel fails with phx_error instead, which the tail
	// retries (the archive might come back) before it gives up.
	few := newClient(t, []*harness.Node{n}, client.WithRetry(client.RetryPolicy{Attempts: 3, MaxBackoff: 100 * time.Millisecond}))
	for e, err := range few.Tail(tctx, "cold", 0, client.PhoenixSocket()) {
		if !errors.Is(err, client.ErrTailUnavailable) {
			t.Fatalf("socket tail yielded seq %d, err %v; want ErrTailUnavailable", e.Seq, err)
		}
	}
	// From a cursor the hot tier covers, the same tail works.
	if _, err := p.Append(ctx, "n", map[string]uint64{"i": 21}); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]client.TailOption{nil, {client.PhoenixSocket()}} {
		for e, err := range c.Tail(tctx, "cold", 20, opts...) {
			if err != nil || e.Seq != 21 {
				t.Fatalf("tail from 20: seq %d, %v", e.Seq, err)
			}
			break
		}
	}
}
