package archive

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"starcite/fsm"
)

// testSchema creates a fresh schema, dropped at the end of the test, and
// returns the base URL and a URL whose connections use that schema.
func testSchema(t testing.TB) (base, url, schema string) {
	t.Helper()
	base = requireServiceEnv(t, "STARCITE_TEST_POSTGRES_URL")[0]
	ctx := context.Background()
	schema = "starcite_test_" + randomHex(6)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to STARCITE_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("cleanup: drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base, base + sep + "search_path=" + schema, schema
}

func openPostgresAdapter(t testing.TB, url string, migrate bool) (Adapter, error) {
	a, err := Open(context.Background(), Config{Adapter: "postgres", PostgresURL: url, PostgresPoolSize: 4, Migrate: migrate})
	if err == nil {
		t.Cleanup(func() { a.Close() })
	}
	return a, err
}

func postgresHarness() harness {
	return harness{
		name: "postgres",
		open: func(t testing.TB) Adapter {
			_, url, _ := testSchema(t)
			a, err := openPostgresAdapter(t, url, true)
			if err != nil {
				t.Fatalf("Open(postgres): %v", err)
			}
			return a
		},
	}
}

// pgConn connects to a test schema directly.
func pgConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresSchema(t *testing.T) {
	_, url, schema := testSchema(t)
	// Several nodes migrating at once.
	runConcurrently(t, 4, func(int) error {
		_, err := openPostgresAdapter(t, url, true)
		return err
	})
	ctx := context.Background()
	conn := pgConn(t, url)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM starcite_schema_migrations").Scan(&n); err != nil || n != 4 {
		t.Fatalf("migrations recorded: %d, %v", n, err)
	}
	rows, _ := conn.Query(ctx, `SELECT table_name, column_name, data_type, is_nullable, coalesce(datetime_precision, -1),
		coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = $1 AND table_name IN ('events', 'sessions', 'starcite_node_markers')
		ORDER BY table_name, ordinal_position`, schema)
	var got []string
	for rows.Next() {
		var table, col, typ, null, def string
		var prec int
		if err := rows.Scan(&table, &col, &typ, &null, &prec, &def); err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%s.%s %s %s", table, col, typ, null)
		if prec >= 0 && strings.HasPrefix(typ, "timestamp") {
			s += fmt.Sprintf(" (%d)", prec)
		}
		if def != "" {
			s += " default " + def
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"events.session_id text NO", "events.seq bigint NO", "events.type text NO", "events.payload jsonb NO",
		"events.actor text NO", "events.source text YES", "events.metadata jsonb NO default '{}'::jsonb",
		"events.refs jsonb NO default '{}'::jsonb", "events.idempotency_key text YES",
		"events.inserted_at timestamp without time zone NO (0)", "events.producer_id text YES",
		"events.producer_seq bigint YES", "events.inserted_at_us bigint YES",
		"sessions.id text NO", "sessions.title text YES", "sessions.metadata jsonb NO default '{}'::jsonb",
		"sessions.created_at timestamp without time zone NO (0)", "sessions.creator_principal jsonb YES",
		"sessions.tenant_id text NO", "sessions.created_at_us bigint YES",
		"sessions.archived boolean NO default false", "sessions.updated_at timestamp with time zone NO (6) default now()",
		"sessions.version bigint NO default 1", "sessions.updated_at_us bigint YES",
		"starcite_node_markers.node text NO", "starcite_node_markers.boot bigint NO",
		"starcite_node_markers.written_at timestamp with time zone NO (6) default now()",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("columns:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rows, _ = conn.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = $1`, schema)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for i := range defs {
		defs[i] = strings.ReplaceAll(defs[i], schema+".", "")
	}
	sort.Strings(defs)
	wantIdx := []string{
		"CREATE INDEX events_session_id_producer_id_producer_seq_index ON events USING btree (session_id, producer_id, producer_seq)",
		"CREATE INDEX sessions_metadata_index ON sessions USING gin (metadata)",
		"CREATE INDEX sessions_tenant_id_archived_id_index ON sessions USING btree (tenant_id, archived, id)",
		"CREATE INDEX sessions_tenant_id_index ON sessions USING btree (tenant_id)",
		"CREATE UNIQUE INDEX events_pkey ON events USING btree (session_id, seq)",
		"CREATE UNIQUE INDEX sessions_pkey ON sessions USING btree (id)",
		"CREATE UNIQUE INDEX starcite_node_markers_pkey ON starcite_node_markers USING btree (node)",
		"CREATE UNIQUE INDEX starcite_schema_migrations_pkey ON starcite_schema_migrations USING btree (version)",
	}
	if strings.Join(defs, "\n") != strings.Join(wantIdx, "\n") {
		t.Fatalf("indexes:\n%s\nwant:\n%s", strings.Join(defs, "\n"), strings.Join(wantIdx, "\n"))
	}
	// Without Migrate, an unmigrated schema is refused with a clear error.
	_, url2, _ := testSchema(t)
	if _, err := openPostgresAdapter(t, url2, false); err == nil || !strings.Contains(err.Error(), "not migrated") {
		t.Fatalf("Open without migrations on an empty schema: %v", err)
	}
	if _, err := openPostgresAdapter(t, url, false); err != nil {
		t.Fatalf("Open without Migrate on a migrated schema: %v", err)
	}
}

func TestPostgresTimestamps(t *testing.T) {
	_, url, _ := testSchema(t)
	a, err := openPostgresAdapter(t, url, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustWrite(t, a, "s", testEvents(1, 1, "a")) // inserted_at 12:00:02.123459
	if err := a.PutSession(ctx, Session{ID: "s", TenantID: "acme", CreatedAt: baseTime}); err != nil {
		t.Fatal(err)
	}
	conn := pgConn(t, url)
	var ins, created string
	var insUS, createdUS int64
	if err := conn.QueryRow(ctx, "SELECT inserted_at::text, inserted_at_us FROM events").Scan(&ins, &insUS); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT created_at::text, created_at_us FROM sessions").Scan(&created, &createdUS); err != nil {
		t.Fatal(err)
	}
	if ins != "2026-03-01 12:00:02" || insUS != baseTime+1_000_003 || created != "2026-03-01 12:00:01" || createdUS != baseTime {
		t.Fatalf("inserted_at %s / %d, created_at %s / %d", ins, insUS, created, createdUS)
	}
}

// TestPostgresUpstreamRows reads rows as upstream wrote them: no
// microsecond columns, NULL producer fields, jsonb in its own formatting.
func TestPostgresUpstreamRows(t *testing.T) {
	_, url, _ := testSchema(t)
	a, err := openPostgresAdapter(t, url, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn := pgConn(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO events (session_id, seq, type, payload, actor, source, metadata, refs,
		idempotency_key, inserted_at, producer_id, producer_seq) VALUES
		('up', 1, 'message', '{"z": 1, "a": {"y": [1, 2.50, "é"]}}', 'user:bob', NULL, DEFAULT, DEFAULT, NULL,
		 '2026-03-01 12:00:01', 'p', 1),
		('up', 2, 'message', '{}', 'user:bob', 'cli', '{"k": true}', '{"to_seq": 1}', 'key',
		 '2026-03-01 12:00:02', NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	// A row of an upstream release with the header columns, and one of an
	// older writer that does not know them.
	if _, err := conn.Exec(ctx, `INSERT INTO sessions (id, title, metadata, created_at, creator_principal, tenant_id,
		updated_at, version, archived) VALUES ('up', NULL, '{"b": 1, "a": "x"}', '2026-03-01 12:00:01',
		'{"id": "bob", "type": "user", "tenant_id": "t1"}', 't1', '2026-03-01 12:00:09.000042+00', 4, true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sessions (id, metadata, created_at, tenant_id)
		VALUES ('older', '{}', '2026-03-01 12:00:01', 't1')`); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, a, "up", 1, 10)
	want := []string{
		`{"seq":1,"cursor":1,"type":"message","payload":{"a":{"y":[1,2.5,"é"]},"z":1},"actor":"user:bob","producer_id":"p","producer_seq":1,"metadata":{},"refs":{},"idempotency_key":null,"inserted_at":"2026-03-01T12:00:01.000000Z","tenant_id":"acme"}`,
		`{"seq":2,"cursor":2,"type":"message","payload":{},"actor":"user:bob","producer_id":"","producer_seq":0,"source":"cli","metadata":{"k":true},"refs":{"to_seq":1},"idempotency_key":"key","inserted_at":"2026-03-01T12:00:02.000000Z","tenant_id":"acme"}`,
	}
	if len(got) != 2 || string(got[0].JSON) != want[0] || string(got[1].JSON) != want[1] {
		t.Fatalf("upstream rows:\n%s", fmtEvents(got))
	}
	checkSession(t, a, Session{ID: "up", TenantID: "t1", Creator: &Principal{"t1", "bob", "user"},
		Metadata: []byte(`{"a":"x","b":1}`), CreatedAt: baseTime - 123456, UpdatedAt: baseTime - 123456 + 8_000_042,
		Version: 4, Archived: true})
	// The older writer's row takes the column defaults: its insert time.
	older, err := a.GetSession(ctx, "older")
	if err != nil || older.Version != 1 || older.Archived || older.UpdatedAt < older.CreatedAt {
		t.Fatalf("row without header columns: %s, %v", fmtSession(older), err)
	}
	// An update compares against updated_at when updated_at_us is NULL.
	if err := a.UpdateSession(ctx, Session{ID: "up", TenantID: "t1", Metadata: []byte(`{}`), CreatedAt: baseTime - 123456,
		UpdatedAt: baseTime - 123456 + 8_000_041, Version: 9}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.GetSession(ctx, "up"); got.Version != 4 {
		t.Fatalf("an older copy replaced an upstream row: %s", fmtSession(got))
	}
}

func fmtEvents(evs []fsm.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d %s\n", e.Seq, e.JSON)
	}
	return b.String()
}
