package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"starcite/client"
	"starcite/test/harness"
)

// result is one run of a client command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs `starcite args...` with STARCITE_URL=url and stdin.
func run(t *testing.T, url, stdin string, args ...string) result {
	t.Helper()
	r, err := tryRun(harness.Binary(t), url, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryRun is run for any goroutine: it reports what run would fail on.
func tryRun(bin, url, stdin string, args ...string) (result, error) {
	var out, errOut bytes.Buffer
	code, err := harness.Exec(bin, map[string]string{"STARCITE_URL": url}, strings.NewReader(stdin), &out, &errOut, wait, args...)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}, err
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// expect checks a run's status; refusals print the server's exact error
// body on stderr and nothing on stdout.
func expect(t *testing.T, r result, code int, args []string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("starcite %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	if code != 0 && r.stderr == "" {
		t.Fatalf("starcite %q: exit %d with nothing on stderr", args, code)
	}
}

// refusal is the error body of a code, as the server sends it.
func refusal(code, message string) string {
	return `{"error":"` + code + `","message":"` + message + `"}` + "\n"
}

// TestCommands: every client command against a real node — what it
// prints, its exit status for success, refusal (1), bad input (2) and an
// unreachable node (3).
func TestCommands(t *testing.T) {
	n := harness.StartNode(t, harness.Options{})
	url := n.URL()
	c := newClient(t, []*harness.Node{n})
	starcite := func(stdin string, args ...string) result { t.Helper(); return run(t, url, stdin, args...) }
	ok := func(stdin string, args ...string) string {
		t.Helper()
		r := starcite(stdin, args...)
		expect(t, r, 0, args)
		return r.stdout
	}

	t.Run("session create", func(t *testing.T) {
		var s map[string]any
		json.Unmarshal([]byte(ok("", "session", "create", "--title", "Draft", "--meta", "team=legal", "--id", "s1", "--meta", "n=1")), &s)
		meta, _ := s["metadata"].(map[string]any)
		if s["id"] != "s1" || s["title"] != "Draft" || s["last_seq"] != 0.0 || meta["team"] != "legal" || meta["n"] != "1" {
			t.Fatalf("created %v", s)
		}
		json.Unmarshal([]byte(ok("", "session", "create")), &s)
		if id, _ := s["id"].(string); !strings.HasPrefix(id, "ses_") || s["title"] != nil {
			t.Fatalf("generated %v", s)
		}
		args := []string{"session", "create", "--id", "s1"}
		r := starcite("", args...)
		expect(t, r, 1, args)
		if r.stderr != refusal("session_exists", "Session already exists") || r.stdout != "" {
			t.Fatalf("duplicate: stdout %q stderr %q", r.stdout, r.stderr)
		}
	})

	t.Run("append", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "payload.json")
		os.WriteFile(file, []byte(`{"from":"file"}`+"\n"), 0o644)
		steps := []struct {
			stdin string
			args  []string
			want  []string // answer lines
		}{
			{"", []string{"append", "s1", "--type", "m", "--payload", `{"text":"hello"}`, "--producer-id", "w", "--producer-seq", "1"},
				[]string{`{"seq":1,"last_seq":1,"deduped":false}`}},
			// the same command again: a safe retry
			{"", []string{"append", "s1", "--type", "m", "--payload", `{"text":"hello"}`, "--producer-id", "w", "--producer-seq", "1"},
				[]string{`{"seq":1,"last_seq":1,"deduped":true}`}},
			{"", []string{"append", "--payload", "@" + file, "s1", "--type", "m"}, []string{`{"seq":2,"last_seq":2,"deduped":false}`}},
			{`  {"from":"stdin"}  `, []string{"append", "s1", "--type", "m", "--payload", "-"}, []string{`{"seq":3,"last_seq":3,"deduped":false}`}},
			{"plain words\n", []string{"append", "s1", "--type", "m", "--payload", "-", "--text"}, []string{`{"seq":4,"last_seq":4,"deduped":false}`}},
			{"{\"l\":1}\n\n{\"l\":2}\n", []string{"append", "s1", "--type", "m", "--payload", "-", "--lines"},
				[]string{`{"seq":5,"last_seq":5,"deduped":false}`, `{"seq":6,"last_seq":6,"deduped":false}`}},
			{"The\nquick\n\nfox", []string{"append", "s1", "--type", "token", "--payload", "-", "--lines", "--text", "--producer-id", "t", "--producer-seq", "1"},
				[]string{`{"seq":7,"last_seq":7,"deduped":false}`, `{"seq":8,"last_seq":8,"deduped":false}`,
					`{"seq":9,"last_seq":9,"deduped":false}`, `{"seq":10,"last_seq":10,"deduped":false}`}},
		}
		for _, s := range steps {
			if got := lines(ok(s.stdin, s.args...)); strings.Join(got, "\n") != strings.Join(s.want, "\n") {
				t.Fatalf("starcite %q printed %q, want %q", s.args, got, s.want)
			}
		}
		log := readLog(t, c, "s1")
		var payloads []string
		for _, e := range log {
			payloads = append(payloads, string(e.Payload))
		}
		want := `{"text":"hello"} {"from":"file"} {"from":"stdin"} {"text":"plain words"} {"l":1} {"l":2} ` +
			`{"text":"The"} {"text":"quick"} {"text":""} {"text":"fox"}`
		if strings.Join(payloads, " ") != want {
			t.Fatalf("log payloads %s\nwant %s", strings.Join(payloads, " "), want)
		}
		if log[6].ProducerID != "t" || log[6].ProducerSeq != 1 || log[9].ProducerSeq != 4 {
			t.Fatalf("token events %s / %s", log[6].Raw, log[9].Raw)
		}
	})

	t.Run("session get and list", func(t *testing.T) {
		var s map[string]any
		json.Unmarshal([]byte(ok("", "session", "get", "s1")), &s)
		if s["id"] != "s1" || s["last_seq"] != 10.0 {
			t.Fatalf("get %v", s)
		}
		ok("", "session", "create", "--id", "s2", "--meta", "team=legal")
		ok("", "session", "create", "--id", "s3", "--meta", "team=ops")
		ids := func(out string) string {
			var got []string
			for _, l := range lines(out) {
				var s struct{ ID string }
				json.Unmarshal([]byte(l), &s)
				got = append(got, s.ID)
			}
			return strings.Join(got, ",")
		}
		if got := ids(ok("", "session", "list", "--meta", "team=legal")); got != "s1,s2" {
			t.Fatalf("list team=legal: %s", got)
		}
		all := ids(ok("", "session", "list"))
		if strings.Count(all, ",") != 3 || !strings.HasPrefix(all, "s1,s2,s3,ses_") {
			t.Fatalf("list: %s", all)
		}
		if got := ids(ok("", "session", "list", "--limit", "2")); got != "s1,s2" {
			t.Fatalf("list --limit 2: %s", got)
		}
	})

	t.Run("tail", func(t *testing.T) {
		var want []string
		for _, e := range readLog(t, c, "s1") {
			want = append(want, string(e.Raw))
		}
		if got := lines(ok("", "tail", "s1")); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("tail printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if got := lines(ok("", "tail", "s1", "--cursor", "7", "--batch-size", "2")); strings.Join(got, "\n") != strings.Join(want[7:], "\n") {
			t.Fatalf("tail --cursor 7 printed %q", got)
		}
		if out := ok("", "tail", "s1", "--cursor", "10"); out != "" {
			t.Fatalf("tail at last_seq printed %q", out)
		}
		if out := ok("", "tail", "s1", "--cursor", "99"); out != "" {
			t.Fatalf("tail past last_seq printed %q", out)
		}
	})

	t.Run("tail --follow", func(t *testing.T) {
		cmd := exec.Command(harness.Binary(t), "tail", "s1", "--cursor", "9", "--follow")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "STARCITE_URL=" + url}
		stdout, _ := cmd.StdoutPipe()
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		out := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				out <- sc.Text()
			}
			close(out)
		}()
		next := func() client.Event {
			t.Helper()
			select {
			case l, open := <-out:
				if !open {
					t.Fatalf("tail --follow ended: %s", errOut.String())
				}
				var e client.Event
				json.Unmarshal([]byte(l), &e)
				return e
			case <-time.After(wait):
				t.Fatal("tail --follow printed nothing")
			}
			return client.Event{}
		}
		if e := next(); e.Seq != 10 {
			t.Fatalf("first event %d, want 10", e.Seq)
		}
		ok("", "append", "s1", "--type", "m", "--payload", `{"live":true}`)
		if e := next(); e.Seq != 11 || string(e.Payload) != `{"live":true}` {
			t.Fatalf("live event %d %s", e.Seq, e.Payload)
		}
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if err != nil {
			t.Fatalf("tail --follow after SIGINT: %v, stderr %s", err, errOut.String())
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			stdin string
			args  []string
			body  string
		}{
			{"", []string{"session", "get", "nope"}, refusal("session_not_found", "Session was not found")},
			{"", []string{"append", "nope", "--type", "m", "--payload", "{}"}, refusal("session_not_found", "Session was not found")},
			{"", []string{"tail", "nope"}, refusal("session_not_found", "Session was not found")},
			{"", []string{"tail", "nope", "--follow"}, refusal("session_not_found", "Session was not found")},
			// JSON but not an object: the server's to refuse
			{"", []string{"append", "s1", "--type", "m", "--payload", "[1]"}, refusal("invalid_event", "Invalid event payload")},
			// a producer that does not start at 1
			{"", []string{"append", "s1", "--type", "m", "--payload", "{}", "--producer-id", "new", "--producer-seq", "3"},
				refusal("producer_seq_conflict", "Producer new expected seq 1, got 3")},
		}
		for _, tc := range cases {
			r := starcite(tc.stdin, tc.args...)
			expect(t, r, 1, tc.args)
			if tc.body != "" && r.stderr != tc.body {
				t.Fatalf("starcite %q: stderr %q, want %q", tc.args, r.stderr, tc.body)
			}
			if r.stdout != "" {
				t.Fatalf("starcite %q: stdout %q", tc.args, r.stdout)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		before, err := c.GetSession(context.Background(), "s1")
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			stdin string
			args  []string
			say   string // in stderr
		}{
			{"", []string{"session"}, "missing subcommand"},
			{"", []string{"session", "drop"}, "unknown subcommand"},
			{"", []string{"session", "create", "--meta", "novalue"}, "key=value"},
			{"", []string{"session", "create", "extra"}, "want 0 argument"},
			{"", []string{"session", "get"}, "want 1 argument"},
			{"", []string{"session", "list", "--limit", "-1"}, "--limit"},
			{"", []string{"session", "list", "--meta", "a[b]=c"}, "--meta"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "{bad"}, "not valid JSON"},
			{"{bad\n", []string{"append", "s1", "--type", "m", "--payload", "-"}, "not valid JSON"},
			{"", []string{"append", "s1", "--payload", "{}"}, "--type is required"},
			{"", []string{"append", "s1", "--type", "m"}, "--payload is required"},
			{"", []string{"append", "--type", "m", "--payload", "{}"}, "want 1 argument"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "{}", "--producer-seq", "2"}, "--producer-seq needs --producer-id"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "{}", "--producer-id", "p", "--producer-seq", "0"}, "starts at 1"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "{}", "--lines"}, "--lines reads"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "@/nonexistent/file"}, "no such file"},
			{"", []string{"append", "s1", "--type", "m", "--payload", "{}", "--bogus"}, "not defined"},
			{"", []string{"tail", "s1", "--batch-size", "0"}, "--batch-size"},
			{"", []string{"tail", "s1", "--batch-size", "1001"}, "--batch-size"},
			{"", []string{"tail", "s1", "--cursor", "-1"}, "--cursor"},
			{"", []string{"tail", "s1", "--url", "127.0.0.1:4000"}, "--url"},
			{"", []string{"frobnicate"}, "unknown command"},
		}
		for _, tc := range cases {
			r := starcite(tc.stdin, tc.args...)
			expect(t, r, 2, tc.args)
			if !strings.Contains(r.stderr, tc.say) || r.stdout != "" {
				t.Fatalf("starcite %q: stdout %q, stderr %q, want %q in it", tc.args, r.stdout, r.stderr, tc.say)
			}
		}
		// --lines appends the good lines before a bad one, then stops.
		args := []string{"append", "s1", "--type", "m", "--payload", "-", "--lines"}
		r := starcite("{\"ok\":1}\nnot json\n{\"ok\":2}\n", args...)
		expect(t, r, 2, args)
		if !strings.Contains(r.stderr, "line 2") || len(lines(r.stdout)) != 1 {
			t.Fatalf("bad line 2: stdout %q stderr %q", r.stdout, r.stderr)
		}
		after, _ := c.GetSession(context.Background(), "s1")
		if after.LastSeq != before.LastSeq+1 {
			t.Fatalf("last_seq %d → %d: bad input appended something", before.LastSeq, after.LastSeq)
		}
	})

	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"session", "help"}, {"append", "-h"}, {"tail", "--help"}, {"session", "list", "-h"}} {
			if out := ok("", args...); !strings.Contains(out, "usage:") || !strings.Contains(out, "--url") {
				t.Fatalf("starcite %q printed %q", args, out)
			}
		}
		if out := ok("", "help"); !strings.Contains(out, "session") || !strings.Contains(out, "tail") {
			t.Fatalf("starcite help: %q", out)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		dead := "http://127.0.0.1:1"
		// Each command retries for a few seconds: run them side by side
		// (not as parallel subtests, which -parallel caps at GOMAXPROCS).
		commands := [][]string{
			{"session", "create"}, {"session", "list"}, {"session", "get", "s1"},
			{"append", "s1", "--type", "m", "--payload", "{}"}, {"tail", "s1"}, {"tail", "s1", "--follow"},
		}
		results := make([]result, len(commands))
		errs := make([]error, len(commands))
		bin := harness.Binary(t)
		var wg sync.WaitGroup
		for i, args := range commands {
			wg.Add(1)
			go func() { defer wg.Done(); results[i], errs[i] = tryRun(bin, dead, "", args...) }()
		}
		wg.Wait()
		for i, args := range commands {
			r := results[i]
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			expect(t, r, 3, args)
			if !strings.Contains(r.stderr, "unreachable") || r.stdout != "" {
				t.Fatalf("starcite %q: stdout %q stderr %q", args, r.stdout, r.stderr)
			}
		}
		// With a second URL that answers, the dead one is skipped.
		if out := run(t, dead+","+url, "", "session", "get", "s1"); out.code != 0 || !strings.Contains(out.stdout, `"id":"s1"`) {
			t.Fatalf("dead node first: %+v", out)
		}
	})
}
