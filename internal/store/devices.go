package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// RegisterDevice spends a join token and creates the device it joins, atomically: a token
// works once, before it expires, and only for one key.
func (s *DB) RegisterDevice(ctx context.Context, tokenHash string, d iog.Device) (iog.Device, error) {
	err := s.tx(ctx, func(q querier) error {
		var owner string
		var expires int64
		var used sql.NullInt64
		err := q.QueryRowContext(ctx, `SELECT account_id, expires_at, used_at FROM join_tokens WHERE hash = $1`, tokenHash).
			Scan(&owner, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return iog.Errorf(iog.EUNAUTHORIZED, "unknown join token")
		case err != nil:
			return fmt.Errorf("store: read join token: %w", err)
		case used.Valid:
			return iog.Errorf(iog.EUNAUTHORIZED, "join token was already used")
		case expires <= ms(d.CreatedAt):
			return iog.Errorf(iog.EUNAUTHORIZED, "join token expired at %s", tm(expires).Format(time.RFC3339))
		}
		res, err := q.ExecContext(ctx, `UPDATE join_tokens SET used_at = $1, device_id = $2 WHERE hash = $3 AND used_at IS NULL`,
			ms(d.CreatedAt), d.ID, tokenHash)
		if err != nil {
			return fmt.Errorf("store: spend join token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return iog.Errorf(iog.EUNAUTHORIZED, "join token was already used")
		}
		d.OwnerID = owner
		seq, err := nextDeviceSeq(ctx, q)
		if err != nil {
			return err
		}
		_, err = q.ExecContext(ctx, `INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region,
			gpu_model, gpu_count, ask_per_hour, paused, shared_host, inventory, addr, data_plane, created_at, last_seen_at, changed_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
			d.ID, d.OwnerID, d.Name, d.PublicKey, string(d.Status), d.StatusReason, d.Region, d.GPUModel, d.GPUCount,
			int64(d.AskPerHour), b2i(d.Paused), b2i(d.SharedHost), string(d.Inventory), d.Addr, d.DataPlane,
			ms(d.CreatedAt), ms(d.LastSeenAt), seq)
		if isUnique(err) {
			return iog.Errorf(iog.ECONFLICT, "this worker key is already registered")
		}
		if err != nil {
			return fmt.Errorf("store: insert device: %w", err)
		}
		return insertEvent(ctx, q, d.ID, d.CreatedAt, d.Status, d.StatusReason)
	})
	return d, err
}

func insertEvent(ctx context.Context, q querier, id string, at time.Time, st iog.DeviceStatus, reason string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO device_events (device_id, at, status, reason) VALUES ($1, $2, $3, $4)`,
		id, ms(at), string(st), reason)
	if err != nil {
		return fmt.Errorf("store: device event: %w", err)
	}
	return nil
}

const deviceCols = `id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count,
	ask_per_hour, paused, shared_host, inventory, addr, data_plane, created_at, last_seen_at, tier, up_since`

func scanDevice(row scanner) (iog.Device, error) {
	var d iog.Device
	var status, inv string
	var ask, created, seen, up int64
	var paused, shared int
	err := row.Scan(&d.ID, &d.OwnerID, &d.Name, &d.PublicKey, &status, &d.StatusReason, &d.Region, &d.GPUModel,
		&d.GPUCount, &ask, &paused, &shared, &inv, &d.Addr, &d.DataPlane, &created, &seen, &d.Tier, &up)
	d.UpSince = tm(up)
	d.Status, d.AskPerHour, d.Paused, d.SharedHost = iog.DeviceStatus(status), iog.Amount(ask), paused == 1, shared == 1
	d.Inventory, d.CreatedAt, d.LastSeenAt = []byte(inv), tm(created), tm(seen)
	return d, err
}

func (s *DB) deviceWhere(ctx context.Context, where string, args ...any) ([]iog.Device, error) {
	return queryAll(ctx, s.ro, "devices", scanDevice, `SELECT `+deviceCols+` FROM devices WHERE deleted = 0 AND `+where, args...)
}

// Device returns one device.
func (s *DB) Device(ctx context.Context, id string) (iog.Device, error) {
	ds, err := queryAll(ctx, s.hot, "devices", scanDevice, `SELECT `+deviceCols+` FROM devices WHERE deleted = 0 AND id = $1`, id)
	if err != nil {
		return iog.Device{}, err
	}
	if len(ds) == 0 {
		return iog.Device{}, notFound("device", id)
	}
	return ds[0], nil
}

// Devices lists the devices of an owner, or all devices when ownerID is "".
func (s *DB) Devices(ctx context.Context, ownerID string) ([]iog.Device, error) {
	if ownerID == "" {
		return s.deviceWhere(ctx, `1 = 1 ORDER BY created_at, id`)
	}
	return s.deviceWhere(ctx, `owner_id = $1 ORDER BY created_at, id`, ownerID)
}

// DevicesWithStatus lists devices in any of the given statuses.
func (s *DB) DevicesWithStatus(ctx context.Context, st ...iog.DeviceStatus) ([]iog.Device, error) {
	var out []iog.Device
	for _, x := range st {
		ds, err := s.deviceWhere(ctx, `status = $1 ORDER BY id`, string(x))
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
	}
	return out, nil
}

// DevicesWhereIn lists the devices in any of the statuses whose column col ("id", "owner_id"
// or "addr") is one of vals, in statements of up to 400 values: what a proof round reads of the
// groups of its due devices instead of the whole fleet.
func (s *DB) DevicesWhereIn(ctx context.Context, col string, vals []string, st ...iog.DeviceStatus) ([]iog.Device, error) {
	switch col {
	case "id", "owner_id", "addr":
	default:
		return nil, fmt.Errorf("store: devices where %q in: not a column this lists by", col)
	}
	var out []iog.Device
	for len(vals) > 0 {
		n := min(400, len(vals))
		var b strings.Builder
		args := make([]any, 0, n+len(st))
		b.WriteString(col + " IN ")
		args = s.inList(&b, args, vals[:n])
		if len(st) > 0 {
			b.WriteString(" AND status IN (")
			for i, x := range st {
				if i > 0 {
					b.WriteString(", ")
				}
				args = append(args, string(x))
				s.Param(&b, len(args))
			}
			b.WriteString(")")
		}
		ds, err := s.deviceWhere(ctx, b.String(), args...)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
		vals = vals[n:]
	}
	return out, nil
}

// DevicesAfter lists, in id order, up to limit devices in a status whose ids come after after
// (none: ""): one page of a scan over them all that never holds them all, each page found by
// the index of (status, id).
func (s *DB) DevicesAfter(ctx context.Context, st iog.DeviceStatus, after string, limit int) ([]iog.Device, error) {
	return s.deviceWhere(ctx, `status = $1 AND id > $2 ORDER BY id LIMIT $3`, string(st), after, limit)
}

// SetDeviceStatus changes a device's status and records why. When from is not empty the change
// happens only if the device is in one of those statuses; it reports whether it changed.
func (s *DB) SetDeviceStatus(ctx context.Context, id string, st iog.DeviceStatus, reason string, now time.Time, from ...iog.DeviceStatus) (bool, error) {
	changed := false
	err := s.tx(ctx, func(q querier) error {
		var err error
		changed, err = setStatus(ctx, q, id, st, reason, now, from...)
		return err
	})
	return changed, err
}

func setStatus(ctx context.Context, q querier, id string, st iog.DeviceStatus, reason string, now time.Time, from ...iog.DeviceStatus) (bool, error) {
	var cur, curReason string
	err := q.QueryRowContext(ctx, `SELECT status, status_reason FROM devices WHERE id = $1 AND deleted = 0`, id).Scan(&cur, &curReason)
	if errors.Is(err, sql.ErrNoRows) {
		return false, notFound("device", id)
	}
	if err != nil {
		return false, fmt.Errorf("store: read device status: %w", err)
	}
	if len(from) > 0 {
		ok := false
		for _, f := range from {
			ok = ok || iog.DeviceStatus(cur) == f
		}
		if !ok {
			return false, nil
		}
	}
	if cur == string(st) && curReason == reason {
		return false, nil
	}
	// Only from the status it was read in: a change made meanwhile (PostgreSQL) is not undone.
	seq, err := nextDeviceSeq(ctx, q)
	if err != nil {
		return false, err
	}
	res, err := q.ExecContext(ctx, `UPDATE devices SET status = $1, status_reason = $2, changed_seq = $5 WHERE id = $3 AND status = $4`,
		string(st), reason, id, cur, seq)
	if err != nil {
		return false, fmt.Errorf("store: set device status: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	return true, insertEvent(ctx, q, id, now, st, reason)
}

// UpdateDevice saves the fields an owner or the worker may change: name, paused, inventory,
// GPU model and count, address and data plane.
func (s *DB) UpdateDevice(ctx context.Context, d iog.Device) error {
	tier := d.Tier
	if tier == "" {
		tier = "standard"
	}
	return s.tx(ctx, func(q querier) error {
		seq, err := nextDeviceSeq(ctx, q)
		if err != nil {
			return err
		}
		_, err = q.ExecContext(ctx, `UPDATE devices SET name = $1, paused = $2, inventory = $3, gpu_model = $4,
			gpu_count = $5, addr = $6, data_plane = $7, region = $8, ask_per_hour = $9, tier = $10, changed_seq = $12 WHERE id = $11`,
			d.Name, b2i(d.Paused), string(d.Inventory), d.GPUModel, d.GPUCount, d.Addr, d.DataPlane, d.Region,
			int64(d.AskPerHour), tier, d.ID, seq)
		if err != nil {
			return fmt.Errorf("store: update device: %w", err)
		}
		return nil
	})
}

// DeleteDevice hides a device that holds nothing: no active lease, no stake (staked or in its
// cooldown) and no unclaimed rewards; otherwise it says what to do first. The delete itself is
// conditional on the same facts, so a stake or a lease that lands meanwhile stops it too.
func (s *DB) DeleteDevice(ctx context.Context, id string, now time.Time) error {
	return s.tx(ctx, func(q querier) error {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM leases WHERE device_id = $1 AND active = 1`, id).Scan(&n); err != nil {
			return fmt.Errorf("store: count leases: %w", err)
		}
		if n > 0 {
			return iog.Errorf(iog.ECONFLICT, "device %s is hired; terminate its cluster first", id)
		}
		bal := func(acct string) (iog.Amount, error) {
			var b int64
			err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(balance), 0) FROM ledger_balances WHERE account = $1`, acct).Scan(&b)
			if err != nil {
				return 0, fmt.Errorf("store: balance: %w", err)
			}
			return iog.Amount(b), nil
		}
		for _, c := range []struct{ acct, what string }{
			{iog.AccStake(id), "IO staked: withdraw it (`iog stake withdraw --device %[1]s --amount %[2]s`), wait out its 14-day cooldown, then delete the device"},
			{iog.AccCooldown(id), "IO of stake in its 14-day cooldown: delete the device once the cooldown is over and the stake is back in your wallet (`iog stake status --device %[1]s`)"},
			{iog.AccRewards(id), "IO of unclaimed block rewards: claim them first (`iog wallet claim`)"},
		} {
			b, err := bal(c.acct)
			if err != nil {
				return err
			}
			if b != 0 {
				return iog.Errorf(iog.ECONFLICT, "device %s has %s %s", id, b, fmt.Sprintf(c.what, id, b))
			}
		}
		seq, err := nextDeviceSeq(ctx, q)
		if err != nil {
			return err
		}
		res, err := q.ExecContext(ctx, `UPDATE devices SET deleted = 1, public_key = public_key || ':deleted:' || id, changed_seq = $5
			WHERE id = $1 AND deleted = 0
			AND NOT EXISTS (SELECT 1 FROM leases WHERE device_id = $1 AND active = 1)
			AND NOT EXISTS (SELECT 1 FROM ledger_balances WHERE account IN ($2, $3, $4) AND balance <> 0)`,
			id, iog.AccStake(id), iog.AccCooldown(id), iog.AccRewards(id), seq)
		if err != nil {
			return fmt.Errorf("store: delete device: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return iog.Errorf(iog.ECONFLICT, "device %s changed while being deleted; look at it again", id)
		}
		return insertEvent(ctx, q, id, now, iog.DeviceInactive, "deleted by owner")
	})
}

// DeviceOwner is the owner of a device, deleted or not (money of a device deleted before
// deletes were guarded is still its owner's).
func (s *DB) DeviceOwner(ctx context.Context, id string) (string, error) {
	var owner string
	err := s.db.QueryRowContext(ctx, `SELECT owner_id FROM devices WHERE id = $1`, id).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("device", id)
	}
	if err != nil {
		return "", fmt.Errorf("store: device owner: %w", err)
	}
	return owner, nil
}

// DeviceByKey finds a device by its worker's public key.
func (s *DB) DeviceByKey(ctx context.Context, key string) (iog.Device, error) {
	ds, err := s.deviceWhere(ctx, `public_key = $1`, key)
	if err != nil {
		return iog.Device{}, err
	}
	if len(ds) == 0 {
		return iog.Device{}, notFound("device with key", key)
	}
	return ds[0], nil
}

// DeviceEvents returns a device's status history, oldest first (at most limit, newest kept).
func (s *DB) DeviceEvents(ctx context.Context, id string, limit int) ([]iog.DeviceEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, status, reason FROM device_events WHERE device_id = $1 ORDER BY at DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: device events: %w", err)
	}
	defer rows.Close()
	var out []iog.DeviceEvent
	for rows.Next() {
		e := iog.DeviceEvent{DeviceID: id}
		var at int64
		var st string
		if err := rows.Scan(&at, &st, &e.Reason); err != nil {
			return nil, err
		}
		e.At, e.Status = tm(at), iog.DeviceStatus(st)
		out = append([]iog.DeviceEvent{e}, out...)
	}
	return out, rows.Err()
}

// TouchDevices records last-seen times in batches of multi-row statements (liveness lives in
// memory; this is its periodic flush, never one write per heartbeat). A time never goes back.
func (s *DB) TouchDevices(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	const rows = 400 // 800 parameters a statement, far below either engine's limit
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	// One order for every writer, so that two coordinators' flushes lock rows alike.
	slices.Sort(ids)
	return txOn(ctx, s.bg, nil, func(q querier) error {
		if s.engine == SQLite {
			// In process, a prepared statement a row is the fast way: SQLite runs an UPDATE
			// ... FROM (VALUES ...) of 400 rows 25 times slower (17.5 s for 100k rows against
			// 0.6 s, modernc's SQLite 3.53).
			st, err := q.(*sql.Tx).PrepareContext(ctx, `UPDATE devices SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?`)
			if err != nil {
				return fmt.Errorf("store: touch devices: %w", err)
			}
			defer st.Close()
			for _, id := range ids {
				at := ms(seen[id])
				if _, err := st.ExecContext(ctx, at, id, at); err != nil {
					return fmt.Errorf("store: touch devices: %w", err)
				}
			}
			return nil
		}
		var b strings.Builder
		args := make([]any, 0, 2*rows)
		for len(ids) > 0 {
			n := min(rows, len(ids))
			b.Reset()
			args = args[:0]
			b.WriteString(`UPDATE devices SET last_seen_at = v.column2 FROM (VALUES `)
			for i, id := range ids[:n] {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "(CAST($%d AS TEXT), CAST($%d AS BIGINT))", 2*i+1, 2*i+2)
				args = append(args, id, ms(seen[id]))
			}
			// PostgreSQL names a VALUES list's columns column1, column2, ...
			b.WriteString(`) AS v WHERE devices.id = v.column1 AND devices.last_seen_at < v.column2`)
			if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
				return fmt.Errorf("store: touch devices: %w", err)
			}
			ids = ids[n:]
		}
		return nil
	})
}

// DeviceLive is what liveness keeps of a device in memory.
type DeviceLive struct {
	ID       string
	Status   iog.DeviceStatus
	LastSeen time.Time
}

// DevicesLive lists every device's status and last-seen time (one light query: no inventory),
// for the liveness table a coordinator keeps in memory.
func (s *DB) DevicesLive(ctx context.Context) ([]DeviceLive, error) {
	return queryAll(ctx, s.ro, "device liveness", scanLive, `SELECT id, status, last_seen_at FROM devices WHERE deleted = 0`)
}

// DeviceLiveOf is one device's DevicesLive row.
func (s *DB) DeviceLiveOf(ctx context.Context, id string) (DeviceLive, error) {
	ds, err := queryAll(ctx, s.ro, "device liveness", scanLive, `SELECT id, status, last_seen_at FROM devices WHERE deleted = 0 AND id = $1`, id)
	if err != nil {
		return DeviceLive{}, err
	}
	if len(ds) == 0 {
		return DeviceLive{}, notFound("device", id)
	}
	return ds[0], nil
}

func scanLive(row scanner) (DeviceLive, error) {
	var d DeviceLive
	var st string
	var seen int64
	err := row.Scan(&d.ID, &st, &seen)
	d.Status, d.LastSeen = iog.DeviceStatus(st), tm(seen)
	return d, err
}

// Silent is a device liveness found silent, with the reason to record.
type Silent struct {
	ID, Reason string
}

// MarkSilentDown marks devices down, and ends their uptime, in statements of many rows, each
// only if it is still in one of the statuses from and its stored last-seen time is before
// seenBefore: a device that another coordinator heard from meanwhile (its flush moved
// last_seen_at) or whose status changed is left alone. It returns the devices it changed.
func (s *DB) MarkSilentDown(ctx context.Context, ds []Silent, now, seenBefore time.Time, from ...iog.DeviceStatus) ([]string, error) {
	const rows = 400
	var changed []string
	err := txOn(ctx, s.bg, nil, func(q querier) error {
		changed = changed[:0]
		// Numbered before any device row is locked, as every writer of the devices does.
		seq, err := nextDeviceSeq(ctx, q)
		if err != nil {
			return err
		}
		var one *sql.Stmt
		if s.engine == SQLite {
			// A statement a row (see TouchDevices).
			var b strings.Builder
			b.WriteString(`UPDATE devices SET status = ?, status_reason = ?, up_since = 0, changed_seq = ? WHERE id = ? AND deleted = 0 AND last_seen_at < ? AND status IN (`)
			for i := range from {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteByte('?')
			}
			b.WriteString(`) RETURNING id, status_reason`)
			if one, err = q.(*sql.Tx).PrepareContext(ctx, b.String()); err != nil {
				return fmt.Errorf("store: mark down: %w", err)
			}
			defer one.Close()
		}
		var b strings.Builder
		for rest := ds; len(rest) > 0; {
			n := min(rows, len(rest))
			var rs *sql.Rows
			if one != nil {
				n = 1
				args := []any{string(iog.DeviceDown), rest[0].Reason, seq, rest[0].ID, ms(seenBefore)}
				for _, st := range from {
					args = append(args, string(st))
				}
				rs, err = one.QueryContext(ctx, args...)
			} else {
				b.Reset()
				args := []any{string(iog.DeviceDown), ms(seenBefore), seq}
				b.WriteString(`UPDATE devices SET status = $1, status_reason = v.column2, up_since = 0, changed_seq = $3 FROM (VALUES `)
				for i, d := range rest[:n] {
					if i > 0 {
						b.WriteString(", ")
					}
					fmt.Fprintf(&b, "(CAST($%d AS TEXT), CAST($%d AS TEXT))", len(args)+1, len(args)+2)
					args = append(args, d.ID, d.Reason)
				}
				b.WriteString(`) AS v WHERE devices.id = v.column1 AND devices.deleted = 0 AND devices.last_seen_at < $2 AND devices.status IN (`)
				for i, st := range from {
					if i > 0 {
						b.WriteString(", ")
					}
					fmt.Fprintf(&b, "$%d", len(args)+1)
					args = append(args, string(st))
				}
				b.WriteString(`) RETURNING devices.id, devices.status_reason`)
				rs, err = q.QueryContext(ctx, b.String(), args...)
			}
			if err != nil {
				return fmt.Errorf("store: mark down: %w", err)
			}
			var done []Silent
			for rs.Next() {
				var d Silent
				if err := rs.Scan(&d.ID, &d.Reason); err != nil {
					rs.Close()
					return fmt.Errorf("store: mark down: %w", err)
				}
				done = append(done, d)
			}
			if err := rs.Close(); err != nil {
				return fmt.Errorf("store: mark down: %w", err)
			}
			for _, d := range done {
				if err := insertEvent(ctx, q, d.ID, now, iog.DeviceDown, d.Reason); err != nil {
					return err
				}
				changed = append(changed, d.ID)
			}
			rest = rest[n:]
		}
		return nil
	})
	return changed, err
}
