-- +goose Up
-- Hardware identities (GPU UUIDs, CPU hosts' machine ids) bind to a device only once it has
-- passed a proof of GPU with them (device_hardware); until then a device only claims them
-- (hardware_claims), and several unproven claims on one key are all challenged. The hardware
-- of a device blocked for fraud stays blocked (hardware_blocks): for its owner's later
-- devices, and flagged for review on anyone else's.
CREATE TABLE hardware_claims (
    hw_key    TEXT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices(id),
    at        BIGINT NOT NULL,
    PRIMARY KEY (hw_key, device_id)
);
CREATE INDEX hardware_claims_device ON hardware_claims(device_id);

CREATE TABLE hardware_blocks (
    hw_key    TEXT PRIMARY KEY,
    owner_id  TEXT NOT NULL,
    device_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        BIGINT NOT NULL
);

-- What was held so far becomes a claim; it stays bound only where the device was verified.
INSERT INTO hardware_claims (hw_key, device_id, at) SELECT hw_key, device_id, at FROM device_hardware;
DELETE FROM device_hardware WHERE device_id NOT IN (SELECT device_id FROM device_trust WHERE verified_at > 0);
INSERT INTO hardware_blocks (hw_key, owner_id, device_id, reason, at)
    SELECT c.hw_key, d.owner_id, d.id, d.status_reason, c.at FROM hardware_claims c JOIN devices d ON d.id = c.device_id
    WHERE d.status = 'blocked' AND d.status_reason LIKE 'fraud:%'
    ON CONFLICT (hw_key) DO NOTHING;

-- +goose Down
DROP TABLE hardware_blocks;
DROP TABLE hardware_claims;
