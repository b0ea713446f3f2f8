-- +goose Up
-- The last block a device was nominated for (shown as its stake's last_nominated_block); -1:
-- never. Set in the transaction that records the block.
ALTER TABLE devices ADD COLUMN last_nominated_block BIGINT NOT NULL DEFAULT -1;

-- +goose Down
SELECT 1;
