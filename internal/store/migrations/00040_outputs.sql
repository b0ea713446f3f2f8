-- +goose Up
-- What each node of a cluster left in its outputs directory: a blob (tar.gz) in the blob store,
-- by content hash. One row per node; a later upload for the same node replaces it.
CREATE TABLE cluster_outputs (
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    rank       BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, rank)
);
CREATE INDEX cluster_outputs_age ON cluster_outputs(created_at);

-- +goose Down
DROP TABLE cluster_outputs;
