package store

import (
	"context"
	"fmt"

	"github.com/iognet/iog/internal/iog"
)

// nextDeviceSeq takes the next number of the device change sequence inside q's transaction.
// Every write of a field placement reads stamps the rows it changes with it (changed_seq), so
// that a reader can ask for what changed since the last number it saw (DeviceChanges). The
// counter is one row whose lock the transaction keeps to its end: numbers are committed in the
// order they are taken, and none is seen before a smaller one. Take it before locking any
// device row, as every caller does, so that writers queue on the counter and never wait for
// each other in opposite orders.
func nextDeviceSeq(ctx context.Context, q querier) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `UPDATE device_seq SET n = n + 1 WHERE id = 1 RETURNING n`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: device change sequence: %w", err)
	}
	return n, nil
}

// DeviceChange is a device as it is after a change, deleted ones included.
type DeviceChange struct {
	Device  iog.Device
	Deleted bool
	Seq     int64
}

// DeviceChanges calls fn with each device changed after sequence number since, in the order of
// their changes, and returns the number to ask from next time (since itself when nothing
// changed). since -1 reads every device: a first full load, streamed rather than held. (No
// page limit: the rows of one number, such as all those written before numbering, must come
// together.) An error from fn stops the read and is returned.
func (s *DB) DeviceChanges(ctx context.Context, since int64, fn func(DeviceChange) error) (int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceCols+`, deleted, changed_seq FROM devices
		WHERE changed_seq > $1 ORDER BY changed_seq, id`, since)
	if err != nil {
		return since, fmt.Errorf("store: device changes: %w", err)
	}
	defer rows.Close()
	next := since
	var ext extra
	for rows.Next() {
		var c DeviceChange
		var deleted int
		c.Device, err = scanDevice(ext.wrap(rows, &deleted, &c.Seq))
		if err != nil {
			return since, fmt.Errorf("store: scan device change: %w", err)
		}
		c.Deleted = deleted == 1
		if err := fn(c); err != nil {
			return since, err
		}
		next = max(next, c.Seq)
	}
	if err := rows.Err(); err != nil {
		return since, fmt.Errorf("store: device changes: %w", err)
	}
	return next, nil
}

// extra scans a row with columns past those scanDevice reads.
type extra struct {
	row  scanner
	more []any
}

func (e *extra) wrap(row scanner, more ...any) scanner {
	e.row, e.more = row, more
	return e
}

func (e *extra) Scan(dest ...any) error { return e.row.Scan(append(dest, e.more...)...) }
