-- One row per node that uses this archive (docs/operations.md#one-archive-per-cluster):
-- each node writes its own at boot and looks for its peers', which shows
-- that every node of a cluster reaches the same database.
CREATE TABLE IF NOT EXISTS starcite_node_markers (
    node       text PRIMARY KEY,
    boot       bigint NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
