// Package archive tests the archive end to end for each adapter against a
// real node: events archived and evicted come back byte-identical from
// cold replay; an archive outage keeps appends going until the pending
// budget, then refuses them with 429 event_store_backpressure, and drains when the
// archive returns; a replay that needs the archive while it is down closes
// 1011 (a tail channel gets phx_error); a node killed while flushing
// re-flushes without loss or duplicates.
//
// S3 and Postgres are real servers (.ci/services.sh); faults are real
// network cuts through a proxy owned by the test.
package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"starcite/archive"
	"starcite/test/harness"
)

const wait = 60 * time.Second

// backend is one archive adapter under test, with a way to take it down.
type backend struct {
	name string
	env  map[string]string
	cfg  archive.Config // for reading the archive directly
	cut  func()
	heal func()
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// need returns a service variable, failing (under make test) or skipping
// when it is missing.
func need(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: start the test services with `eval \"$(.ci/services.sh up)\"`", name)
		if os.Getenv("STARCITE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return v
}

func fileBackend(t *testing.T) backend {
	dir := filepath.Join(t.TempDir(), "archive")
	off := dir + ".off"
	return backend{
		name: "file",
		env:  map[string]string{"STARCITE_ARCHIVE_ADAPTER": "file", "STARCITE_ARCHIVE_DIR": dir},
		cfg:  archive.Config{Adapter: "file", Dir: dir},
		// The directory vanishes and a plain file takes its place: every
		// read and write of the adapter fails.
		cut: func() {
			if err := os.Rename(dir, off); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		heal: func() {
			os.Remove(dir)
			if err := os.Rename(off, dir); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func s3Backend(t *testing.T) backend {
	endpoint := need(t, "STARCITE_TEST_S3_ENDPOINT")
	key, secret := need(t, "STARCITE_TEST_S3_ACCESS_KEY_ID"), need(t, "STARCITE_TEST_S3_SECRET_ACCESS_KEY")
	bucket := randomName("e2e-")
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	proxy := harness.NewProxy(t, strings.TrimPrefix(endpoint, "http://"))
	via := "http://" + proxy.Addr()
	return backend{
		name: "s3",
		env: map[string]string{"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": bucket,
			"STARCITE_S3_ENDPOINT": via, "STARCITE_S3_REGION": "us-east-1",
			"STARCITE_S3_ACCESS_KEY_ID": key, "STARCITE_S3_SECRET_ACCESS_KEY": secret},
		cfg: archive.Config{Adapter: "s3", S3Bucket: bucket, S3Endpoint: endpoint, S3Region: "us-east-1",
			S3AccessKeyID: key, S3SecretAccessKey: secret, S3PathStyle: true},
		cut:  proxy.Cut,
		heal: proxy.Heal,
	}
}

func postgresBackend(t *testing.T) backend {
	url := need(t, "STARCITE_TEST_POSTGRES_URL")
	schema := randomName("e2e_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := harness.NewProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	withSchema := func(u string) string { return u + "&search_path=" + schema }
	via := strings.Replace(url, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), proxy.Addr(), 1)
	return backend{
		name: "postgres",
		env:  map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": withSchema(via)},
		cfg:  archive.Config{Adapter: "postgres", PostgresURL: withSchema(url)},
		cut:  proxy.Cut,
		heal: proxy.Heal,
	}
}

func TestArchive(t *testing.T) {
	for _, mk := range []func(*testing.T) backend{fileBackend, s3Backend, postgresBackend} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) { testBackend(t, b) })
	}
}

func testBackend(t *testing.T, b backend) {
	env := map[string]string{
		"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "200",
		"STARCITE_PENDING_MAX_SIZE":          "2M",
		"STARCITE_NUM_GROUPS":                "4",
	}
	for k, v := range b.env {
		env[k] = v
	}
	n := harness.StartNode(t, harness.Options{Env: env})

	// 1. Archived and evicted events come back byte-identical to what
	// live tails received, from the tail and from the events route.
	n.CreateSession("rt", nil)
	live := n.Tail("rt", 0, 1)
	const total = 600 // three 256-event chunks
	for i := uint64(1); i <= total; i++ {
		payload := map[string]any{"i": i, "text": "é \"quoted\"\n", "f": 1.5, "nested": map[string]any{"b": []any{1, "x"}}}
		if st, _, body, err := n.Append("rt", "w", i, payload); err != nil || st != 201 {
			t.Fatalf("append %d: %d %s %v", i, st, body, err)
		}
	}
	frames := collectRaw(t, live, total)
	waitArchived(t, n, "rt")
	n.WaitFor(wait, "the hot tier to empty", func() bool { return n.Metric("starcite_archive_pending_rows") == 0 })
	n.Restart() // memory and read cache are empty: every event comes from the archive
	assertSame(t, "cold tail replay", frames, collectRaw(t, n.Tail("rt", 0, 1), total))
	stored, err := n.Events("rt")
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, "cold events route", frames, stored)
	assertArchiveHolds(t, b, "rt", frames)

	// 2. A replay that needs the archive while it is down closes 1011
	// (docs/decisions.md#d9), the events route answers 503; hot events
	// still serve.
	n.Restart()
	b.cut()
	code, reason, err := n.Tail("rt", 0, 1).CloseCode(wait)
	if err != nil || code != 1011 {
		t.Fatalf("replay with the archive down: close %d %q %v, want 1011", code, reason, err)
	}
	// The same replay on a tail channel: the join succeeds, then the
	// channel ends with phx_error (the client rejoins) and no event at all.
	sock := n.Socket("")
	jref, err := sock.Join("tail:rt", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"phx_reply", "phx_error"} {
		f, err := sock.NextOn("tail:rt", wait)
		if err != nil || f.Event != want || *f.JoinRef != jref || (want == "phx_reply" && f.Status() != "ok") {
			t.Fatalf("channel replay with the archive down: got %v %v, want %s", f, err, want)
		}
	}
	if st, body := n.Do("GET", "/v1/sessions/rt/events?cursor=0", nil, nil); st != 503 ||
		harness.JSON(t, body)["error"] != "replay_unavailable" {
		t.Fatalf("events with the archive down: %d %s", st, body)
	}
	for i := uint64(total + 1); i <= total+5; i++ {
		if st, _, body, _ := n.Append("rt", "w", i, map[string]any{"i": i}); st != 201 {
			t.Fatalf("append during the outage: %d %s", st, body)
		}
	}
	if _, err := n.Tail("rt", total, 1).Collect(total+1, total+5, wait); err != nil {
		t.Fatalf("hot replay during the outage: %v", err)
	}

	// 3. Appends continue until the pending budget, then 429
	// event_store_backpressure with Retry-After: 1; nothing acknowledged
	// is lost, and the backlog drains when the archive is back.
	n.CreateSession("bl", nil)
	blob := strings.Repeat("b", 20<<10)
	acked := uint64(0)
	for i := uint64(1); ; i++ {
		st, _, body, err := n.Append("bl", "w", i, map[string]any{"blob": blob})
		if err != nil {
			t.Fatal(err)
		}
		if st == 429 {
			if e := harness.JSON(t, body); e["error"] != "event_store_backpressure" {
				t.Fatalf("refusal at the budget: %s", body)
			}
			r, err := n.TryRequest("POST", "/v1/sessions/bl/append", map[string]any{"type": "msg",
				"payload": map[string]any{"blob": blob}, "producer_id": "w", "producer_seq": i}, nil)
			if err != nil || r.Status != 429 || r.Header.Get("Retry-After") != "1" {
				t.Fatalf("refusal repeated: %d, Retry-After %q, %v", r.Status, r.Header.Get("Retry-After"), err)
			}
			break
		}
		if st != 201 || i > 1000 {
			t.Fatalf("append %d: %d %s (budget never reached?)", i, st, body)
		}
		acked = i
	}
	if acked < 50 {
		t.Fatalf("only %d appends before the 2M budget", acked)
	}
	b.heal()
	waitArchived(t, n, "bl")
	n.WaitFor(wait, "the hot tier to drain", func() bool { return n.Metric("starcite_archive_pending_rows") == 0 })
	if st, _, body, _ := n.Append("bl", "w", acked+1, map[string]any{"blob": "after"}); st != 201 {
		t.Fatalf("append after the archive came back: %d %s", st, body)
	}
	evs, err := n.Events("bl")
	if err != nil || uint64(len(evs)) != acked+1 {
		t.Fatalf("backlog session holds %d events, want %d: %v", len(evs), acked+1, err)
	}

	// 4. kill -9 while the archiver flushes: after restart everything is
	// archived exactly once.
	n.CreateSession("kf", nil)
	seq := uint64(0)
	appendUntil := func(to uint64) {
		for seq < to {
			st, _, _, err := n.Append("kf", "w", seq+1, map[string]any{"i": seq + 1})
			if err == nil && st == 201 {
				seq++
			} else if n.Running() {
				t.Fatalf("append %d: %d %v", seq+1, st, err)
			}
		}
	}
	for round := 1; round <= 3; round++ {
		appendUntil(uint64(round) * 400)
		n.Kill() // the archiver flushes every 200 ms: some flush is usually in flight
		n.Start()
		n.WaitReady(wait)
	}
	waitArchived(t, n, "kf")
	stored, err = n.Events("kf")
	if err != nil || uint64(len(stored)) != seq {
		t.Fatalf("kf holds %d events, want %d: %v", len(stored), seq, err)
	}
	assertArchiveHolds(t, b, "kf", stored)
}

// waitArchived waits until the archive holds every event of a session.
func waitArchived(t *testing.T, n *harness.Node, session string) {
	t.Helper()
	n.WaitFor(wait, session+" fully archived", func() bool {
		st, body, err := n.TryDo("GET", "/v1/sessions/"+session, nil, nil)
		if err != nil || st != 200 {
			return false
		}
		var s struct {
			LastSeq     uint64 `json:"last_seq"`
			ArchivedSeq uint64 `json:"archived_seq"`
		}
		return json.Unmarshal(body, &s) == nil && s.LastSeq > 0 && s.ArchivedSeq == s.LastSeq
	})
}

func collectRaw(t *testing.T, c *harness.TailClient, upto uint64) []json.RawMessage {
	t.Helper()
	evs, err := c.Collect(1, upto, wait)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.Raw
	}
	return out
}

func assertSame(t *testing.T, what string, want, got []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: event %d differs\n got %s\nwant %s", what, i+1, got[i], want[i])
		}
	}
}

// assertArchiveHolds reads the archive directly: exactly the given events,
// once each, in order.
func assertArchiveHolds(t *testing.T, b backend, session string, want []json.RawMessage) {
	t.Helper()
	a, err := archive.Open(context.Background(), b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got, err := a.ReadEvents(context.Background(), session, "service", 1, uint64(len(want))+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("archive holds %d events of %s, want %d", len(got), session, len(want))
	}
	for i, ev := range got {
		if ev.Seq != uint64(i+1) || !bytes.Equal(ev.JSON, want[i]) {
			t.Fatalf("archive event %d of %s: seq %d\n got %s\nwant %s", i+1, session, ev.Seq, ev.JSON, want[i])
		}
	}
}
