-- +goose Up
-- Renters' SSH public keys: the worker's SSH server end accepts them for the account's nodes.
CREATE TABLE ssh_keys (
    account_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_text    TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, fingerprint)
);

-- +goose Down
DROP TABLE ssh_keys;
