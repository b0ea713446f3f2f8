package store

import (
	"context"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// SettleLease records that a lease's supplier has been paid for minutes [from, to) and applies
// the postings that pay it, atomically. It is a no-op (false) when the lease is no longer at
// from minutes, so two settlers, or a settler replaying after a crash, never pay twice.
func (s *DB) SettleLease(ctx context.Context, leaseID string, from, to int64, amount iog.Amount, postings ...iog.Posting) (bool, error) {
	return s.guarded(ctx, "settle lease", `UPDATE leases SET settled_minutes = $1, settled = settled + $2
		WHERE id = $3 AND settled_minutes = $4 AND closed = 0 AND settled + $2 <= prepaid`,
		[]any{to, int64(amount), leaseID, from}, postings...)
}

// CloseLease marks an ended lease's money final and applies its refund postings, atomically.
func (s *DB) CloseLease(ctx context.Context, leaseID string, postings ...iog.Posting) (bool, error) {
	return s.guarded(ctx, "close lease", `UPDATE leases SET closed = 1 WHERE id = $1 AND closed = 0 AND active = 0`, []any{leaseID}, postings...)
}

// UnclosedLeases lists the leases whose money is not final yet.
func (s *DB) UnclosedLeases(ctx context.Context) ([]iog.Lease, error) {
	return s.leaseWhere(ctx, `closed = 0 ORDER BY created_at, id`)
}

// ExtendCluster adds prepaid time to an open cluster's open leases and moves its expiry, with
// the escrow postings, atomically.
func (s *DB) ExtendCluster(ctx context.Context, clusterID string, expires time.Time, extra map[string]iog.Amount, postings ...iog.Posting) error {
	return s.tx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, `UPDATE clusters SET expires_at = $1 WHERE id = $2 AND state IN ('deploying', 'running')`, ms(expires), clusterID)
		if err != nil {
			return fmt.Errorf("store: extend cluster: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return iog.Errorf(iog.ECONFLICT, "cluster %s is not running", clusterID)
		}
		for id, amt := range extra {
			if _, err := q.ExecContext(ctx, `UPDATE leases SET prepaid = prepaid + $1 WHERE id = $2 AND closed = 0`, int64(amt), id); err != nil {
				return fmt.Errorf("store: extend lease: %w", err)
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
