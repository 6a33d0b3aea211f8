package archive

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"starcite/fsm"
	"starcite/fsm/jsonc"
)

// pgAdapter stores events and sessions in the upstream tables of
// docs/operations.md#archive-layout. Timestamps go to the upstream
// timestamp(0) columns truncated to whole seconds and, exactly, to the
// inserted_at_us / created_at_us columns of migration 0002 (updated_at_us
// of 0003), which readers prefer. jsonb reorders keys and adds spaces; readers canonicalise it back
// with jsonc, so an event reads back with the bytes it was written with.
type pgAdapter struct {
	pool *pgxpool.Pool
}

// pgBatch is the most event rows one INSERT carries
// (docs/operations.md#archive-layout).
const pgBatch = 5000

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationTable records applied migrations (upstream's Ecto
// schema_migrations table is left alone).
const migrationTable = "starcite_schema_migrations"

// migrationLockKey is the pg_advisory_lock key serialising migrations of
// nodes that start at once ("Starcite" in ASCII).
const migrationLockKey int64 = 0x5374617263697465

func openPostgres(ctx context.Context, cfg Config) (Adapter, error) {
	url := strings.TrimSpace(cfg.PostgresURL)
	if url == "" {
		return nil, errors.New("archive: postgres adapter needs a URL (DATABASE_URL or STARCITE_POSTGRES_URL)")
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("archive: postgres URL is invalid: %w", err)
	}
	size := cfg.PostgresPoolSize
	switch {
	case size < 0:
		return nil, fmt.Errorf("archive: DB_POOL_SIZE must be >= 1, got %d", size)
	case size == 0:
		size = DefaultPostgresPoolSize
	case size > math.MaxInt32:
		size = math.MaxInt32
	}
	pcfg.MaxConns = int32(size)
	cc := pcfg.ConnConfig
	where := fmt.Sprintf("postgres %s:%d/%s as %s", cc.Host, cc.Port, cc.Database, cc.User)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("archive: cannot connect to %s: %w", where, err)
	}
	if cfg.Migrate {
		if err := migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, fmt.Errorf("archive: migrate %s: %w", where, err)
		}
	}
	for _, q := range []string{"SELECT inserted_at_us FROM events LIMIT 0", "SELECT created_at_us FROM sessions LIMIT 0",
		"SELECT boot FROM starcite_node_markers LIMIT 0"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			pool.Close()
			return nil, fmt.Errorf("archive: %s: schema is not migrated (run with MIGRATE_ON_BOOT=true): %w", where, err)
		}
	}
	return &pgAdapter{pool: pool}, nil
}

type migration struct {
	version int64
	name    string
	sql     string
}

// migrations returns the embedded migrations, ordered by version (the
// number their file name starts with).
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s has no version prefix", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return int(a.version - b.version) })
	return ms, nil
}

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction, under a session-level advisory lock so that nodes starting
// together apply each migration once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	conn := pc.Conn()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
			// A connection that cannot unlock must not go back to the pool holding the lock.
			pc.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+migrationTable+` (
		version    bigint PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create %s: %w", migrationTable, err)
	}
	applied := map[int64]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+migrationTable)
	if err != nil {
		return err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read %s: %w", migrationTable, err)
	}
	for _, v := range versions {
		applied[v] = true
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+migrationTable+" (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
	}
	return nil
}

func (a *pgAdapter) Name() string { return "postgres" }

func (a *pgAdapter) Close() error {
	a.pool.Close()
	return nil
}

// floorSeconds converts Unix microseconds to whole seconds, rounding down.
func floorSeconds(us int64) int64 {
	s := us / 1_000_000
	if us%1_000_000 < 0 {
		s--
	}
	return s
}

// sessionColumns are the columns a catalogue write sets; $1..$11 in this
// order.
const sessionColumns = `(id, title, metadata, created_at, creator_principal, tenant_id, created_at_us,
	updated_at, updated_at_us, version, archived)
	VALUES ($1, $2, $3::jsonb, to_timestamp($4) AT TIME ZONE 'UTC', $5::jsonb, $6, $7,
	to_timestamp($8::double precision / 1000000), $9, $10, $11)`

const insertSession = `INSERT INTO sessions ` + sessionColumns + ` ON CONFLICT (id) DO NOTHING`

// updateSession replaces the header fields when the stored copy is older;
// rows without updated_at_us (upstream, or written before it existed) are
// compared by updated_at.
const updateSession = `INSERT INTO sessions ` + sessionColumns + `
	ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, metadata = EXCLUDED.metadata,
	updated_at = EXCLUDED.updated_at, updated_at_us = EXCLUDED.updated_at_us,
	version = EXCLUDED.version, archived = EXCLUDED.archived
	WHERE COALESCE(sessions.updated_at_us, (extract(epoch FROM sessions.updated_at) * 1000000)::bigint)
	      < EXCLUDED.updated_at_us`

func (a *pgAdapter) PutSession(ctx context.Context, s Session) error {
	if err := a.writeSession(ctx, insertSession, s); err != nil {
		return fmt.Errorf("archive: postgres put session: %w", err)
	}
	return nil
}

func (a *pgAdapter) UpdateSession(ctx context.Context, s Session) error {
	if err := a.writeSession(ctx, updateSession, s); err != nil {
		return fmt.Errorf("archive: postgres update session: %w", err)
	}
	return nil
}

func (a *pgAdapter) writeSession(ctx context.Context, query string, s Session) error {
	if s.ID == "" {
		return errors.New("empty session id")
	}
	meta, err := canonicalObject(s.Metadata)
	if err != nil {
		return fmt.Errorf("%q metadata: %w", s.ID, err)
	}
	var creator *string
	if s.Creator != nil {
		b := append([]byte(`{"tenant_id":`), jsonc.AppendString(nil, s.Creator.TenantID)...)
		b = append(append(b, `,"id":`...), jsonc.AppendString(nil, s.Creator.ID)...)
		b = append(append(b, `,"type":`...), jsonc.AppendString(nil, s.Creator.Type)...)
		c := string(append(b, '}'))
		creator = &c
	}
	updated := max(s.UpdatedAt, s.CreatedAt)
	_, err = a.pool.Exec(ctx, query, s.ID, s.Title, string(meta), floorSeconds(s.CreatedAt),
		creator, s.TenantID, s.CreatedAt, updated, updated, int64(max(s.Version, 1)), s.Archived)
	if err != nil {
		return fmt.Errorf("%q: %w", s.ID, err)
	}
	return nil
}

const selectSession = `SELECT id, title, metadata::text,
	COALESCE(created_at_us, (extract(epoch FROM created_at) * 1000000)::bigint),
	creator_principal::text, tenant_id,
	COALESCE(updated_at_us, (extract(epoch FROM updated_at) * 1000000)::bigint), version, archived
	FROM sessions WHERE id = $1`

func (a *pgAdapter) GetSession(ctx context.Context, id string) (Session, error) {
	var (
		s       Session
		meta    []byte
		creator *string
		version int64
	)
	err := a.pool.QueryRow(ctx, selectSession, id).Scan(&s.ID, &s.Title, &meta, &s.CreatedAt, &creator, &s.TenantID,
		&s.UpdatedAt, &version, &s.Archived)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("archive: postgres get session %q: %w", id, err)
	}
	s.Version = uint64(max(version, 1))
	if s.Metadata, err = jsonc.Canonical(meta); err != nil {
		return Session{}, fmt.Errorf("archive: postgres get session %q metadata: %w", id, err)
	}
	if creator != nil {
		v, err := jsonc.Parse([]byte(*creator))
		if err != nil {
			return Session{}, fmt.Errorf("archive: postgres get session %q creator_principal: %w", id, err)
		}
		s.Creator = principalFrom(v)
	}
	return s, nil
}

const insertEvents = `INSERT INTO events
	(session_id, seq, type, payload, actor, source, metadata, refs, idempotency_key,
	 inserted_at, producer_id, producer_seq, inserted_at_us)
	SELECT $1, t.seq, t.type, t.payload::jsonb, t.actor, t.source, t.metadata::jsonb, t.refs::jsonb,
	       t.idem, to_timestamp(t.ins_s) AT TIME ZONE 'UTC', t.pid, t.pseq, t.ins_us
	FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	            $9::text[], $10::bigint[], $11::text[], $12::bigint[], $13::bigint[])
	     AS t(seq, type, payload, actor, source, metadata, refs, idem, ins_s, pid, pseq, ins_us)
	ON CONFLICT (session_id, seq) DO NOTHING`

func (a *pgAdapter) WriteEvents(ctx context.Context, sessionID string, events []fsm.Event) error {
	if err := checkEvents(sessionID, events); err != nil {
		return err
	}
	for len(events) > 0 {
		n := min(len(events), pgBatch)
		if err := a.insertBatch(ctx, sessionID, events[:n]); err != nil {
			return fmt.Errorf("archive: postgres write session %q seqs %d..%d: %w",
				sessionID, events[0].Seq, events[n-1].Seq, err)
		}
		events = events[n:]
	}
	return nil
}

func (a *pgAdapter) insertBatch(ctx context.Context, sessionID string, events []fsm.Event) error {
	n := len(events)
	var (
		seqs    = make([]int64, n)
		types   = make([]string, n)
		payload = make([]string, n)
		actors  = make([]string, n)
		sources = make([]*string, n)
		metas   = make([]string, n)
		refs    = make([]string, n)
		idems   = make([]*string, n)
		insS    = make([]int64, n)
		pids    = make([]string, n)
		pseqs   = make([]int64, n)
		insUS   = make([]int64, n)
	)
	for i, ev := range events {
		e, err := fsm.ParseEvent(ev.JSON)
		if err != nil {
			return fmt.Errorf("seq %d: %w", ev.Seq, err)
		}
		if e.Seq != ev.Seq || e.Seq > math.MaxInt64 || e.Content.ProducerSeq > math.MaxInt64 {
			return fmt.Errorf("seq %d: event JSON has seq %d / producer_seq %d out of range",
				ev.Seq, e.Seq, e.Content.ProducerSeq)
		}
		c := &e.Content
		seqs[i], types[i], payload[i], actors[i] = int64(e.Seq), c.Type, string(c.Payload), c.Actor
		sources[i], metas[i], refs[i], idems[i] = c.Source, string(c.Metadata), string(c.Refs), c.IdempotencyKey
		insS[i], pids[i], pseqs[i], insUS[i] = floorSeconds(e.InsertedAt), c.ProducerID, int64(c.ProducerSeq), e.InsertedAt
	}
	_, err := a.pool.Exec(ctx, insertEvents, sessionID, seqs, types, payload, actors, sources, metas, refs,
		idems, insS, pids, pseqs, insUS)
	return err
}

const selectEvents = `SELECT seq, type, payload::text, actor, source, metadata::text, refs::text, idempotency_key,
	COALESCE(inserted_at_us, (extract(epoch FROM inserted_at) * 1000000)::bigint),
	COALESCE(producer_id, ''), COALESCE(producer_seq, 0)
	FROM events WHERE session_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq`

func (a *pgAdapter) ReadEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	from, to, ok := normRange(from, to)
	if !ok || sessionID == "" || from > math.MaxInt64 {
		return nil, nil
	}
	to = min(to, math.MaxInt64)
	out, err := a.readEvents(ctx, sessionID, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("archive: postgres read session %q: %w", sessionID, err)
	}
	return out, nil
}

func (a *pgAdapter) readEvents(ctx context.Context, sessionID, tenantID string, from, to uint64) ([]fsm.Event, error) {
	rows, err := a.pool.Query(ctx, selectEvents, sessionID, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out                   []fsm.Event
		seq, pseq             int64
		payload, meta, refsJS []byte
	)
	for rows.Next() {
		var e fsm.StoredEvent
		ct := &e.Content
		if err := rows.Scan(&seq, &ct.Type, &payload, &ct.Actor, &ct.Source, &meta, &refsJS,
			&ct.IdempotencyKey, &e.InsertedAt, &ct.ProducerID, &pseq); err != nil {
			return nil, err
		}
		e.Seq, ct.ProducerSeq = uint64(seq), uint64(pseq)
		if ct.Payload, err = jsonc.Canonical(payload); err == nil {
			if ct.Metadata, err = jsonc.Canonical(meta); err == nil {
				ct.Refs, err = jsonc.Canonical(refsJS)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("seq %d: stored JSON: %w", seq, err)
		}
		out = append(out, fsm.Event{Seq: e.Seq, JSON: e.JSON(tenantID)})
	}
	return out, rows.Err()
}
