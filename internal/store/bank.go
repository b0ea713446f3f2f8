package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// SetPayoutAddress sets where an account's payouts go.
func (s *DB) SetPayoutAddress(ctx context.Context, accountID, addr string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE accounts SET payout_address = $1 WHERE id = $2`, addr, accountID)
	if err != nil {
		return fmt.Errorf("store: payout address: %w", err)
	}
	return nil
}

// PayoutAddress returns an account's payout address ("" when unset).
func (s *DB) PayoutAddress(ctx context.Context, accountID string) (string, error) {
	var a string
	err := s.db.QueryRowContext(ctx, `SELECT payout_address FROM accounts WHERE id = $1`, accountID).Scan(&a)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("account", accountID)
	}
	return a, err
}

// Withdrawal is stake in its cooldown.
type Withdrawal struct {
	ID          string
	DeviceID    string
	Amount      iog.Amount
	RequestedAt time.Time
	UnlockAt    time.Time
	State       string // cooling | released | slashed
}

// CreateWithdrawal records a withdrawal and moves the stake into cooldown, atomically; never
// while the device holds an active lease.
func (s *DB) CreateWithdrawal(ctx context.Context, w Withdrawal, p iog.Posting) error {
	return s.tx(ctx, func(q querier) error {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM leases WHERE device_id = $1 AND active = 1`, w.DeviceID).Scan(&n); err != nil {
			return fmt.Errorf("store: count leases: %w", err)
		}
		if n > 0 {
			return iog.Errorf(iog.ECONFLICT, "device %s is hired; withdraw its stake after its lease ends", w.DeviceID)
		}
		if _, err := q.ExecContext(ctx, `INSERT INTO stake_withdrawals (id, device_id, amount, requested_at, unlock_at, state) VALUES ($1, $2, $3, $4, $5, 'cooling')`,
			w.ID, w.DeviceID, int64(w.Amount), ms(w.RequestedAt), ms(w.UnlockAt)); err != nil {
			return fmt.Errorf("store: withdrawal: %w", err)
		}
		_, err := applyPosting(ctx, q, p)
		return err
	})
}

func (s *DB) withdrawalsWhere(ctx context.Context, where string, args ...any) ([]Withdrawal, error) {
	return queryAll(ctx, s.db, "withdrawals", func(r scanner) (Withdrawal, error) {
		var w Withdrawal
		var amt, req, unl int64
		err := r.Scan(&w.ID, &w.DeviceID, &amt, &req, &unl, &w.State)
		w.Amount, w.RequestedAt, w.UnlockAt = iog.Amount(amt), tm(req), tm(unl)
		return w, err
	}, `SELECT id, device_id, amount, requested_at, unlock_at, state FROM stake_withdrawals WHERE `+where, args...)
}

// Withdrawals lists a device's withdrawals still cooling.
func (s *DB) Withdrawals(ctx context.Context, deviceID string) ([]Withdrawal, error) {
	return s.withdrawalsWhere(ctx, `device_id = $1 AND state = 'cooling' ORDER BY unlock_at`, deviceID)
}

// AllWithdrawals lists a device's withdrawals in every state, newest first (at most limit).
func (s *DB) AllWithdrawals(ctx context.Context, deviceID string, limit int) ([]Withdrawal, error) {
	return s.withdrawalsWhere(ctx, `device_id = $1 ORDER BY requested_at DESC, id LIMIT $2`, deviceID, limit)
}

// DueWithdrawals lists withdrawals whose cooldown is over.
func (s *DB) DueWithdrawals(ctx context.Context, now time.Time) ([]Withdrawal, error) {
	return s.withdrawalsWhere(ctx, `state = 'cooling' AND unlock_at <= $1 ORDER BY unlock_at`, ms(now))
}

// ReleaseWithdrawal marks a withdrawal released and pays it out, atomically and once.
func (s *DB) ReleaseWithdrawal(ctx context.Context, id string, p iog.Posting) error {
	_, err := s.guarded(ctx, "release withdrawal", `UPDATE stake_withdrawals SET state = 'released' WHERE id = $1 AND state = 'cooling'`,
		[]any{id}, p)
	return err
}

// BlockRow is a stored block; Detail is its published inputs as JSON.
type BlockRow struct {
	Number    int64
	Start     time.Time
	End       time.Time
	Emission  iog.Amount
	Minted    iog.Amount
	Detail    []byte
	CreatedAt time.Time
	// Nominated are the devices the block nominated: their last_nominated_block moves to it
	// (never back: blocks caught up out of order leave the latest).
	Nominated []string
}

// RecordBlock stores a block, applies its postings (emission, burns) and marks its nominated
// devices, atomically and once: a block that is already there is a no-op (false).
func (s *DB) RecordBlock(ctx context.Context, b BlockRow, postings ...iog.Posting) (bool, error) {
	done := false
	err := s.tx(ctx, func(q querier) error {
		done = false
		res, err := q.ExecContext(ctx, `INSERT INTO blocks (number, start_at, end_at, emission, minted, detail, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (number) DO NOTHING`,
			b.Number, ms(b.Start), ms(b.End), int64(b.Emission), int64(b.Minted), string(b.Detail), ms(b.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: record block: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		// A reward posting for each nominated device, and a mark on each: on PostgreSQL with
		// multi-row statements, not a few round trips for each of tens of thousands of devices
		// (bulk.go). SQLite has no round trips, and a statement that writes many rows needs a
		// statement journal, which made a block at 100,000 devices slower, not faster.
		record := recordEach
		if s.engine == Postgres {
			record = s.recordBulk
		}
		if err := record(ctx, q, b, postings); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

// recordEach applies a block's postings and marks its nominated devices with statements of
// their own.
func recordEach(ctx context.Context, q querier, b BlockRow, postings []iog.Posting) error {
	if err := applyPostings(ctx, q, postings); err != nil {
		return err
	}
	for _, id := range b.Nominated {
		if _, err := q.ExecContext(ctx, `UPDATE devices SET last_nominated_block = $1 WHERE id = $2 AND last_nominated_block < $1`, b.Number, id); err != nil {
			return fmt.Errorf("store: last nominated block: %w", err)
		}
	}
	return nil
}

// LastNominatedBlock is the last block a device was nominated for; -1: never.
func (s *DB) LastNominatedBlock(ctx context.Context, deviceID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT last_nominated_block FROM devices WHERE id = $1`, deviceID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, notFound("device", deviceID)
	}
	if err != nil {
		return -1, fmt.Errorf("store: last nominated block: %w", err)
	}
	return n, nil
}

func (s *DB) blocksWhere(ctx context.Context, where string, args ...any) ([]BlockRow, error) {
	return queryAll(ctx, s.db, "blocks", func(r scanner) (BlockRow, error) {
		var b BlockRow
		var st, en, em, mi, cr int64
		var d string
		err := r.Scan(&b.Number, &st, &en, &em, &mi, &d, &cr)
		b.Start, b.End, b.Emission, b.Minted, b.Detail, b.CreatedAt = tm(st), tm(en), iog.Amount(em), iog.Amount(mi), []byte(d), tm(cr)
		return b, err
	}, `SELECT number, start_at, end_at, emission, minted, detail, created_at FROM blocks WHERE `+where, args...)
}

// Block returns one block.
func (s *DB) Block(ctx context.Context, n int64) (BlockRow, error) {
	bs, err := s.blocksWhere(ctx, `number = $1`, n)
	if err != nil {
		return BlockRow{}, err
	}
	if len(bs) == 0 {
		return BlockRow{}, iog.Errorf(iog.ENOTFOUND, "block %d not found", n)
	}
	return bs[0], nil
}

// Blocks lists the newest blocks first.
func (s *DB) Blocks(ctx context.Context, limit int) ([]BlockRow, error) {
	return s.blocksWhere(ctx, `1 = 1 ORDER BY number DESC LIMIT $1`, limit)
}

// NextBlock is the number of the first block not recorded yet.
func (s *DB) NextBlock(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(number) FROM blocks`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: next block: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return n.Int64 + 1, nil
}

// Slash is stake and unpaid rewards held after fraud.
type Slash struct {
	ID          string
	DeviceID    string
	OwnerID     string
	Stake       iog.Amount
	Rewards     iog.Amount
	Reason      string
	At          time.Time
	AppealUntil time.Time
	State       string // held | burned | returned
	ResolvedAt  time.Time
	// Withdrawals are the stake withdrawals still in their cooldown that the slash takes
	// (their amounts are part of Stake); they end in state "slashed", never paid out.
	Withdrawals []string
}

// CreateSlash records a slash and moves the funds into the held account, atomically.
func (s *DB) CreateSlash(ctx context.Context, sl Slash, postings ...iog.Posting) error {
	return s.tx(ctx, func(q querier) error {
		if _, err := q.ExecContext(ctx, `INSERT INTO slashes (id, device_id, owner_id, stake, rewards, reason, at, appeal_until, state)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held')`, sl.ID, sl.DeviceID, sl.OwnerID, int64(sl.Stake), int64(sl.Rewards), sl.Reason,
			ms(sl.At), ms(sl.AppealUntil)); err != nil {
			return fmt.Errorf("store: slash: %w", err)
		}
		for _, w := range sl.Withdrawals {
			res, err := q.ExecContext(ctx, `UPDATE stake_withdrawals SET state = 'slashed' WHERE id = $1 AND device_id = $2 AND state = 'cooling'`, w, sl.DeviceID)
			if err != nil {
				return fmt.Errorf("store: slash withdrawal: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return iog.Errorf(iog.ECONFLICT, "withdrawal %s left its cooldown while being slashed", w)
			}
		}
		for _, p := range postings {
			if _, err := applyPosting(ctx, q, p); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *DB) slashesWhere(ctx context.Context, where string, args ...any) ([]Slash, error) {
	return queryAll(ctx, s.db, "slashes", func(r scanner) (Slash, error) {
		var sl Slash
		var st, rw, at, ap, rs int64
		err := r.Scan(&sl.ID, &sl.DeviceID, &sl.OwnerID, &st, &rw, &sl.Reason, &at, &ap, &sl.State, &rs)
		sl.Stake, sl.Rewards, sl.At, sl.AppealUntil, sl.ResolvedAt = iog.Amount(st), iog.Amount(rw), tm(at), tm(ap), tm(rs)
		return sl, err
	}, `SELECT id, device_id, owner_id, stake, rewards, reason, at, appeal_until, state, resolved_at FROM slashes WHERE `+where, args...)
}

// Slashes lists slashes of an owner ("" for all), newest first.
func (s *DB) Slashes(ctx context.Context, ownerID string) ([]Slash, error) {
	return s.slashesWhere(ctx, `($1 = '' OR owner_id = $1) ORDER BY at DESC`, ownerID)
}

// DueSlashes lists held slashes whose appeal window is over.
func (s *DB) DueSlashes(ctx context.Context, now time.Time) ([]Slash, error) {
	return s.slashesWhere(ctx, `state = 'held' AND appeal_until <= $1`, ms(now))
}

// ResolveSlash moves a held slash to its final state and applies the postings, once.
func (s *DB) ResolveSlash(ctx context.Context, id, state string, now time.Time, postings ...iog.Posting) (bool, error) {
	return s.guarded(ctx, "resolve slash", `UPDATE slashes SET state = $1, resolved_at = $2 WHERE id = $3 AND state = 'held'`,
		[]any{state, ms(now), id}, postings...)
}

// HiredSeconds is how long a device was in running leases within [start, end).
func (s *DB) HiredSeconds(ctx context.Context, deviceID string, start, end time.Time) (int64, error) {
	ls, err := s.leaseWhere(ctx, `device_id = $1 AND started_at > 0 AND started_at < $2 AND (ended_at = 0 OR ended_at > $3)`,
		deviceID, ms(end), ms(start))
	if err != nil {
		return 0, err
	}
	spans := make([][2]time.Time, len(ls))
	for i, l := range ls {
		spans[i] = [2]time.Time{l.StartedAt, l.EndedAt}
	}
	return hiredSeconds(spans, start, end), nil
}

// LeaseEarnings sums what an owner's wallet received for hired time, per currency, optionally
// for one device or one cluster.
// Only settlement postings count: a refund of an unspent share has a lease cause too, and goes
// to the renter's wallet, which is the supplier's own when an account rents its own devices.
// The lease is found by its id cut from the cause ("lease:ID"), so the join uses its key.
func (s *DB) LeaseEarnings(ctx context.Context, ownerID, deviceID, clusterID string) (map[iog.Currency]iog.Amount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.currency, COALESCE(SUM(e.amount), 0) FROM ledger_entries e
		JOIN ledger_postings p ON p.key = e.posting_key
		JOIN leases l ON l.id = substr(p.cause, 7)
		WHERE e.account = $1 AND l.supplier_id = $2 AND p.key LIKE 'settle:%' AND p.cause LIKE 'lease:%'
		AND ($3 = '' OR l.device_id = $3) AND ($4 = '' OR l.cluster_id = $4)
		GROUP BY e.currency`, iog.AccWallet(ownerID), ownerID, deviceID, clusterID)
	if err != nil {
		return nil, fmt.Errorf("store: earnings: %w", err)
	}
	defer rows.Close()
	out := map[iog.Currency]iog.Amount{}
	for rows.Next() {
		var c string
		var v int64
		if err := rows.Scan(&c, &v); err != nil {
			return nil, err
		}
		out[iog.Currency(c)] = iog.Amount(v)
	}
	return out, rows.Err()
}

// RewardsEarned sums the block rewards credited to a device (claimed or not).
func (s *DB) RewardsEarned(ctx context.Context, deviceID string) (iog.Amount, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e JOIN ledger_postings p ON p.key = e.posting_key
		WHERE e.account = $1 AND e.amount > 0 AND p.cause LIKE 'block:%'`, iog.AccRewards(deviceID)).Scan(&v)
	return iog.Amount(v), err
}

// SetUpSince records since when a device has been continuously up (zero: it is not).
func (s *DB) SetUpSince(ctx context.Context, deviceID string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE devices SET up_since = $1 WHERE id = $2`, ms(at), deviceID)
	return err
}

// Leader elects one coordinator for the singleton loops (blocks). On SQLite there is only one
// process and it always leads; on PostgreSQL a session advisory lock on a dedicated connection
// decides, and is given up when that connection closes.
type Leader struct {
	db   *DB
	mu   sync.Mutex
	conn *sql.Conn
}

// leaderLockID is the advisory lock's first key ("iog" in ASCII); the second is a hash of the
// schema, so that networks kept in different schemas of one database each have their own
// leader (advisory locks are per database, not per schema).
const leaderLockID = 0x696f67

// NewLeader returns an election over the store.
func (s *DB) NewLeader() *Leader { return &Leader{db: s} }

// Lead reports whether this process leads now, trying to take the lead if it does not.
func (l *Leader) Lead(ctx context.Context) bool {
	if l.db.engine != Postgres {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.PingContext(ctx); err == nil {
			return true
		}
		l.conn.Close()
		l.conn = nil
	}
	c, err := l.db.db.Conn(ctx)
	if err != nil {
		return false
	}
	var ok bool
	if err := c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1::int, hashtext(current_schema()))`, leaderLockID).Scan(&ok); err != nil || !ok {
		c.Close()
		return false
	}
	l.conn = c
	return true
}

// Close gives up the lead.
func (l *Leader) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}
