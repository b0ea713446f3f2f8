-- +goose Up
-- Versioned reads of the devices placement reads (market's index): every write that changes
-- a field placement reads (status, ask, inventory, model, region, tier, address, data plane,
-- deleted) sets changed_seq from device_seq, a counter in one row. The counter's row lock is
-- held to the end of the writing transaction, so sequence numbers are committed in order: a
-- reader that has seen n has seen every change numbered below n (PostgreSQL; SQLite has one
-- writer). Rows written before this migration have 0 and are read by a first full load.
ALTER TABLE devices ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX devices_changed_seq ON devices(changed_seq);
CREATE TABLE device_seq (
    id INTEGER PRIMARY KEY,
    n  BIGINT NOT NULL
);
INSERT INTO device_seq (id, n) VALUES (1, 0);

-- +goose Down
DROP TABLE device_seq;
DROP INDEX devices_changed_seq;
