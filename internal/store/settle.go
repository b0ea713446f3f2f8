package store

import (
	"context"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// SettleLease records that a lease's supplier has been paid for minutes [from, to) and applies
// the postings that pay it, atomically. It is a no-op (false) when the lease is no longer at
// from minutes with prepaid held, so two settlers, a settler replaying after a crash, or one
// that read the lease before an extend, never pay twice or pay from a stale share.
func (s *DB) SettleLease(ctx context.Context, leaseID string, from, to int64, amount, prepaid iog.Amount, postings ...iog.Posting) (bool, error) {
	return s.guarded(ctx, "settle lease", `UPDATE leases SET settled_minutes = $1, settled = settled + $2
		WHERE id = $3 AND settled_minutes = $4 AND prepaid = $5 AND closed = 0 AND settled + $2 <= prepaid`,
		[]any{to, int64(amount), leaseID, from, int64(prepaid)}, postings...)
}

// UnclosedLeases lists the leases whose money is not final yet.
func (s *DB) UnclosedLeases(ctx context.Context) ([]iog.Lease, error) {
	return s.leaseWhere(ctx, `closed = 0 ORDER BY created_at, id`)
}

// Extension is one purchase of more time for an open cluster.
type Extension struct {
	By  time.Duration // added to the expiry
	Max time.Duration // the longest a cluster may be rented for in all, from its creation
	// Share is what one open lease is charged for By, and Postings moves the sum of the shares
	// (with the fees) from the renter into escrow. Both are called inside the transaction, on
	// the leases that are open then.
	Share    func(l iog.Lease) (iog.Amount, error)
	Postings func(c iog.Cluster, sub iog.Amount) ([]iog.Posting, error)
}

// ExtendCluster moves an open cluster's expiry by x.By and adds each of its open leases' share
// to what they hold, with the postings that pay for it, atomically. Concurrent extensions each
// add their time; a cluster that has ended (or ends meanwhile) is refused with ECONFLICT and
// one that would be rented for longer than x.Max with EINVALID, with nothing charged. It
// returns the cluster as extended.
func (s *DB) ExtendCluster(ctx context.Context, id string, x Extension) (iog.Cluster, error) {
	s.before(ctx, "cluster", id)
	var c iog.Cluster
	err := s.tx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, `UPDATE clusters SET expires_at = expires_at + $1, rev = rev + 1
			WHERE id = $2 AND state IN ('deploying', 'running') AND expires_at + $1 <= created_at + $3`, x.By.Milliseconds(), id, x.Max.Milliseconds())
		if err != nil {
			return fmt.Errorf("store: extend cluster: %w", err)
		}
		changed, _ := res.RowsAffected()
		cs, err := queryAll(ctx, q, "clusters", scanCluster, `SELECT `+clusterCols+` FROM clusters WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return notFound("cluster", id)
		}
		c = cs[0]
		if changed != 1 {
			if c.State.Ended() {
				return iog.Errorf(iog.ECONFLICT, "cluster %s already %s", id, c.State)
			}
			return iog.Errorf(iog.EINVALID, "cluster %s is rented until %s; %s more would make it longer than %d h in all",
				id, c.ExpiresAt.Format(time.RFC3339), x.By, int64(x.Max/time.Hour))
		}
		open, err := queryAll(ctx, q, "leases", scanLease, `SELECT `+leaseCols+` FROM leases WHERE cluster_id = $1 AND active = 1 AND closed = 0 ORDER BY id`, id)
		if err != nil {
			return err
		}
		var sub iog.Amount
		for _, l := range open {
			a, err := x.Share(l)
			if err != nil {
				return err
			}
			if sub, err = sub.Add(a); err != nil {
				return err
			}
			// The cluster's row is locked, so no lease of it ends meanwhile.
			if _, err := q.ExecContext(ctx, `UPDATE leases SET prepaid = prepaid + $1 WHERE id = $2 AND active = 1 AND closed = 0`, int64(a), l.ID); err != nil {
				return fmt.Errorf("store: extend lease: %w", err)
			}
		}
		ps, err := x.Postings(c, sub)
		if err != nil {
			return err
		}
		if err := applyPostings(ctx, q, ps); err != nil {
			return err
		}
		return nil
	})
	return c, err
}
