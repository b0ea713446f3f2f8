-- +goose Up
-- The nonces of signed worker requests, kept until a request carrying them would be refused
-- for its timestamp anyway; shared by every coordinator on this database, so a captured
-- request is accepted once by the network, across restarts too. The key is a hash of the
-- device key and the nonce.
CREATE TABLE used_nonces (
    k          TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_nonces_expiry ON used_nonces(expires_at);

-- +goose Down
DROP TABLE used_nonces;
