-- Go addition: the upstream timestamp(0) columns hold whole seconds; these
-- keep the exact Unix-microsecond times so reads reproduce the event and
-- session timestamps byte for byte. NULL on rows written by upstream, whose
-- readers fall back to the timestamp(0) column.
ALTER TABLE events ADD COLUMN IF NOT EXISTS inserted_at_us bigint;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS created_at_us bigint;
