package bench

// The workloads of `starcite bench`: closed-loop and open-loop append
// latency, end-to-end tail latency and replay rate.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"starcite/app/measure"
)

// benchRun is one set of target nodes in one auth mode.
type benchRun struct {
	opts   benchOptions
	out    io.Writer
	client *benchClient
	auth   string // none | jwt
	runID  string // prefix of every session and producer id of this run
	fleet  *fleet // the nodes the bench started; nil for --nodes targets
	procs  func() []measure.Proc
	report func(benchResult)
}

// producerSession is one producer appending to one session with
// producer_seq sequencing. A failed append whose outcome is unknown
// (503, no reply) is retried with the identical body, so a commit the
// client never heard of comes back as a dedupe instead of a conflict;
// any other failure starts a fresh producer at seq 1.
type producerSession struct {
	mu       sync.Mutex // open loop: one append in flight per producer
	node     int
	uri      string
	base     string // producer id prefix
	producer string
	gen      int
	seq      uint64
	body     []byte
	pending  bool // body holds an append to retry
}

func newProducerSession(c *benchClient, node int, session, producer string) *producerSession {
	return &producerSession{node: node, uri: c.appendURI(node, session), base: producer, producer: producer,
		seq: 1, body: make([]byte, 0, 512)}
}

// next returns the body to send: the pending retry, or a new append
// stamped with the bench clock.
func (p *producerSession) next(c *benchClient, index int64, payload int) []byte {
	if !p.pending {
		p.body = appendBody(p.body[:0], p.producer, p.seq, c.sinceEpoch(), index, payload)
		p.pending = true
	}
	return p.body
}

// done records the outcome of the last body sent.
func (p *producerSession) done(class string) {
	switch {
	case class == "":
		p.seq++
		p.pending = false
	case strings.HasPrefix(class, "503") || strings.HasPrefix(class, "transport:"):
		// unknown outcome: retry the same body
	default:
		p.gen++
		p.producer = p.base + "-g" + strconv.Itoa(p.gen)
		p.seq = 1
		p.pending = false
	}
}

// backoff keeps a producer that gets no reply from spinning.
func backoff(ctx context.Context, class string) {
	if strings.HasPrefix(class, "transport:") {
		sleepCtx(ctx, 10*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// usage starts a usage probe over the current server processes.
func (r *benchRun) usage() *measure.Probe {
	var procs []measure.Proc
	if r.procs != nil {
		procs = r.procs()
	}
	return measure.Start(procs)
}

// sessions returns the ids of the n sessions of the append workloads.
func (r *benchRun) sessionIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-s%03d", r.runID, i)
	}
	return ids
}

// ---- 0. idle ----

// idleUsage reports what the servers use with no load: CPU and RSS of
// nodes that only keep their Raft groups alive.
func (r *benchRun) idleUsage(ctx context.Context) {
	probe := r.usage()
	sleepCtx(ctx, r.opts.idle)
	res := benchResult{Workload: "idle", Auth: r.auth, DurationSec: r.opts.idle.Seconds(), Errors: map[string]int64{}}
	res.Usage = probe.Finish()
	var parts []string
	for _, n := range res.Usage.Nodes {
		rss, _ := measure.ProcStatusBytes(n.PID, "VmRSS")
		parts = append(parts, fmt.Sprintf("%s %s MB RSS (peak %s), %.1f%% CPU", n.Node, fmtMB(rss),
			fmtMB(n.PeakRSSBytes), 100*n.CPUSeconds/res.DurationSec))
	}
	fmt.Fprintf(r.out, "\nidle for %s (auth %s): %s\n", r.opts.idle, r.auth, strings.Join(parts, "; "))
	r.report(res)
}

// ---- 1. closed loop ----

func (r *benchRun) closedLoop(ctx context.Context, sessions []string) {
	t := newTable(r.out, fmt.Sprintf("append latency, closed loop (auth %s; %d sessions, %d-byte payload, %s per level after %s warm-up)",
		r.auth, len(sessions), r.opts.payload, r.opts.duration, r.opts.warmup),
		"producers", "appends/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "srv RSS MB", "srv CPU", "bench CPU")
	for level, n := range r.opts.producers {
		if ctx.Err() != nil {
			return
		}
		res := r.closedLoopLevel(ctx, sessions, n, level)
		t.row(strconv.Itoa(n), fmtRate(res.Throughput), fmtMs(res.Latency.P50), fmtMs(res.Latency.P95),
			fmtMs(res.Latency.P99), fmtMs(res.Latency.Max), fmtCount(res.ErrorTotal),
			fmtMB(res.Usage.MaxPeakRSS()), fmt.Sprintf("%.2f", res.Usage.ServerCPUCores), fmt.Sprintf("%.2f", res.Usage.BenchCPUCores))
		fmtErrors(r.out, fmt.Sprintf("%d producers", n), res.Errors)
		r.report(res)
	}
}

// ownedSessions are the sessions of producer p of n: p, p+n, p+2n, ...
// (every session has one producer when n <= len(sessions)).
func ownedSessions(p, n, sessions int) []int {
	if p >= sessions {
		return []int{p % sessions}
	}
	var out []int
	for s := p; s < sessions; s += n {
		out = append(out, s)
	}
	return out
}

func (r *benchRun) closedLoopLevel(ctx context.Context, sessions []string, producers, level int) benchResult {
	var errs errorCounts
	var deduped atomic.Int64
	samples := make([][]time.Duration, producers)
	start := time.Now()
	from := start.Add(r.opts.warmup)
	to := from.Add(r.opts.duration)
	probeC := make(chan *measure.Probe, 1)
	go func() { sleepCtx(ctx, time.Until(from)); probeC <- r.usage() }()

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			node := p % len(r.client.urls)
			var own []*producerSession
			for _, s := range ownedSessions(p, producers, len(sessions)) {
				own = append(own, newProducerSession(r.client, node, sessions[s],
					fmt.Sprintf("%s-c%d-p%d", r.runID, level, p)))
			}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := make([]time.Duration, 0, 4096)
			cur := 0
			for k := int64(0); ctx.Err() == nil; k++ {
				ps := own[cur]
				body := ps.next(r.client, k, r.opts.payload)
				t0 := time.Now()
				if !t0.Before(to) {
					break
				}
				class, dd := r.client.appendOnce(node, ps.uri, body, req, resp)
				lat := time.Since(t0)
				ps.done(class)
				if !t0.Before(from) {
					if class == "" {
						local = append(local, lat)
						if dd {
							deduped.Add(1)
						}
					} else {
						errs.add(class, 1)
					}
				}
				if !ps.pending {
					cur = (cur + 1) % len(own)
				}
				backoff(ctx, class)
			}
			samples[p] = local
		})
	}
	wg.Wait()
	probe := <-probeC
	res := benchResult{Workload: "append_closed", Auth: r.auth, Producers: producers}
	finishAppendResult(&res, samples, &errs, probe, r.opts.duration)
	res.Deduped = deduped.Load()
	return res
}

// finishAppendResult fills the common fields of an append row.
func finishAppendResult(res *benchResult, samples [][]time.Duration, errs *errorCounts, probe *measure.Probe, elapsed time.Duration) {
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	res.Usage = probe.Finish()
	res.DurationSec = elapsed.Seconds()
	res.Ops = int64(len(all))
	res.Throughput = float64(res.Ops) / elapsed.Seconds()
	res.Latency = measure.Summarize(all)
	res.Errors, res.ErrorTotal = errs.snapshot()
}

// ---- 2. open loop ----

// openSchedule is the fixed-rate schedule of an open loop: request k is
// due at start + k/rate, whether or not earlier requests have completed.
type openSchedule struct {
	start time.Time
	rate  float64 // requests per second
}

func (s openSchedule) at(k int64) time.Time {
	return s.start.Add(time.Duration(float64(k) * float64(time.Second) / s.rate))
}

// openItem is one scheduled request.
type openItem struct {
	k   int64
	due time.Time
}

// dispatchOpenLoop sends every request due before end to out at its due
// time, then closes out. When the consumers fall behind, items are
// handed out late but keep their due time, so the latency measured from
// it includes the wait (no coordinated omission).
func dispatchOpenLoop(ctx context.Context, s openSchedule, end time.Time, out chan<- openItem) {
	defer close(out)
	for k := int64(0); ; k++ {
		due := s.at(k)
		if !due.Before(end) {
			return
		}
		if d := time.Until(due); d > 0 {
			sleepCtx(ctx, d)
		}
		select {
		case out <- openItem{k: k, due: due}:
		case <-ctx.Done():
			return
		}
	}
}

func (r *benchRun) openLoop(ctx context.Context, sessions []string) {
	t := newTable(r.out, fmt.Sprintf("append latency, open loop (auth %s; %d sessions, up to %d in flight; latency from the scheduled send time)",
		r.auth, len(sessions), r.opts.openConns),
		"offered/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "lag p99 ms", "errors", "srv RSS MB", "srv CPU", "bench CPU")
	for level, rate := range r.opts.rates {
		if ctx.Err() != nil {
			return
		}
		res := r.openLoopLevel(ctx, sessions, rate, level)
		t.row(fmtRate(rate), fmtRate(res.Throughput), fmtMs(res.Latency.P50), fmtMs(res.Latency.P95),
			fmtMs(res.Latency.P99), fmtMs(res.Latency.Max), fmtMs(res.SendLag.P99), fmtCount(res.ErrorTotal),
			fmtMB(res.Usage.MaxPeakRSS()), fmt.Sprintf("%.2f", res.Usage.ServerCPUCores), fmt.Sprintf("%.2f", res.Usage.BenchCPUCores))
		fmtErrors(r.out, fmt.Sprintf("%s/s", fmtRate(rate)), res.Errors)
		r.report(res)
	}
}

func (r *benchRun) openLoopLevel(ctx context.Context, sessions []string, rate float64, level int) benchResult {
	states := make([]*producerSession, len(sessions))
	for i, s := range sessions {
		states[i] = newProducerSession(r.client, i%len(r.client.urls), s, fmt.Sprintf("%s-o%d-s%d", r.runID, level, i))
	}
	sched := openSchedule{start: time.Now().Add(10 * time.Millisecond), rate: rate}
	from := sched.start.Add(r.opts.warmup)
	end := from.Add(r.opts.duration)
	// Requests still queued this long after the schedule ends are dropped
	// and counted: a server that stops answering must not hang the bench.
	drainCtx, cancelDrain := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancelDrain()

	queue := make(chan openItem, max(1024, int(rate)))
	go dispatchOpenLoop(ctx, sched, end, queue)
	probeC := make(chan *measure.Probe, 1)
	go func() { sleepCtx(ctx, time.Until(from)); probeC <- r.usage() }()

	var errs errorCounts
	var deduped atomic.Int64
	workers := r.opts.openConns
	samples := make([][]time.Duration, workers)
	lags := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var local, lag []time.Duration
			for it := range queue {
				if drainCtx.Err() != nil {
					errs.add("not sent: drain timeout", 1)
					continue
				}
				ps := states[it.k%int64(len(states))]
				ps.mu.Lock()
				body := ps.next(r.client, it.k, r.opts.payload)
				sent := time.Now()
				class, dd := r.client.appendOnce(ps.node, ps.uri, body, req, resp)
				done := time.Now()
				ps.done(class)
				ps.mu.Unlock()
				if it.due.Before(from) {
					continue
				}
				if class != "" {
					errs.add(class, 1)
					continue
				}
				local = append(local, done.Sub(it.due))
				lag = append(lag, sent.Sub(it.due))
				if dd {
					deduped.Add(1)
				}
			}
			samples[w], lags[w] = local, lag
		})
	}
	wg.Wait()
	probe := <-probeC
	elapsed := max(time.Since(from), r.opts.duration)
	res := benchResult{Workload: "append_open", Auth: r.auth, OfferedRate: rate}
	finishAppendResult(&res, samples, &errs, probe, elapsed)
	var allLag []time.Duration
	for _, l := range lags {
		allLag = append(allLag, l...)
	}
	lag := measure.Summarize(allLag)
	res.SendLag = &lag
	res.Deduped = deduped.Load()
	return res
}

// ---- 3. end-to-end tail latency ----

func (r *benchRun) tailLatency(ctx context.Context) {
	t := newTable(r.out, fmt.Sprintf("end-to-end tail latency (auth %s; one session, %.0f appends/s, append sent → frame received)",
		r.auth, r.opts.tailRate),
		"subscribers", "frames/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "all p99 ms", "all max ms", "append p99", "errors", "srv RSS MB", "srv CPU", "bench CPU")
	for level, subs := range r.opts.subscribers {
		if ctx.Err() != nil {
			return
		}
		res := r.tailLatencyLevel(ctx, subs, level)
		t.row(strconv.Itoa(subs), fmtRate(res.Throughput), fmtMs(res.Latency.P50), fmtMs(res.Latency.P95),
			fmtMs(res.Latency.P99), fmtMs(res.Latency.Max), fmtMs(res.AllDelivered.P99), fmtMs(res.AllDelivered.Max),
			fmtMs(res.Append.P99), fmtCount(res.ErrorTotal),
			fmtMB(res.Usage.MaxPeakRSS()), fmt.Sprintf("%.2f", res.Usage.ServerCPUCores), fmt.Sprintf("%.2f", res.Usage.BenchCPUCores))
		fmtErrors(r.out, fmt.Sprintf("%d subscribers", subs), res.Errors)
		if res.Note != "" {
			fmt.Fprintf(r.out, "  note: %s\n", res.Note)
		}
		r.report(res)
	}
	fmt.Fprintln(r.out, "  all = the latest of all subscribers, per event; append = the appends' own send → 201 latency")
}

func (r *benchRun) tailLatencyLevel(ctx context.Context, subs, level int) benchResult {
	res := benchResult{Workload: "tail_e2e", Auth: r.auth, Subscribers: subs, OfferedRate: r.opts.tailRate}
	var errs errorCounts
	fail := func(err error) benchResult {
		errs.add("setup", 1)
		res.Errors, res.ErrorTotal = errs.snapshot()
		res.Note = err.Error()
		res.AllDelivered, res.Append = &measure.Latency{}, &measure.Latency{}
		return res
	}
	session := fmt.Sprintf("%s-tail%d", r.runID, level)
	if err := r.client.createSession(0, session); err != nil {
		return fail(err)
	}
	nodes := len(r.client.urls)
	warmEvents := int64(r.opts.tailRate * r.opts.warmup.Seconds())
	total := warmEvents + int64(r.opts.tailRate*r.opts.duration.Seconds()) + 1 // + the barrier event 0
	maxLat := make([]atomic.Int64, total)
	delivered := make([]atomic.Int32, total)

	// Subscribers, spread over the nodes, dialled a few at a time.
	conns := make([]*websocket.Conn, subs)
	var dialErr atomic.Pointer[error]
	var dwg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range subs {
		sem <- struct{}{}
		dwg.Go(func() {
			defer func() { <-sem }()
			c, err := r.client.dialTail(ctx, i%nodes, session, 0, 1)
			if err != nil {
				dialErr.CompareAndSwap(nil, &err)
				return
			}
			conns[i] = c
		})
	}
	dwg.Wait()
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	if p := dialErr.Load(); p != nil {
		closeAll()
		return fail(*p)
	}

	var closing atomic.Bool
	samples := make([][]time.Duration, subs)
	var rwg sync.WaitGroup
	for i, c := range conns {
		rwg.Go(func() {
			var local []time.Duration
			defer func() { samples[i] = local }()
			for {
				_, frame, err := c.ReadMessage()
				now := r.client.sinceEpoch()
				if err != nil {
					if !closing.Load() {
						errs.add(closeClass(err), 1)
					}
					return
				}
				t, next := frameField(frame, `"bench_t":`, 0)
				idx, next2 := frameField(frame, `"bench_i":`, 0)
				if next < 0 || next2 < 0 || idx < 0 || idx >= total {
					errs.add("tail: unexpected frame", 1)
					continue
				}
				lat := now - t
				delivered[idx].Add(1)
				for {
					m := maxLat[idx].Load()
					if lat <= m || maxLat[idx].CompareAndSwap(m, lat) {
						break
					}
				}
				if idx > warmEvents {
					local = append(local, time.Duration(lat))
				}
			}
		})
	}

	ps := newProducerSession(r.client, 0, session, r.runID+"-tail")
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	committed := make([]bool, total)
	var appendLat []time.Duration
	send := func(k int64) {
		body := ps.next(r.client, k, r.opts.payload)
		idx := k
		if v, n := frameField(body, `"bench_i":`, 0); n > 0 {
			idx = v // a retried body carries its original index
		}
		t0 := time.Now()
		class, _ := r.client.appendOnce(0, ps.uri, body, req, resp)
		lat := time.Since(t0)
		ps.done(class)
		if class != "" {
			if k > warmEvents {
				errs.add(class, 1)
			}
			backoff(ctx, class)
			return
		}
		committed[idx] = true
		if k > warmEvents {
			appendLat = append(appendLat, lat)
		}
	}
	// Event 0 is a barrier: every subscriber has it before the clock runs.
	send(0)
	waitDelivered(ctx, delivered[:1], subs, 10*time.Second)

	var probe *measure.Probe
	sched := openSchedule{start: time.Now(), rate: r.opts.tailRate}
	for k := int64(1); k < total && ctx.Err() == nil; k++ {
		if k == warmEvents+1 {
			probe = r.usage()
		}
		sleepCtx(ctx, time.Until(sched.at(k-1)))
		send(k)
	}
	if probe == nil {
		probe = r.usage()
	}
	// Wait for the last deliveries, then close the sockets.
	var expect []int64
	for k := warmEvents + 1; k < total; k++ {
		if committed[k] {
			expect = append(expect, k)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range expect {
		for delivered[k].Load() < int32(subs) && time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 5*time.Millisecond)
		}
	}
	res.Usage = probe.Finish()
	closing.Store(true)
	closeAll()
	rwg.Wait()

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	var allSubs []time.Duration
	var missing int64
	for _, k := range expect {
		d := int64(delivered[k].Load())
		if d >= int64(subs) {
			allSubs = append(allSubs, time.Duration(maxLat[k].Load()))
		} else {
			missing += int64(subs) - d
		}
	}
	if missing > 0 {
		errs.add("tail: frame not received within 10s", missing)
	}
	res.DurationSec = r.opts.duration.Seconds()
	res.Events = int64(len(expect))
	res.Ops = int64(len(all))
	res.Throughput = float64(res.Ops) / r.opts.duration.Seconds()
	res.Latency = measure.Summarize(all)
	a, ap := measure.Summarize(allSubs), measure.Summarize(appendLat)
	res.AllDelivered, res.Append = &a, &ap
	res.Errors, res.ErrorTotal = errs.snapshot()
	return res
}

// waitDelivered waits until each counter reaches want, or timeout.
func waitDelivered(ctx context.Context, counts []atomic.Int32, want int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for i := range counts {
		for counts[i].Load() < int32(want) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			sleepCtx(ctx, 2*time.Millisecond)
		}
	}
	return true
}

// closeClass names why a tail socket ended.
func closeClass(err error) string {
	if ce, ok := err.(*websocket.CloseError); ok {
		return fmt.Sprintf("tail: closed %d %s", ce.Code, ce.Text)
	}
	return "tail: " + transportClass(err)
}

// ---- 4. replay ----

func (r *benchRun) replay(ctx context.Context) error {
	n := int64(r.opts.replayEvents)
	session := r.runID + "-replay"
	if r.fleet != nil {
		// No archiving while the session fills, so that the hot replay
		// reads memory only.
		fmt.Fprintln(r.out, "\nreplay: restarting the nodes with the archiver paused (STARCITE_ARCHIVE_FLUSH_INTERVAL_MS=3600000)")
		if err := r.restart(ctx, "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS=3600000"); err != nil {
			return fmt.Errorf("replay: restart: %w", err)
		}
	}
	if err := r.client.createSession(0, session); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(r.out, "replay: filling %s with %s events (%d producers)...\n", session, fmtCount(n), r.opts.fillProducers)
	fillStart := time.Now()
	if err := r.fill(ctx, session, n); err != nil {
		return fmt.Errorf("replay: fill: %w", err)
	}
	fillSecs := time.Since(fillStart).Seconds()
	st, err := r.client.session(0, session)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(r.out, "replay: filled in %.1fs (%s appends/s); last_seq %d, archived_seq %d\n",
		fillSecs, fmtRate(float64(n)/fillSecs), st.LastSeq, st.ArchivedSeq)

	t := newTable(r.out, fmt.Sprintf("replay rate (auth %s; tail from cursor 0 of a %s-event session; latency = gap between frames)", r.auth, fmtCount(st.LastSeq)),
		"mode", "batch", "events/s", "MB/s", "total s", "first ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "srv RSS MB", "srv CPU", "bench CPU")
	row := func(res benchResult) {
		t.row(res.Mode, strconv.Itoa(res.BatchSize), fmtRate(res.Throughput), fmt.Sprintf("%.1f", res.MBPerSec),
			fmt.Sprintf("%.2f", res.DurationSec), fmtMs(res.FirstFrameMs), fmtMs(res.Latency.P50), fmtMs(res.Latency.P95),
			fmtMs(res.Latency.P99), fmtMs(res.Latency.Max), fmtCount(res.ErrorTotal),
			fmtMB(res.Usage.MaxPeakRSS()), fmt.Sprintf("%.2f", res.Usage.ServerCPUCores), fmt.Sprintf("%.2f", res.Usage.BenchCPUCores))
		fmtErrors(r.out, res.Mode+" batch "+strconv.Itoa(res.BatchSize), res.Errors)
		res.Note = fmt.Sprintf("filled at %.0f appends/s with %d producers", float64(n)/fillSecs, r.opts.fillProducers)
		r.report(res)
	}
	hot := "hot"
	if r.fleet == nil {
		hot = "as found" // the targets' archiver may have evicted part of it
	}
	for _, b := range r.opts.replayBatches {
		row(r.replayOnce(ctx, session, st.LastSeq, b, hot))
	}
	if r.fleet == nil {
		fmt.Fprintln(r.out, "  cold replay skipped: it restarts the nodes, which needs nodes started by the bench")
		return nil
	}

	// Cold: archive everything, then restart so that nothing is in memory.
	if err := r.restart(ctx, "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS=100"); err != nil {
		return fmt.Errorf("replay: restart: %w", err)
	}
	archStart := time.Now()
	if err := r.waitArchived(ctx, session, st.LastSeq, 10*time.Minute); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(r.out, "  (archived in %.1fs with a 100 ms flush interval)\n", time.Since(archStart).Seconds())
	for _, b := range r.opts.replayBatches {
		if err := r.restart(ctx); err != nil {
			return fmt.Errorf("replay: restart: %w", err)
		}
		row(r.replayOnce(ctx, session, st.LastSeq, b, "cold"))
	}
	return nil
}

// restart restarts the bench's nodes with extra variables and drops the
// client's connections to the old processes.
func (r *benchRun) restart(ctx context.Context, extra ...string) error {
	err := r.fleet.restart(ctx, extra...)
	r.client.close()
	return err
}

// fill appends n events to session with the fill producers.
func (r *benchRun) fill(ctx context.Context, session string, n int64) error {
	producers := int64(max(1, r.opts.fillProducers))
	var next, done atomic.Int64
	var errs errorCounts
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			node := int(p) % len(r.client.urls)
			ps := newProducerSession(r.client, node, session, fmt.Sprintf("%s-fill%d", r.runID, p))
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				k := int64(-1)
				if !ps.pending {
					if k = next.Add(1) - 1; k >= n {
						return
					}
				}
				class, _ := r.client.appendOnce(node, ps.uri, ps.next(r.client, k, r.opts.payload), req, resp)
				ps.done(class)
				if class != "" {
					errs.add(class, 1)
					backoff(ctx, class)
					continue
				}
				done.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Fprintf(r.out, "replay: %s of %s appended\n", fmtCount(done.Load()), fmtCount(n))
			}
		}
	}()
	wg.Wait()
	close(stop)
	if e, total := errs.snapshot(); total > 0 {
		fmtErrors(r.out, "fill", e)
	}
	return ctx.Err()
}

// waitArchived polls the session until archived_seq reaches want.
func (r *benchRun) waitArchived(ctx context.Context, session string, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastReport := time.Now()
	for {
		st, err := r.client.session(0, session)
		if err == nil && st.ArchivedSeq >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("session %s not archived after %s (last state %+v, err %v)", session, timeout, st, err)
		}
		if time.Since(lastReport) > 10*time.Second {
			fmt.Fprintf(r.out, "replay: waiting for the archive: archived_seq %d of %d\n", st.ArchivedSeq, want)
			lastReport = time.Now()
		}
		sleepCtx(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// replayOnce tails session from cursor 0 until lastSeq arrives.
func (r *benchRun) replayOnce(ctx context.Context, session string, lastSeq int64, batch int, mode string) benchResult {
	res := benchResult{Workload: "replay", Auth: r.auth, Mode: mode, BatchSize: batch}
	var errs errorCounts
	probe := r.usage()
	t0 := time.Now()
	conn, err := r.client.dialTail(ctx, 0, session, 0, batch)
	if err != nil {
		errs.add("setup", 1)
		res.Note = err.Error()
		res.Usage = probe.Finish()
		res.Errors, res.ErrorTotal = errs.snapshot()
		return res
	}
	defer conn.Close()
	var gaps []time.Duration
	var bytes, events, last int64
	prev := t0
	for last < lastSeq && ctx.Err() == nil {
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, frame, err := conn.ReadMessage()
		if err != nil {
			errs.add(closeClass(err), 1)
			break
		}
		now := time.Now()
		if res.FirstFrameMs == 0 {
			res.FirstFrameMs = float64(now.Sub(t0)) / 1e6
		}
		gaps = append(gaps, now.Sub(prev))
		prev = now
		n, l := frameLastSeq(frame)
		if n == 0 || l <= last {
			errs.add("replay: frame out of order", 1)
		}
		events += int64(n)
		bytes += int64(len(frame))
		last = max(last, l)
	}
	elapsed := time.Since(t0)
	res.Usage = probe.Finish()
	if events != lastSeq {
		errs.add(fmt.Sprintf("replay: got %d events, want %d", events, lastSeq), 1)
	}
	res.Events = events
	res.Ops = events
	res.DurationSec = elapsed.Seconds()
	res.Throughput = float64(events) / elapsed.Seconds()
	res.MBPerSec = float64(bytes) / (1 << 20) / elapsed.Seconds()
	res.Latency = measure.Summarize(gaps)
	res.Errors, res.ErrorTotal = errs.snapshot()
	return res
}
