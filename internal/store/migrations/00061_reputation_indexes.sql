-- +goose Up
-- The reputation reads, per device and the sweep's over a range of devices (store/trust.go),
-- read indexes alone: a device's latest counted proof is the last entry of its index that
-- counts (ORDER BY issued_at DESC, id DESC), its proofs since a time a range of that index,
-- and likewise its ended leases and its status changes. The sweep pages through the devices
-- of a status in id order. Each index replaces one it extends.
CREATE INDEX proofs_device_issued ON proofs(device_id, issued_at, id, result);
DROP INDEX proofs_device;
CREATE INDEX leases_device_ended ON leases(device_id, ended_at, active, state);
DROP INDEX leases_device;
CREATE INDEX device_events_device_at ON device_events(device_id, at, status);
DROP INDEX device_events_device;
CREATE INDEX devices_status_id ON devices(status, id);
DROP INDEX devices_status;

-- +goose Down
CREATE INDEX devices_status ON devices(status);
DROP INDEX devices_status_id;
CREATE INDEX device_events_device ON device_events(device_id, at);
DROP INDEX device_events_device_at;
CREATE INDEX leases_device ON leases(device_id);
DROP INDEX leases_device_ended;
CREATE INDEX proofs_device ON proofs(device_id, issued_at);
DROP INDEX proofs_device_issued;
