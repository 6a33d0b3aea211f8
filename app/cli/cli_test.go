package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"starcite/client"
)

// TestExit: each kind of error maps to its exit status and message.
func TestExit(t *testing.T) {
	cases := []struct {
		err    error
		code   int
		stdout string
		stderr string
	}{
		{nil, exitOK, "", ""},
		{errHelp{"the help"}, exitOK, "the help\n", ""},
		{&usageError{msg: "bad flag", help: "usage: x"}, exitUsage, "", "starcite tail: bad flag\n\nusage: x\n"},
		{usageErrorf("bad %s", "value"), exitUsage, "", "starcite tail: bad value (see starcite tail -h)\n"},
		{&client.APIError{Status: 404, Code: "session_not_found", Body: []byte(`{"error":"session_not_found"}` + "\n")},
			exitRefused, "", `{"error":"session_not_found"}` + "\n"},
		{fmt.Errorf("starcite: GET x: %w: refused", client.ErrUnreachable), exitUnreachable, "", "starcite: GET x: unreachable: refused\n"},
		{&client.CloseError{Code: 1011, Reason: "replay_unavailable"}, exitRefused, "", "starcite: tail closed with 1011 replay_unavailable\n"},
		{errors.New("other"), exitRefused, "", "other\n"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		r := &runner{io: IO{Stdout: &out, Stderr: &errOut}}
		if code := r.exit("tail", tc.err); code != tc.code || out.String() != tc.stdout || errOut.String() != tc.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.err, code, out.String(), errOut.String(),
				tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestParse: flags and positional arguments in any order; the count of
// positional arguments is checked.
func TestParse(t *testing.T) {
	cases := []struct {
		args    []string
		want    string // positional, comma-separated
		cursor  uint64
		wantErr string
	}{
		{[]string{"s1", "--cursor", "3"}, "s1", 3, ""},
		{[]string{"--cursor", "3", "s1"}, "s1", 3, ""},
		{[]string{"--cursor=3", "s1", "--url", "http://h"}, "s1", 3, ""},
		{[]string{}, "", 0, "want 1 argument(s), got 0"},
		{[]string{"a", "b"}, "", 0, "want 1 argument(s), got 2"},
		{[]string{"s1", "--cursor", "x"}, "", 0, "invalid value"},
		{[]string{"s1", "-h"}, "", 0, "help"},
	}
	for _, tc := range cases {
		r := &runner{}
		fs := r.flags("tail")
		cursor := fs.Uint64("cursor", 0, "")
		pos, err := parse(fs, "usage", tc.args, 1)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || strings.Join(pos, ",") != tc.want || *cursor != tc.cursor):
			t.Errorf("%q: %v %d %v", tc.args, pos, *cursor, err)
		}
	}
}

func TestMetaFlag(t *testing.T) {
	m := metaFlag{}
	for _, kv := range []string{"a=1", "b=x=y", "a=2", "empty="} {
		if err := m.Set(kv); err != nil {
			t.Fatalf("%s: %v", kv, err)
		}
	}
	if fmt.Sprint(map[string]string(m)) != "map[a:2 b:x=y empty:]" {
		t.Fatalf("meta %v", m)
	}
	for _, bad := range []string{"novalue", "=v", ""} {
		if m.Set(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
