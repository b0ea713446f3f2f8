-- +goose Up
-- Times are unix milliseconds (BIGINT) and booleans are INTEGER 0/1 so that the same SQL runs
-- on SQLite and PostgreSQL.
CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    roles      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    hash       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    prefix     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE join_tokens (
    hash       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    device_id  TEXT
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    public_key    TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    region        TEXT NOT NULL,
    gpu_model     TEXT NOT NULL,
    gpu_count     INTEGER NOT NULL,
    ask_per_hour  BIGINT NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0,
    shared_host   INTEGER NOT NULL DEFAULT 0,
    inventory     TEXT NOT NULL,
    addr          TEXT NOT NULL DEFAULT '',
    data_plane    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_owner ON devices(owner_id);
CREATE INDEX devices_status ON devices(status);

CREATE TABLE device_events (
    device_id TEXT NOT NULL REFERENCES devices(id),
    at        BIGINT NOT NULL,
    status    TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX device_events_device ON device_events(device_id, at);

CREATE TABLE clusters (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES accounts(id),
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    degraded   INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL DEFAULT 0,
    ended_at   BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX clusters_owner ON clusters(owner_id, created_at);
CREATE INDEX clusters_state ON clusters(state);

CREATE TABLE leases (
    id         TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    device_id  TEXT NOT NULL REFERENCES devices(id),
    rank       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    exit_code  INTEGER,
    gpus       TEXT NOT NULL DEFAULT '',
    active     INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL DEFAULT 0,
    ended_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX leases_cluster ON leases(cluster_id, rank);
CREATE INDEX leases_device ON leases(device_id);
-- The store itself guarantees that no device is ever in two active leases.
CREATE UNIQUE INDEX leases_one_active_per_device ON leases(device_id) WHERE active = 1;

CREATE TABLE log_chunks (
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    seq        BIGINT NOT NULL,
    lease_id   TEXT NOT NULL,
    rank       INTEGER NOT NULL,
    stream     TEXT NOT NULL,
    data       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, seq)
);
CREATE INDEX log_chunks_lease ON log_chunks(lease_id);

-- +goose Down
DROP TABLE log_chunks;
DROP TABLE leases;
DROP TABLE clusters;
DROP TABLE device_events;
DROP TABLE devices;
DROP TABLE join_tokens;
DROP TABLE api_keys;
DROP TABLE accounts;
