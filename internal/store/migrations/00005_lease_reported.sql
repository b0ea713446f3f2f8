-- +goose Up
-- Set when the worker has reported a lease's end (and so has shipped all of its output), even
-- when the coordinator had ended the lease first: it tells log readers that nothing more comes.
ALTER TABLE leases ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;

-- +goose Down
SELECT 1;
