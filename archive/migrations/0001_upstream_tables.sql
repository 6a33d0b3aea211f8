-- The upstream tables of docs/operations.md#archive-layout, with the names
-- Ecto gave their constraints and indexes, so that this is a no-op on a
-- database an upstream release already migrated, and completes one from an
-- older release.

CREATE TABLE IF NOT EXISTS events (
    session_id      text NOT NULL,
    seq             bigint NOT NULL,
    type            text NOT NULL,
    payload         jsonb NOT NULL,
    actor           text NOT NULL,
    source          text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    refs            jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key text,
    inserted_at     timestamp(0) without time zone NOT NULL,
    producer_id     text,
    producer_seq    bigint,
    CONSTRAINT events_pkey PRIMARY KEY (session_id, seq)
);
ALTER TABLE events ADD COLUMN IF NOT EXISTS producer_id text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS producer_seq bigint;
DROP INDEX IF EXISTS events_session_id_inserted_at_index;
CREATE INDEX IF NOT EXISTS events_session_id_producer_id_producer_seq_index
    ON events (session_id, producer_id, producer_seq);

CREATE TABLE IF NOT EXISTS sessions (
    id                text NOT NULL,
    title             text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamp(0) without time zone NOT NULL,
    creator_principal jsonb,
    tenant_id         text NOT NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (id)
);
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS creator_principal jsonb;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS tenant_id text;
UPDATE sessions
   SET tenant_id = COALESCE(creator_principal->>'tenant_id', metadata->>'tenant_id', 'service')
 WHERE tenant_id IS NULL;
ALTER TABLE sessions ALTER COLUMN tenant_id SET NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_metadata_index ON sessions USING gin (metadata);
CREATE INDEX IF NOT EXISTS sessions_tenant_id_index ON sessions (tenant_id);
