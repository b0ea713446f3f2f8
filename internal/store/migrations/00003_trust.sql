-- +goose Up
-- Trust: proofs of GPU, hardware identities (unique across the network) and per-device
-- verification state. Times are unix milliseconds.
CREATE TABLE proofs (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(id),
    round_id    TEXT NOT NULL,
    class       TEXT NOT NULL,
    units       TEXT NOT NULL,
    threads     INTEGER NOT NULL DEFAULT 1,
    params      TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL,
    start_by    BIGINT NOT NULL,
    started_at  BIGINT NOT NULL DEFAULT 0,
    answered_at BIGINT NOT NULL DEFAULT 0,
    expected_ms BIGINT NOT NULL,
    min_ms      BIGINT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    elapsed_ms  BIGINT NOT NULL DEFAULT 0,
    result      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX proofs_device ON proofs(device_id, issued_at);
CREATE INDEX proofs_round ON proofs(round_id);
CREATE INDEX proofs_result ON proofs(result);

-- A GPU UUID or a CPU host's machine id belongs to one device.
CREATE TABLE device_hardware (
    hw_key    TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    at        BIGINT NOT NULL
);
CREATE INDEX device_hardware_device ON device_hardware(device_id);

CREATE TABLE device_trust (
    device_id       TEXT PRIMARY KEY REFERENCES devices(id),
    verified_hw     TEXT NOT NULL DEFAULT '',
    verified_at     BIGINT NOT NULL DEFAULT 0,
    probation_until BIGINT NOT NULL DEFAULT 0,
    idle_busy_since BIGINT NOT NULL DEFAULT 0,
    idle_warned_at  BIGINT NOT NULL DEFAULT 0,
    idle_flagged_at BIGINT NOT NULL DEFAULT 0,
    upheld_disputes INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE device_trust;
DROP TABLE device_hardware;
DROP TABLE proofs;
