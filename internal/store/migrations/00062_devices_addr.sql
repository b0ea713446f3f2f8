-- +goose Up
-- Proof rounds challenge together the devices behind one address (fleet.issueDue): the devices
-- at the addresses of the due ones are found by this index, not a scan of the fleet.
CREATE INDEX devices_addr ON devices(addr);

-- +goose Down
DROP INDEX devices_addr;
