package actors

import (
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 30 * time.Second, ""},
		{[]string{"1"}, time.Millisecond, ""},
		{[]string{"45000"}, 45 * time.Second, ""},
		{[]string{"0"}, 0, `invalid timeout "0" (expected positive integer ms)`},
		{[]string{"-3"}, 0, `invalid timeout "-3" (expected positive integer ms)`},
		{[]string{"2s"}, 0, `invalid timeout "2s" (expected positive integer ms)`},
		{[]string{""}, 0, `invalid timeout "" (expected positive integer ms)`},
		{[]string{"99999999999999999999"}, 0, `invalid timeout "99999999999999999999" (expected positive integer ms)`},
	} {
		got, err := ParseTimeout(tc.args)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", tc.args, got, err, tc.want)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("ParseTimeout(%q) error %v; want %s", tc.args, err, tc.err)
		}
	}
	if got := TimeoutMessage("local_ready", 1500*time.Millisecond); got != "timeout waiting for local_ready after 1500ms" {
		t.Errorf("TimeoutMessage: %q", got)
	}
}

func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{4}, "4"},
		{[]int{0, 1, 2, 3}, "0-3"},
		{[]int{0, 2, 3, 7, 9, 10}, "0,2-3,7,9-10"},
	} {
		if got := ranges(tc.in); got != tc.want {
			t.Errorf("ranges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
