-- +goose Up
-- The web console's sessions: only a hash of the cookie's secret is stored. A session expires
-- at expires_at, or earlier on logout (the row is deleted).
CREATE TABLE web_sessions (
    hash       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);

-- Telemetry history: one row per device, step (ms) and bucket start (ms). Columns are sums over
-- the n samples in the bucket, so partial buckets written by two flushes (or two coordinators)
-- add up. Scaled integers: per mille, decidegrees, deciwatts, MiB.
CREATE TABLE telemetry_points (
    device_id    TEXT NOT NULL,
    step         BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    n            BIGINT NOT NULL,
    gpus         BIGINT NOT NULL,
    cpu_pm       BIGINT NOT NULL,
    mem_mib      BIGINT NOT NULL,
    gpu_util_pm  BIGINT NOT NULL,
    gpu_temp_dc  BIGINT NOT NULL,
    gpu_power_dw BIGINT NOT NULL,
    gpu_mem_mib  BIGINT NOT NULL,
    PRIMARY KEY (device_id, step, at)
);
CREATE INDEX telemetry_points_age ON telemetry_points(step, at);

-- Periodic snapshots of the network's public aggregates, for the Explorer's charts.
CREATE TABLE network_snapshots (
    at            BIGINT PRIMARY KEY,
    connected     BIGINT NOT NULL,
    rentable      BIGINT NOT NULL,
    hired         BIGINT NOT NULL,
    pending       BIGINT NOT NULL,
    blocked       BIGINT NOT NULL,
    down          BIGINT NOT NULL,
    gpus          BIGINT NOT NULL,
    clusters_open BIGINT NOT NULL
);

-- +goose Down
DROP TABLE network_snapshots;
DROP TABLE telemetry_points;
DROP TABLE web_sessions;
