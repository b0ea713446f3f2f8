package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// Block nomination's reads (internal/bank): a block pages through every device in id order
// (DevicesFrom) and reads each page's inputs with one query per table over the page's
// DeviceRange, as the reputation sweep does (trust.go). Each gives, for every listed device,
// what its per-device counterpart gives for it alone. The queries are driven by the devices
// of the range, so that each device's row is found by its own key or index: the per-device
// queries' plans, once per device inside one statement.

// DevicesFrom lists, in id order, up to limit devices of every status whose ids come after
// after (none: ""): one page of a scan over the whole fleet that never holds it all.
func (s *DB) DevicesFrom(ctx context.Context, after string, limit int) ([]iog.Device, error) {
	return s.deviceWhere(ctx, `id > $1 ORDER BY id LIMIT $2`, after, limit)
}

// StakesIn is the IO balance of each of the range's devices' stake accounts that has one:
// Balance(AccStake(id), IO) of each (zero when absent).
func (s *DB) StakesIn(ctx context.Context, r DeviceRange) (map[string]iog.Amount, error) {
	out := map[string]iog.Amount{}
	err := inRange(ctx, s, r, "stakes", `SELECT d.id, b.balance FROM devices d
		JOIN ledger_balances b ON b.account = CAST($3 AS TEXT) || d.id AND b.currency = $4
		WHERE d.id >= $1 AND d.id <= $2`,
		scanIDInt, func(id string, v int64) { out[id] = iog.Amount(v) }, iog.AccStake(""), string(iog.IO))
	return out, err
}

// PayoutAddressesIn is the payout address of each of the range's devices' owners, by device
// id: PayoutAddress(owner) of each ("" when unset). A device whose owner has no account row is
// absent (PayoutAddress says not found).
func (s *DB) PayoutAddressesIn(ctx context.Context, r DeviceRange) (map[string]string, error) {
	out := map[string]string{}
	err := inRange(ctx, s, r, "payout addresses", `SELECT d.id, a.payout_address FROM devices d
		JOIN accounts a ON a.id = d.owner_id WHERE d.id >= $1 AND d.id <= $2`,
		func(sc scanner) (string, string, error) {
			var id, addr string
			err := sc.Scan(&id, &addr)
			return id, addr, err
		}, func(id, addr string) { out[id] = addr })
	return out, err
}

// LastPassedProofsAt is, for each of the range's devices that has one, when it last passed a
// proof answered by at: LastPassedProofAt of each.
func (s *DB) LastPassedProofsAt(ctx context.Context, r DeviceRange, at time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := inRange(ctx, s, r, "last passed proofs", `SELECT d.id, (SELECT MAX(p.answered_at) FROM proofs p
		WHERE p.device_id = d.id AND p.result = $3 AND p.answered_at > 0 AND p.answered_at <= $4)
		FROM devices d WHERE d.id >= $1 AND d.id <= $2`,
		func(sc scanner) (string, sql.NullInt64, error) {
			var id string
			var v sql.NullInt64
			err := sc.Scan(&id, &v)
			return id, v, err
		}, func(id string, v sql.NullInt64) {
			if v.Valid && v.Int64 != 0 {
				out[id] = tm(v.Int64)
			}
		}, string(iog.ProofPassed), ms(at))
	return out, err
}

// HiredSecondsIn is how long each of the range's devices was in running leases within
// [start, end): HiredSeconds of each (absent: 0).
func (s *DB) HiredSecondsIn(ctx context.Context, r DeviceRange, start, end time.Time) (map[string]int64, error) {
	spans := map[string][][2]time.Time{}
	err := inRange(ctx, s, r, "hired seconds", `SELECT device_id, started_at, ended_at FROM leases
		WHERE device_id >= $1 AND device_id <= $2 AND started_at > 0 AND started_at < $3 AND (ended_at = 0 OR ended_at > $4)`,
		func(sc scanner) (string, [2]time.Time, error) {
			var id string
			var a, b int64
			err := sc.Scan(&id, &a, &b)
			return id, [2]time.Time{tm(a), tm(b)}, err
		}, func(id string, span [2]time.Time) { spans[id] = append(spans[id], span) }, ms(end), ms(start))
	out := make(map[string]int64, len(spans))
	for id, ss := range spans {
		out[id] = hiredSeconds(ss, start, end)
	}
	return out, err
}

// hiredSeconds is how much of [start, end) the leases' spans (started, ended; ended zero while
// running) cover, in whole seconds, at most the window: their overlaps are not told apart.
func hiredSeconds(spans [][2]time.Time, start, end time.Time) int64 {
	var total time.Duration
	for _, s := range spans {
		a, b := s[0], s[1]
		if a.Before(start) {
			a = start
		}
		if b.IsZero() || b.After(end) {
			b = end
		}
		if b.After(a) {
			total += b.Sub(a)
		}
	}
	return min(int64(total/time.Second), int64(end.Sub(start)/time.Second))
}

func scanIDInt(sc scanner) (string, int64, error) {
	var id string
	var v int64
	err := sc.Scan(&id, &v)
	return id, v, err
}
