-- +goose Up
-- The ledger: append-only postings, their entries, and running balances kept in the same
-- transaction as the entries (ledger verify recomputes them from the entries).
CREATE TABLE ledger_postings (
    key      TEXT PRIMARY KEY,
    cause    TEXT NOT NULL,
    currency TEXT NOT NULL,
    at       BIGINT NOT NULL,
    memo     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ledger_postings_cause ON ledger_postings(cause);
CREATE INDEX ledger_postings_at ON ledger_postings(at);

CREATE TABLE ledger_entries (
    posting_key TEXT NOT NULL REFERENCES ledger_postings(key),
    account     TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries(account, currency);
CREATE INDEX ledger_entries_posting ON ledger_entries(posting_key);

CREATE TABLE ledger_balances (
    account  TEXT NOT NULL,
    currency TEXT NOT NULL,
    balance  BIGINT NOT NULL,
    PRIMARY KEY (account, currency)
);

ALTER TABLE leases ADD COLUMN price_per_hour BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN prepaid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN settled_minutes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN settled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN closed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN supplier_id TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN currency TEXT NOT NULL DEFAULT 'IO';
ALTER TABLE clusters ADD COLUMN quote TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN tier TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE devices ADD COLUMN up_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN payout_address TEXT NOT NULL DEFAULT '';

CREATE TABLE stake_withdrawals (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices(id),
    amount       BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    unlock_at    BIGINT NOT NULL,
    state        TEXT NOT NULL
);
CREATE INDEX stake_withdrawals_device ON stake_withdrawals(device_id);

CREATE TABLE blocks (
    number     BIGINT PRIMARY KEY,
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    emission   BIGINT NOT NULL,
    minted     BIGINT NOT NULL,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE slashes (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    stake        BIGINT NOT NULL,
    rewards      BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    at           BIGINT NOT NULL,
    appeal_until BIGINT NOT NULL,
    state        TEXT NOT NULL,
    resolved_at  BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE slashes;
DROP TABLE blocks;
DROP TABLE stake_withdrawals;
DROP TABLE ledger_balances;
DROP TABLE ledger_entries;
DROP TABLE ledger_postings;
