package measure

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {95, 95}, {99, 99}, {99.9, 100}, {100, 100}, {0.5, 1}, {1, 1}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v of 1..100 = %d, want %d", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %d", got)
	}
	if got := Percentile([]time.Duration{7}, 50); got != 7 {
		t.Errorf("p50 of one sample = %d", got)
	}
	// 1,000 samples: p99 is the 990th smallest, p99.9 the 999th.
	s = s[:0]
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	if got := Percentile(s, 99); got != 990 {
		t.Errorf("p99 of 1..1000 = %d", got)
	}
	if got := Percentile(s, 99.9); got != 999 {
		t.Errorf("p99.9 of 1..1000 = %d", got)
	}
}

func TestSummarizeUnsorted(t *testing.T) {
	s := make([]time.Duration, 0, 1000)
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	got := Summarize(s)
	want := Latency{Count: 1000, Mean: 500.5, P50: 500, P95: 950, P99: 990, P999: 999, Max: 1000}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("Summarize(nil) is not zero")
	}
}
