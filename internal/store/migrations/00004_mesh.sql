-- +goose Up
-- The cluster mesh (DESIGN §7). Each open cluster holds one /24 of 100.64.0.0/10, numbered by
-- idx; rows of ended clusters are deleted when a new network is allocated, so numbers are
-- reused and the unique index keeps two open clusters from sharing one.
CREATE TABLE mesh_networks (
    cluster_id TEXT PRIMARY KEY REFERENCES clusters(id),
    idx        INTEGER NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- One WireGuard peer of a cluster's overlay: only public keys and endpoints, never a private key.
CREATE TABLE mesh_members (
    id         TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    lease_id   TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL,
    slot       INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    endpoints  TEXT NOT NULL DEFAULT '',
    observed   TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX mesh_members_slot ON mesh_members(cluster_id, slot);

-- +goose Down
DROP TABLE mesh_members;
DROP TABLE mesh_networks;
