-- +goose Up
-- The tasks of a job array (type array): one row per task, made with its cluster. A task is
-- pending until a node pulls it (running, bound to that node's lease), then succeeded or
-- failed with the exit code of its last attempt; a failed attempt with attempts left, or the
-- end of the lease running it, puts it back to pending. attempts counts the starts; retries is
-- how many more starts than one a task may have.
CREATE TABLE cluster_tasks (
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    idx        BIGINT NOT NULL,
    state      TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    retries    BIGINT NOT NULL DEFAULT 0,
    exit_code  BIGINT,
    lease_id   TEXT NOT NULL DEFAULT '',
    rank       BIGINT NOT NULL DEFAULT -1,
    device_id  TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL DEFAULT 0,
    ended_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster_id, idx)
);
CREATE INDEX cluster_tasks_lease ON cluster_tasks(lease_id, state);

-- +goose Down
DROP TABLE cluster_tasks;
