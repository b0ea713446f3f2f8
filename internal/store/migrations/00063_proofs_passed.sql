-- +goose Up
-- A device's last passed proof (block nomination's "a passed proof in the last 24 h", one
-- device's or a page's: store.LastPassedProofAt, LastPassedProofsAt) is the last entry of this
-- index for the device and the result. Without it SQLite took the index of results, every
-- device's passed proofs for each device: a block over 100,000 proven devices did not end in
-- eight minutes.
CREATE INDEX proofs_device_result ON proofs(device_id, result, answered_at);

-- +goose Down
DROP INDEX proofs_device_result;
