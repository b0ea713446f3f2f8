package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// HardwareClaim is what ClaimHardware found.
type HardwareClaim struct {
	// Key stopped the claim ("" when it stands): Holder proved it, or Fraud says why it is
	// blocked for this owner.
	Key, Holder, Fraud string
	// Review lists the keys another owner's device was blocked for fraud with: the claim
	// stands, flagged for review.
	Review []string
}

// ClaimHardware records device id's claims on the given hardware keys (GPU UUIDs, host machine
// ids) and drops its claims on keys it no longer reports. A claim is refused when the key is
// bound to another device that proved it and is not deleted, or was blocked for fraud on a
// device of the same owner; then nothing is recorded. Unproven claims of other devices do not
// stop it: every claimant is challenged and the first to prove keeps the key (BindHardware).
func (s *DB) ClaimHardware(ctx context.Context, id, owner string, keys []string, now time.Time) (HardwareClaim, error) {
	var c HardwareClaim
	err := s.tx(ctx, func(q querier) error {
		var err error
		if c, err = checkHardware(ctx, q, id, owner, keys); err != nil || c.Key != "" {
			return cmp.Or(err, errConflict)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM hardware_claims WHERE device_id = $1`, id); err != nil {
			return fmt.Errorf("store: claim hardware: %w", err)
		}
		for _, k := range keys {
			if _, err := q.ExecContext(ctx, `INSERT INTO hardware_claims (hw_key, device_id, at) VALUES ($1, $2, $3)
				ON CONFLICT (hw_key, device_id) DO NOTHING`, k, id, ms(now)); err != nil {
				return fmt.Errorf("store: claim hardware: %w", err)
			}
		}
		// Bindings of hardware the device no longer has are released.
		bound, err := queryAll(ctx, q, "hardware", func(r scanner) (string, error) {
			var k string
			return k, r.Scan(&k)
		}, `SELECT hw_key FROM device_hardware WHERE device_id = $1`, id)
		if err != nil {
			return err
		}
		for _, k := range bound {
			if !slices.Contains(keys, k) {
				if _, err := q.ExecContext(ctx, `DELETE FROM device_hardware WHERE hw_key = $1 AND device_id = $2`, k, id); err != nil {
					return fmt.Errorf("store: release hardware: %w", err)
				}
			}
		}
		return nil
	})
	if errors.Is(err, errConflict) {
		return c, nil
	}
	return c, err
}

// CheckHardware is ClaimHardware's check alone, read-only: whether device id may still hold the
// keys it claimed before (a hello whose inventory did not change re-checks its claims without
// writing them again).
func (s *DB) CheckHardware(ctx context.Context, id, owner string, keys []string) (HardwareClaim, error) {
	if len(keys) == 0 {
		return HardwareClaim{}, nil
	}
	return checkHardware(ctx, s.ro, id, owner, keys)
}

func checkHardware(ctx context.Context, q querier, id, owner string, keys []string) (HardwareClaim, error) {
	var c HardwareClaim
	for _, k := range keys {
		var bOwner, bDevice, reason string
		err := q.QueryRowContext(ctx, `SELECT owner_id, device_id, reason FROM hardware_blocks WHERE hw_key = $1`, k).Scan(&bOwner, &bDevice, &reason)
		switch {
		case err == nil && bOwner == owner:
			c.Key, c.Fraud = k, fmt.Sprintf("hardware %s was blocked for fraud on device %s of the same owner (%s)", k, bDevice, reason)
			return c, nil
		case err == nil:
			c.Review = append(c.Review, k)
		case !errors.Is(err, sql.ErrNoRows):
			return c, fmt.Errorf("store: read hardware blocks: %w", err)
		}
		var cur string
		err = q.QueryRowContext(ctx, `SELECT h.device_id FROM device_hardware h JOIN devices d ON d.id = h.device_id
			WHERE h.hw_key = $1 AND d.deleted = 0`, k).Scan(&cur)
		switch {
		case err == nil && cur != id:
			c.Key, c.Holder = k, cur
			return c, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return c, fmt.Errorf("store: read hardware: %w", err)
		}
	}
	return c, nil
}

// BindHardware makes device id, which has just passed a proof with them, the holder of the
// hardware keys. When another live device bound one first, nothing changes and that key and
// holder are returned. Otherwise the other devices' unproven claims on the keys are dropped
// and returned (device -> key): they lost.
func (s *DB) BindHardware(ctx context.Context, id string, keys []string, now time.Time) (key, holder string, losers map[string]string, err error) {
	losers = map[string]string{}
	err = s.tx(ctx, func(q querier) error {
		for _, k := range keys {
			var cur string
			err := q.QueryRowContext(ctx, `SELECT h.device_id FROM device_hardware h JOIN devices d ON d.id = h.device_id
				WHERE h.hw_key = $1 AND d.deleted = 0`, k).Scan(&cur)
			switch {
			case err == nil && cur != id:
				key, holder = k, cur
				return errConflict
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("store: read hardware: %w", err)
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO device_hardware (hw_key, device_id, at) VALUES ($1, $2, $3)
				ON CONFLICT (hw_key) DO UPDATE SET device_id = excluded.device_id, at = excluded.at`, k, id, ms(now)); err != nil {
				return fmt.Errorf("store: bind hardware: %w", err)
			}
			others, err := queryAll(ctx, q, "hardware claims", func(r scanner) (string, error) {
				var d string
				return d, r.Scan(&d)
			}, `SELECT c.device_id FROM hardware_claims c JOIN devices d ON d.id = c.device_id
				WHERE c.hw_key = $1 AND c.device_id <> $2 AND d.deleted = 0`, k, id)
			if err != nil {
				return err
			}
			for _, o := range others {
				if _, ok := losers[o]; !ok {
					losers[o] = k
				}
			}
			if _, err := q.ExecContext(ctx, `DELETE FROM hardware_claims WHERE hw_key = $1 AND device_id <> $2`, k, id); err != nil {
				return fmt.Errorf("store: drop claims: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, errConflict) {
		return key, holder, nil, nil
	}
	return "", "", losers, err
}

// BlockHardware records that device id of owner was blocked for fraud with the given keys, and
// releases them from it: the same owner's later devices are refused them, anyone else's are
// flagged for review.
func (s *DB) BlockHardware(ctx context.Context, id, owner string, keys []string, reason string, now time.Time) error {
	return s.tx(ctx, func(q querier) error {
		for _, k := range keys {
			if _, err := q.ExecContext(ctx, `INSERT INTO hardware_blocks (hw_key, owner_id, device_id, reason, at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hw_key) DO UPDATE SET owner_id = excluded.owner_id,
				device_id = excluded.device_id, reason = excluded.reason, at = excluded.at`, k, owner, id, reason, ms(now)); err != nil {
				return fmt.Errorf("store: block hardware: %w", err)
			}
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM device_hardware WHERE device_id = $1`, id); err != nil {
			return fmt.Errorf("store: block hardware: %w", err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM hardware_claims WHERE device_id = $1`, id); err != nil {
			return fmt.Errorf("store: block hardware: %w", err)
		}
		return nil
	})
}

// HardwareReview says why a device should be reviewed: the hardware it claims that another
// owner's device was blocked for fraud with ("" when none).
func (s *DB) HardwareReview(ctx context.Context, id string) (string, error) {
	rows, err := queryAll(ctx, s.db, "hardware review", func(r scanner) (string, error) {
		var k, dev, reason string
		err := r.Scan(&k, &dev, &reason)
		return fmt.Sprintf("hardware %s was blocked for fraud on another owner's device %s (%s)", k, dev, reason), err
	}, `SELECT b.hw_key, b.device_id, b.reason FROM hardware_claims c JOIN hardware_blocks b ON b.hw_key = c.hw_key
		JOIN devices d ON d.id = c.device_id WHERE c.device_id = $1 AND b.owner_id <> d.owner_id ORDER BY b.hw_key`, id)
	return strings.Join(rows, "; "), err
}

var errConflict = errors.New("conflict")

// CreateProofs records challenges issued together, in one transaction; none is recorded, and
// the error is ECONFLICT, when one of their devices has a proof open already.
func (s *DB) CreateProofs(ctx context.Context, ps []iog.Proof) error {
	return s.tx(ctx, func(q querier) error {
		for _, p := range ps {
			_, err := q.ExecContext(ctx, `INSERT INTO proofs (id, device_id, round_id, class, units, threads, params, nonce, epoch,
				issued_at, start_by, started_at, answered_at, expected_ms, min_ms, deadline_ms, elapsed_ms, result, reason)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
				p.ID, p.DeviceID, p.RoundID, p.Class, strings.Join(p.Units, ","), p.Threads, string(p.Params), p.Nonce, p.Epoch,
				ms(p.IssuedAt), ms(p.StartBy), ms(p.StartedAt), ms(p.AnsweredAt), p.ExpectedMS, p.MinMS, p.DeadlineMS,
				p.ElapsedMS, string(p.Result), p.Reason)
			if isUnique(err) {
				return iog.Errorf(iog.ECONFLICT, "device %s has a proof open already (one proof open per device)", p.DeviceID)
			}
			if err != nil {
				return fmt.Errorf("store: create proof: %w", err)
			}
		}
		return nil
	})
}

// ClaimRound records that a round's passes were counted, at most once: it reports true to the
// one caller that closes the round (several coordinators may each close one of its proofs).
func (s *DB) ClaimRound(ctx context.Context, roundID string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO proof_rounds_closed (round_id, at) VALUES ($1, $2) ON CONFLICT (round_id) DO NOTHING`,
		roundID, ms(at))
	if err != nil {
		return false, fmt.Errorf("store: claim round: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const proofCols = `id, device_id, round_id, class, units, threads, params, nonce, epoch, issued_at, start_by, started_at,
	answered_at, expected_ms, min_ms, deadline_ms, elapsed_ms, result, reason`

func scanProof(row scanner) (iog.Proof, error) {
	var p iog.Proof
	var units, params, result string
	var issued, startBy, started, answered int64
	err := row.Scan(&p.ID, &p.DeviceID, &p.RoundID, &p.Class, &units, &p.Threads, &params, &p.Nonce, &p.Epoch, &issued,
		&startBy, &started, &answered, &p.ExpectedMS, &p.MinMS, &p.DeadlineMS, &p.ElapsedMS, &result, &p.Reason)
	if units != "" {
		p.Units = strings.Split(units, ",")
	}
	p.Params, p.Result = []byte(params), iog.ProofResult(result)
	p.IssuedAt, p.StartBy, p.StartedAt, p.AnsweredAt = tm(issued), tm(startBy), tm(started), tm(answered)
	return p, err
}

func (s *DB) proofsWhere(ctx context.Context, where string, args ...any) ([]iog.Proof, error) {
	return queryAll(ctx, s.db, "proofs", scanProof, `SELECT `+proofCols+` FROM proofs WHERE `+where, args...)
}

// Proof returns one proof.
func (s *DB) Proof(ctx context.Context, id string) (iog.Proof, error) {
	ps, err := s.proofsWhere(ctx, `id = $1`, id)
	if err != nil {
		return iog.Proof{}, err
	}
	if len(ps) == 0 {
		return iog.Proof{}, notFound("proof", id)
	}
	return ps[0], nil
}

// LastPassedProofAt is when the device last passed a proof answered by at.
func (s *DB) LastPassedProofAt(ctx context.Context, deviceID string, at time.Time) (time.Time, bool, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(answered_at) FROM proofs WHERE device_id = $1 AND result = $2 AND answered_at > 0 AND answered_at <= $3`,
		deviceID, string(iog.ProofPassed), ms(at)).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: last passed proof: %w", err)
	}
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}, false, nil
	}
	return tm(v.Int64), true, nil
}

// LastCountedProofAt is the latest proof issued by at whose result counts (passed, failed,
// missed, fraud): a device's proof state at that time. ok is false when there is none.
func (s *DB) LastCountedProofAt(ctx context.Context, deviceID string, at time.Time) (iog.Proof, bool, error) {
	ps, err := s.proofsWhere(ctx, `device_id = $1 AND issued_at <= $2 AND result IN ($3, $4, $5, $6) ORDER BY issued_at DESC, id DESC LIMIT 1`,
		deviceID, ms(at), string(iog.ProofPassed), string(iog.ProofFailed), string(iog.ProofMissed), string(iog.ProofFraud))
	if err != nil || len(ps) == 0 {
		return iog.Proof{}, false, err
	}
	return ps[0], true, nil
}

// DeviceProofs returns a device's latest proofs, oldest first.
func (s *DB) DeviceProofs(ctx context.Context, deviceID string, limit int) ([]iog.Proof, error) {
	ps, err := s.proofsWhere(ctx, `device_id = $1 ORDER BY issued_at DESC, id DESC LIMIT $2`, deviceID, limit)
	for i, j := 0, len(ps)-1; i < j; i, j = i+1, j-1 {
		ps[i], ps[j] = ps[j], ps[i]
	}
	return ps, err
}

// RoundProofs returns the proofs issued together in one round.
func (s *DB) RoundProofs(ctx context.Context, roundID string) ([]iog.Proof, error) {
	return s.proofsWhere(ctx, `round_id = $1 ORDER BY id`, roundID)
}

// OpenProofs returns every proof still waiting for its device.
func (s *DB) OpenProofs(ctx context.Context) ([]iog.Proof, error) {
	return s.proofsWhere(ctx, `result IN ($1, $2) ORDER BY issued_at, id`, string(iog.ProofIssued), string(iog.ProofStarted))
}

// StartProof marks an issued proof started at at; it reports false if the proof was not in
// the issued state (already started, or closed).
func (s *DB) StartProof(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE proofs SET result = $1, started_at = $2 WHERE id = $3 AND result = $4`,
		string(iog.ProofStarted), ms(at), id, string(iog.ProofIssued))
	if err != nil {
		return false, fmt.Errorf("store: start proof: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishProof closes an open proof with its result; it reports false if the proof was
// already closed (so that exactly one outcome is ever recorded).
func (s *DB) FinishProof(ctx context.Context, p iog.Proof) (bool, error) {
	if p.Result.Open() {
		return false, iog.Errorf(iog.EINVALID, "proof %s: %s is not a final result", p.ID, p.Result)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE proofs SET result = $1, reason = $2, answered_at = $3, elapsed_ms = $4
		WHERE id = $5 AND result IN ($6, $7)`, string(p.Result), p.Reason, ms(p.AnsweredAt), p.ElapsedMS, p.ID,
		string(iog.ProofIssued), string(iog.ProofStarted))
	if err != nil {
		return false, fmt.Errorf("store: finish proof: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// LastPassedProof is when the device last passed a proof of GPU (its answer's arrival), and
// whether it ever did. Block-reward nomination asks for one in the last 24 hours.
func (s *DB) LastPassedProof(ctx context.Context, deviceID string) (time.Time, bool, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(answered_at) FROM proofs WHERE device_id = $1 AND result = $2`,
		deviceID, string(iog.ProofPassed)).Scan(&at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: last passed proof: %w", err)
	}
	if !at.Valid || at.Int64 == 0 {
		return time.Time{}, false, nil
	}
	return tm(at.Int64), true, nil
}

const trustCols = `device_id, verified_hw, verified_at, probation_until, idle_busy_since, idle_warned_at, idle_flagged_at, upheld_disputes`

func scanTrust(r scanner) (iog.DeviceTrust, error) {
	var t iog.DeviceTrust
	var verified, probation, busy, warned, flagged int64
	err := r.Scan(&t.DeviceID, &t.VerifiedHW, &verified, &probation, &busy, &warned, &flagged, &t.UpheldDisputes)
	t.VerifiedAt, t.ProbationUntil, t.IdleBusySince, t.IdleWarnedAt, t.IdleFlaggedAt = tm(verified), tm(probation), tm(busy), tm(warned), tm(flagged)
	return t, err
}

// DeviceTrust returns a device's trust record (zero values when it has none yet).
func (s *DB) DeviceTrust(ctx context.Context, id string) (iog.DeviceTrust, error) {
	t, err := scanTrust(s.hot.QueryRowContext(ctx, `SELECT `+trustCols+` FROM device_trust WHERE device_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return iog.DeviceTrust{DeviceID: id}, nil
	}
	if err != nil {
		return iog.DeviceTrust{DeviceID: id}, fmt.Errorf("store: device trust: %w", err)
	}
	return t, nil
}

// SetDeviceTrust saves a device's trust record.
func (s *DB) SetDeviceTrust(ctx context.Context, t iog.DeviceTrust) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO device_trust (device_id, verified_hw, verified_at, probation_until,
		idle_busy_since, idle_warned_at, idle_flagged_at, upheld_disputes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (device_id) DO UPDATE SET verified_hw = excluded.verified_hw, verified_at = excluded.verified_at,
		probation_until = excluded.probation_until, idle_busy_since = excluded.idle_busy_since,
		idle_warned_at = excluded.idle_warned_at, idle_flagged_at = excluded.idle_flagged_at,
		upheld_disputes = excluded.upheld_disputes`,
		t.DeviceID, t.VerifiedHW, ms(t.VerifiedAt), ms(t.ProbationUntil), ms(t.IdleBusySince), ms(t.IdleWarnedAt),
		ms(t.IdleFlaggedAt), t.UpheldDisputes)
	if err != nil {
		return fmt.Errorf("store: set device trust: %w", err)
	}
	return nil
}

// Outcome is one dated good or bad result (a proof, a job) for reputation.
type Outcome struct {
	At time.Time
	OK bool
}

// ProofOutcomes are a device's closed proofs since a time (void ones excluded).
func (s *DB) ProofOutcomes(ctx context.Context, deviceID string, since time.Time) ([]Outcome, error) {
	return s.outcomes(ctx, `SELECT issued_at, result FROM proofs WHERE device_id = $1 AND issued_at >= $2 AND result IN ($3, $4, $5, $6)`,
		func(r string) bool { return r == string(iog.ProofPassed) },
		deviceID, ms(since), string(iog.ProofPassed), string(iog.ProofFailed), string(iog.ProofMissed), string(iog.ProofFraud))
}

// JobOutcomes are a device's ended leases since a time: good when the workload ended by itself
// or was stopped, bad when the device lost it or failed to run it.
func (s *DB) JobOutcomes(ctx context.Context, deviceID string, since time.Time) ([]Outcome, error) {
	return s.outcomes(ctx, `SELECT ended_at, state FROM leases WHERE device_id = $1 AND active = 0 AND ended_at >= $2 AND state IN ($3, $4, $5, $6)`,
		func(r string) bool { return r == string(iog.LeaseExited) || r == string(iog.LeaseStopped) },
		deviceID, ms(since), string(iog.LeaseExited), string(iog.LeaseStopped), string(iog.LeaseLost), string(iog.LeaseFailed))
}

func (s *DB) outcomes(ctx context.Context, query string, ok func(string) bool, args ...any) ([]Outcome, error) {
	rows, err := s.ro.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outcomes: %w", err)
	}
	defer rows.Close()
	var out []Outcome
	for rows.Next() {
		var at int64
		var r string
		if err := rows.Scan(&at, &r); err != nil {
			return nil, err
		}
		out = append(out, Outcome{At: tm(at), OK: ok(r)})
	}
	return out, rows.Err()
}

// DeviceEventsSince returns a device's status changes at or after since, oldest first, plus
// the last change before it (so the status at since is known): every change at that last
// instant, since which of several at one millisecond came last is not recorded.
func (s *DB) DeviceEventsSince(ctx context.Context, id string, since time.Time) ([]iog.DeviceEvent, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT at, status, reason FROM device_events WHERE device_id = $1 AND at >= $2
		UNION ALL SELECT at, status, reason FROM device_events WHERE device_id = $1
			AND at = (SELECT MAX(at) FROM device_events WHERE device_id = $1 AND at < $2)
		ORDER BY at`, id, ms(since))
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
		out = append(out, e)
	}
	return out, rows.Err()
}

// The reputation sweep's reads (internal/fleet): each reads one input of reputation for every
// device of a DeviceRange in one query, streaming the rows and keeping those of the listed
// devices, by device id. Each gives, for every listed device, what its per-device counterpart
// above gives for it alone.

// DeviceRange is a page of device ids for the batched reads: the ids in the store's order, as
// DevicesAfter returns them, so that the first and the last bound every one of them in the
// database's own collation. Rows of the devices between them that are not listed are skipped.
type DeviceRange struct {
	lo, hi string
	keep   map[string]bool
}

// Range returns the DeviceRange of ids, which must be in the store's order (a subsequence of
// a DevicesAfter page).
func Range(ids []string) DeviceRange {
	r := DeviceRange{keep: make(map[string]bool, len(ids))}
	if len(ids) > 0 {
		r.lo, r.hi = ids[0], ids[len(ids)-1]
	}
	for _, id := range ids {
		r.keep[id] = true
	}
	return r
}

// inRange runs a query over r's range ($1 and $2; args follow) and passes each row of a listed
// device, as scan reads it, to add: the rows stream, and those of other devices are dropped.
func inRange[T any](ctx context.Context, s *DB, r DeviceRange, what, query string, scan func(scanner) (string, T, error),
	add func(id string, v T), args ...any) error {
	if len(r.keep) == 0 {
		return nil
	}
	rows, err := s.ro.QueryContext(ctx, query, append([]any{r.lo, r.hi}, args...)...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		id, v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("store: scan %s: %w", what, err)
		}
		if r.keep[id] {
			add(id, v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// DeviceTrusts returns the trust records of the range's devices that have one.
func (s *DB) DeviceTrusts(ctx context.Context, r DeviceRange) (map[string]iog.DeviceTrust, error) {
	out := map[string]iog.DeviceTrust{}
	err := inRange(ctx, s, r, "device trusts", `SELECT `+trustCols+` FROM device_trust WHERE device_id >= $1 AND device_id <= $2`,
		func(sc scanner) (string, iog.DeviceTrust, error) { t, err := scanTrust(sc); return t.DeviceID, t, err },
		func(id string, t iog.DeviceTrust) { out[id] = t })
	return out, err
}

// ProofOutcomesIn are the range's devices' closed proofs issued in [since, until] (void ones
// excluded): ProofOutcomes of each, less those issued after until.
func (s *DB) ProofOutcomesIn(ctx context.Context, r DeviceRange, since, until time.Time) (map[string][]Outcome, error) {
	// The results are told apart here, not in the query: one on result would lead SQLite to
	// the index of results, every device's proofs, instead of the range's.
	return s.outcomesIn(ctx, r, `SELECT device_id, issued_at, result FROM proofs WHERE device_id >= $1 AND device_id <= $2
		AND issued_at >= $3 AND issued_at <= $4`,
		func(r string) (ok, counts bool) {
			switch iog.ProofResult(r) {
			case iog.ProofPassed:
				return true, true
			case iog.ProofFailed, iog.ProofMissed, iog.ProofFraud:
				return false, true
			}
			return false, false
		}, ms(since), ms(until))
}

// JobOutcomesIn are the range's devices' leases ended in [since, until]: JobOutcomes of each,
// less those ended after until.
func (s *DB) JobOutcomesIn(ctx context.Context, r DeviceRange, since, until time.Time) (map[string][]Outcome, error) {
	return s.outcomesIn(ctx, r, `SELECT device_id, ended_at, state FROM leases WHERE device_id >= $1 AND device_id <= $2
		AND active = 0 AND ended_at >= $3 AND ended_at <= $4 AND state IN ($5, $6, $7, $8)`,
		func(r string) (ok, counts bool) {
			return r == string(iog.LeaseExited) || r == string(iog.LeaseStopped), true
		},
		ms(since), ms(until), string(iog.LeaseExited), string(iog.LeaseStopped), string(iog.LeaseLost), string(iog.LeaseFailed))
}

// outcomesIn reads (device id, time, result) rows; judge says whether a result is good and
// whether it counts at all.
func (s *DB) outcomesIn(ctx context.Context, r DeviceRange, query string, judge func(string) (ok, counts bool), args ...any) (map[string][]Outcome, error) {
	type row struct {
		o      Outcome
		counts bool
	}
	out := map[string][]Outcome{}
	err := inRange(ctx, s, r, "outcomes", query, func(sc scanner) (string, row, error) {
		var id, res string
		var at int64
		err := sc.Scan(&id, &at, &res)
		ok, counts := judge(res)
		return id, row{Outcome{At: tm(at), OK: ok}, counts}, err
	}, func(id string, o row) {
		if o.counts {
			out[id] = append(out[id], o.o)
		}
	}, args...)
	return out, err
}

// LastCountedProofsAt is, for each of the range's devices that has one, the result of its
// latest proof issued by at whose result counts: LastCountedProofAt's of each.
func (s *DB) LastCountedProofsAt(ctx context.Context, r DeviceRange, at time.Time) (map[string]iog.ProofResult, error) {
	out := map[string]iog.ProofResult{}
	// Driven by the devices, so that each device's latest proof is found by its index (the
	// same ORDER BY as LastCountedProofAt, ties and all) instead of a scan of its history.
	err := inRange(ctx, s, r, "last counted proofs", `SELECT d.id, (SELECT p.result FROM proofs p WHERE p.device_id = d.id
		AND p.issued_at <= $3 AND p.result IN ($4, $5, $6, $7) ORDER BY p.issued_at DESC, p.id DESC LIMIT 1)
		FROM devices d WHERE d.id >= $1 AND d.id <= $2`,
		func(sc scanner) (string, sql.NullString, error) {
			var id string
			var res sql.NullString
			err := sc.Scan(&id, &res)
			return id, res, err
		}, func(id string, res sql.NullString) {
			if res.Valid {
				out[id] = iog.ProofResult(res.String)
			}
		}, ms(at), string(iog.ProofPassed), string(iog.ProofFailed), string(iog.ProofMissed), string(iog.ProofFraud))
	return out, err
}

// DeviceEventsIn returns the range's devices' status changes in [since, until], plus every
// change at the last instant before since, unordered and without their reasons: for a device
// and any from at or after since, what DeviceEventsSince(from) gives up to until is among them.
func (s *DB) DeviceEventsIn(ctx context.Context, r DeviceRange, since, until time.Time) (map[string][]iog.DeviceEvent, error) {
	out := map[string][]iog.DeviceEvent{}
	// CROSS JOIN: SQLite then loops over the devices, finding each one's last change before
	// since by its index, not over every change of the range's devices.
	err := inRange(ctx, s, r, "device events", `SELECT device_id, at, status FROM device_events
			WHERE device_id >= $1 AND device_id <= $2 AND at >= $3 AND at <= $4
		UNION ALL SELECT e.device_id, e.at, e.status FROM devices d CROSS JOIN device_events e WHERE e.device_id = d.id
			AND e.at = (SELECT MAX(x.at) FROM device_events x WHERE x.device_id = d.id AND x.at < $3)
			AND d.id >= $1 AND d.id <= $2`,
		func(sc scanner) (string, iog.DeviceEvent, error) {
			var e iog.DeviceEvent
			var at int64
			var st string
			err := sc.Scan(&e.DeviceID, &at, &st)
			e.At, e.Status = tm(at), iog.DeviceStatus(st)
			return e.DeviceID, e, err
		}, func(id string, e iog.DeviceEvent) { out[id] = append(out[id], e) }, ms(since), ms(until))
	return out, err
}
