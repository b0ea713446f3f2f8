-- +goose Up
-- Proof rounds shared by several coordinators (docs/ARCHITECTURE.md, "Several coordinators"):
-- a group whose devices are held by different coordinators is challenged in one round, issued
-- by one of them. The store keeps the rules the coordinators' memories can no longer keep:
-- one open proof per device (a second round over the same device, issued elsewhere at the
-- same moment, fails), and a round's closing done once (the count of its passes, by whichever
-- coordinator closes its last proof).
UPDATE proofs SET result = 'void', reason = 'another proof of the device was open (voided when one open proof per device became a rule)'
    WHERE result IN ('issued', 'started') AND EXISTS (SELECT 1 FROM proofs q WHERE q.device_id = proofs.device_id
        AND q.result IN ('issued', 'started') AND q.id > proofs.id);
CREATE UNIQUE INDEX proofs_one_open ON proofs(device_id) WHERE result IN ('issued', 'started');
CREATE TABLE proof_rounds_closed (
    round_id TEXT PRIMARY KEY,
    at       BIGINT NOT NULL
);

-- +goose Down
DROP TABLE proof_rounds_closed;
DROP INDEX proofs_one_open;
