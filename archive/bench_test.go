package archive

import (
	"context"
	"strings"
	"testing"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// benchBatch is the archiver's batch size
// (docs/operations.md#the-archiver).
const benchBatch = 5000

// benchEvent is an event with a 200-byte payload.
func benchEvent(seq uint64) fsm.Event {
	head := `{"n":` + itoa(seq) + `,"text":"`
	payload := head + strings.Repeat("x", 200-len(head)-2) + `"}`
	c := fsm.Content{Type: "message", Payload: []byte(payload), Actor: "user:bench", ProducerID: "bench",
		ProducerSeq: seq, Metadata: []byte("{}"), Refs: []byte("{}")}
	if _, err := jsonc.Canonical(c.Payload); err != nil || len(payload) != 200 {
		panic("bad bench payload")
	}
	return fsm.Event{Seq: seq, JSON: fsm.EventJSON(seq, fsm.AppendBody(nil, &c, baseTime+int64(seq), testTenant))}
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func benchEvents(from uint64, n int) ([]fsm.Event, int64) {
	evs := make([]fsm.Event, n)
	var size int64
	for i := range evs {
		evs[i] = benchEvent(from + uint64(i))
		size += int64(len(evs[i].JSON))
	}
	return evs, size
}

func benchHarnesses() []harness {
	return []harness{fileHarness(), s3Harness(), postgresHarness()}
}

// BenchmarkWriteEvents measures archive write throughput: one op is one
// WriteEvents of 5,000 new events (200-byte payloads) to one session.
func BenchmarkWriteEvents(b *testing.B) {
	for _, h := range benchHarnesses() {
		b.Run(h.name, func(b *testing.B) {
			a := h.open(b)
			ctx := context.Background()
			next := uint64(1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				evs, size := benchEvents(next, benchBatch)
				next += benchBatch
				b.SetBytes(size)
				b.StartTimer()
				if err := a.WriteEvents(ctx, "bench", evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadEvents measures cold reads (no read cache): one op reads
// 5,000 archived events, seqs 1..5000, from the adapter.
func BenchmarkReadEvents(b *testing.B) {
	for _, h := range benchHarnesses() {
		b.Run(h.name, func(b *testing.B) {
			a := h.open(b)
			ctx := context.Background()
			evs, size := benchEvents(1, benchBatch)
			if err := a.WriteEvents(ctx, "bench", evs); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := a.ReadEvents(ctx, "bench", testTenant, 1, benchBatch)
				if err != nil || len(got) != benchBatch {
					b.Fatalf("read %d events: %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
