-- +goose Up
-- Who reached a cluster's nodes and when: sessions (shell, exec, copies) and port links.
-- Kept with the cluster; the owner reads them with `iog cluster events`.
CREATE TABLE cluster_events (
    id         TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    node       INTEGER NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX cluster_events_cluster ON cluster_events(cluster_id, at);

-- +goose Down
DROP TABLE cluster_events;
