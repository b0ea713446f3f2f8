-- +goose Up
-- A cluster's revision: bumped in the same transaction as every change of its state or of one
-- of its leases' states, so that a decision taken on what was read is written only if nothing
-- changed meanwhile (compare-and-set).
ALTER TABLE clusters ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
-- Set once the market has answered a lost node (a replacement, or the cluster degraded), in the
-- same transaction as that answer; a lost node not yet answered is answered after a restart.
ALTER TABLE leases ADD COLUMN handled INTEGER NOT NULL DEFAULT 0;
-- Leases that ended before this version were answered by it (or never will be).
UPDATE leases SET handled = 1 WHERE active = 0;
-- The log batches a lease's worker has shipped, so that a retried batch is stored once.
CREATE TABLE log_batches (
    lease_id TEXT NOT NULL,
    batch    TEXT NOT NULL,
    PRIMARY KEY (lease_id, batch)
);

-- +goose Down
DROP TABLE log_batches;
