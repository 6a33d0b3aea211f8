-- The session header fields that can change (docs/operations.md#archive-layout):
-- the same columns, defaults and index as the upstream migrations that
-- added them, so this is a no-op on a database an upstream release
-- already migrated. Defaults keep inserts of builds that do not write
-- these columns working while a cluster is upgraded.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS archived boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS sessions_tenant_id_archived_id_index ON sessions (tenant_id, archived, id);

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS updated_at timestamptz;
UPDATE sessions SET updated_at = created_at AT TIME ZONE 'UTC' WHERE updated_at IS NULL;
ALTER TABLE sessions ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE sessions ALTER COLUMN updated_at SET NOT NULL;

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS version bigint;
UPDATE sessions SET version = 1 WHERE version IS NULL;
ALTER TABLE sessions ALTER COLUMN version SET DEFAULT 1;
ALTER TABLE sessions ALTER COLUMN version SET NOT NULL;

-- Go addition, as created_at_us: the exact microseconds of updated_at.
-- NULL on rows written by upstream or before this migration, whose
-- readers fall back to updated_at.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS updated_at_us bigint;
