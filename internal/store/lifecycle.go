package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// Every change of a cluster's state or of one of its leases' states is a compare-and-set: the
// UPDATE's WHERE clause holds the state the change was decided on (a lease still active, a
// cluster still open, or still at the revision that was read), and the cluster's revision is
// bumped in the same transaction. A transaction that changes a lease locks its cluster's row
// first, so on PostgreSQL two changes of one cluster queue up instead of deadlocking, and no
// lease of a cluster can end while the cluster is being ended, extended or given a new node.

// AnyRev in ClusterEnd.Rev ends a cluster whatever its revision, as long as it is open.
const AnyRev = -1

// LeaseEnd is how an active lease ends.
type LeaseEnd struct {
	State    iog.LeaseState
	Reason   string
	ExitCode *int
	At       time.Time
}

// Settlement is a lease's money once it has ended: the whole minutes settled to its supplier
// in all, what they came to in all, and the postings that pay what was not paid yet and refund
// the rest of the lease's prepaid share.
type Settlement struct {
	Minutes  int64
	Amount   iog.Amount
	Postings []iog.Posting
}

// Closer computes an ended lease's Settlement from the lease (in its final state) and its
// cluster as read inside the transaction that ends it, so that a lease's end, its last payment
// and its refund are one change. It must not do I/O.
type Closer func(l iog.Lease, c iog.Cluster) (Settlement, error)

// errStale rolls back a transaction whose compare-and-set found the row changed.
var errStale = errors.New("store: changed meanwhile")

func lockCluster(ctx context.Context, q querier, id string) error {
	if _, err := q.ExecContext(ctx, `UPDATE clusters SET rev = rev + 1 WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: lock cluster: %w", err)
	}
	return nil
}

// StartLease marks an assigned lease running. It reports false when the lease is not assigned.
func (s *DB) StartLease(ctx context.Context, id string, now time.Time) (bool, error) {
	s.before(ctx, "lease", id)
	return s.leaseChange(ctx, id, `state = $1 AND active = 1`, []any{string(iog.LeaseAssigned)}, func(q querier) (bool, error) {
		res, err := q.ExecContext(ctx, `UPDATE leases SET state = $1, started_at = $2 WHERE id = $3 AND state = $4 AND active = 1`,
			string(iog.LeaseRunning), ms(now), id, string(iog.LeaseAssigned))
		if err != nil {
			return false, fmt.Errorf("store: start lease: %w", err)
		}
		n, _ := res.RowsAffected()
		return n == 1, nil
	})
}

// EndLease moves an active lease to a final state, frees its device (back to ready unless the
// device is paused, down or blocked) and, with a closer, pays and refunds what the lease holds,
// all at once. It reports false when the lease had already ended.
func (s *DB) EndLease(ctx context.Context, id string, e LeaseEnd, close Closer) (bool, error) {
	s.before(ctx, "lease", id)
	return s.leaseChange(ctx, id, `active = 1`, nil, func(q querier) (bool, error) {
		ok, err := endLease(ctx, q, id, e)
		if err != nil || !ok || close == nil {
			return ok, err
		}
		ps, err := closeLease(ctx, q, id, close)
		if err != nil {
			return false, err
		}
		return true, applyPostings(ctx, q, ps)
	})
}

// leaseChange runs change in a transaction after locking the cluster of lease id, if the lease
// matches cond (with args from $1). A change that reports false rolls everything back.
func (s *DB) leaseChange(ctx context.Context, id, cond string, args []any, change func(q querier) (bool, error)) (bool, error) {
	done := false
	err := s.tx(ctx, func(q querier) error {
		done = false
		var cluster string
		n := len(args) + 1
		err := q.QueryRowContext(ctx, fmt.Sprintf(`SELECT cluster_id FROM leases WHERE id = $%d AND %s`, n, cond), append(args, id)...).Scan(&cluster)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: read lease: %w", err)
		}
		if err := lockCluster(ctx, q, cluster); err != nil {
			return err
		}
		ok, err := change(q)
		if err != nil {
			return err
		}
		if !ok {
			return errStale
		}
		done = true
		return nil
	})
	if errors.Is(err, errStale) {
		return false, nil
	}
	return done && err == nil, err
}

// endLease ends one active lease and frees its device, inside q's transaction.
func endLease(ctx context.Context, q querier, id string, e LeaseEnd) (bool, error) {
	var code any
	if e.ExitCode != nil {
		code = *e.ExitCode
	}
	var dev string
	err := q.QueryRowContext(ctx, `UPDATE leases SET state = $1, reason = $2, exit_code = $3, ended_at = $4, active = 0
		WHERE id = $5 AND active = 1 RETURNING device_id`, string(e.State), e.Reason, code, ms(e.At), id).Scan(&dev)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: end lease: %w", err)
	}
	if err := releaseTasks(ctx, q, id, e); err != nil {
		return false, err
	}
	_, err = setStatus(ctx, q, dev, iog.DeviceReady, "lease "+id+" ended", e.At, iog.DeviceHired)
	return true, err
}

// closeLease settles an ended lease for good with close, inside q's transaction, which holds
// the lease's row (so no settlement pass can pay it meanwhile). It returns the postings to
// apply; the caller applies them after every row it changes, so that balances are always
// locked last (and in one order: applyPostings).
func closeLease(ctx context.Context, q querier, id string, close Closer) ([]iog.Posting, error) {
	ls, err := queryAll(ctx, q, "leases", scanLease, `SELECT `+leaseCols+` FROM leases WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, notFound("lease", id)
	}
	l := ls[0]
	if l.Closed || l.State.Active() {
		return nil, nil
	}
	cs, err := queryAll(ctx, q, "clusters", scanCluster, `SELECT `+clusterCols+` FROM clusters WHERE id = $1`, l.ClusterID)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, notFound("cluster", l.ClusterID)
	}
	st, err := close(l, cs[0])
	if err != nil {
		return nil, err
	}
	if st.Minutes < l.SettledMinutes || st.Amount < l.Settled || st.Amount > l.Prepaid {
		return nil, fmt.Errorf("store: close lease %s: settlement of %d minutes for %s is outside [%d, %s..%s]", id, st.Minutes, st.Amount,
			l.SettledMinutes, l.Settled, l.Prepaid)
	}
	res, err := q.ExecContext(ctx, `UPDATE leases SET settled_minutes = $1, settled = $2, closed = 1
		WHERE id = $3 AND settled_minutes = $4 AND settled = $5 AND closed = 0`, st.Minutes, int64(st.Amount), id, l.SettledMinutes, int64(l.Settled))
	if err != nil {
		return nil, fmt.Errorf("store: close lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, fmt.Errorf("store: close lease %s: it changed while locked", id)
	}
	return st.Postings, nil
}

// CloseLease settles an ended lease for good with close (its last payment and its refund). It
// reports false when there was nothing to close: the lease is still active or closed already.
func (s *DB) CloseLease(ctx context.Context, id string, close Closer) (bool, error) {
	done := false
	err := s.tx(ctx, func(q querier) error {
		// Lock the row first; a settlement pass racing this one then finds it closed.
		res, err := q.ExecContext(ctx, `UPDATE leases SET closed = 0 WHERE id = $1 AND closed = 0 AND active = 0`, id)
		if err != nil {
			return fmt.Errorf("store: close lease: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		ps, err := closeLease(ctx, q, id, close)
		if err != nil {
			return err
		}
		done = true
		return applyPostings(ctx, q, ps)
	})
	return done && err == nil, err
}

// ClusterEnd is a cluster's move to a final state.
type ClusterEnd struct {
	State  iog.ClusterState
	Reason string
	At     time.Time
	// Rev is the revision the decision was taken at (AnyRev: end it whatever changed, as a
	// renter's terminate does).
	Rev int64
	// Lease is the state its active leases end in, with the cluster's reason; Close settles
	// each of them.
	Lease iog.LeaseState
	Close Closer
}

// EndCluster moves an open cluster to a final state and ends every active lease of it, freeing
// their devices and settling their money, in one transaction: a crash leaves either all of it
// or none. It returns the leases it ended, and false when the cluster had ended already or was
// no longer at e.Rev.
func (s *DB) EndCluster(ctx context.Context, id string, e ClusterEnd) ([]iog.Lease, bool, error) {
	if !e.State.Ended() || e.Lease.Active() {
		return nil, false, fmt.Errorf("store: end cluster %s in %s with leases %s", id, e.State, e.Lease)
	}
	s.before(ctx, "cluster", id)
	var ended []iog.Lease
	done := false
	err := s.tx(ctx, func(q querier) error {
		ended, done = nil, false
		query := `UPDATE clusters SET state = $1, reason = $2, ended_at = $3, rev = rev + 1 WHERE id = $4 AND state IN ('deploying', 'running')`
		args := []any{string(e.State), e.Reason, ms(e.At), id}
		if e.Rev != AnyRev {
			query += ` AND rev = $5`
			args = append(args, e.Rev)
		}
		res, err := q.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: end cluster: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		active, err := queryAll(ctx, q, "leases", scanLease, `SELECT `+leaseCols+` FROM leases WHERE cluster_id = $1 AND active = 1 ORDER BY id`, id)
		if err != nil {
			return err
		}
		var ps []iog.Posting
		for _, l := range active {
			ok, err := endLease(ctx, q, l.ID, LeaseEnd{State: e.Lease, Reason: e.Reason, At: e.At})
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("store: end cluster %s: lease %s changed while locked", id, l.ID)
			}
			if e.Close != nil {
				lps, err := closeLease(ctx, q, l.ID, e.Close)
				if err != nil {
					return err
				}
				ps = append(ps, lps...)
			}
			ended = append(ended, l)
		}
		done = true
		return applyPostings(ctx, q, ps)
	})
	if err != nil {
		return nil, false, err
	}
	return ended, done, nil
}

// StrayLeases lists active leases of clusters that have ended: none unless an older version
// ended a cluster and crashed before it had ended the cluster's leases.
func (s *DB) StrayLeases(ctx context.Context) ([]iog.Lease, error) {
	return s.leaseWhere(ctx, `active = 1 AND cluster_id IN (SELECT id FROM clusters WHERE state NOT IN ('deploying', 'running')) ORDER BY id`)
}

// SetClusterRunning moves a deploying cluster to running if it is still at rev.
func (s *DB) SetClusterRunning(ctx context.Context, id string, rev int64, at time.Time) (bool, error) {
	s.before(ctx, "cluster", id)
	res, err := s.db.ExecContext(ctx, `UPDATE clusters SET state = $1, started_at = $2, rev = rev + 1 WHERE id = $3 AND state = $4 AND rev = $5`,
		string(iog.ClusterRunning), ms(at), id, string(iog.ClusterDeploying), rev)
	if err != nil {
		return false, fmt.Errorf("store: cluster running: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DegradeCluster records that an open cluster at rev carries on without the lost lease, with
// the reason, and marks the loss answered. It reports false when the cluster changed meanwhile.
func (s *DB) DegradeCluster(ctx context.Context, id string, rev int64, lost, reason string) (bool, error) {
	s.before(ctx, "cluster", id)
	done := false
	err := s.tx(ctx, func(q querier) error {
		done = false
		if ok, err := answerLoss(ctx, q, id, rev, lost, reason, true); err != nil || !ok {
			return err
		}
		done = true
		return nil
	})
	return done && err == nil, err
}

// answerLoss sets an open cluster's reason (and degraded flag) if it is still at rev, and marks
// its lost lease answered, inside q's transaction.
func answerLoss(ctx context.Context, q querier, id string, rev int64, lost, reason string, degraded bool) (bool, error) {
	set := ""
	if degraded {
		set = "degraded = 1, "
	}
	res, err := q.ExecContext(ctx, `UPDATE clusters SET `+set+`reason = $1, rev = rev + 1
		WHERE id = $2 AND rev = $3 AND state IN ('deploying', 'running')`, reason, id, rev)
	if err != nil {
		return false, fmt.Errorf("store: answer node loss: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	res, err = q.ExecContext(ctx, `UPDATE leases SET handled = 1 WHERE id = $1 AND cluster_id = $2 AND active = 0`, lost, id)
	if err != nil {
		return false, fmt.Errorf("store: answer node loss: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, fmt.Errorf("store: answer node loss: lease %s is not an ended lease of cluster %s", lost, id)
	}
	return true, nil
}

// AddLease adds a node to an open cluster at rev in the place of its lost lease: the loss is
// marked answered with the cluster's new reason, the device hired, the lease inserted and the
// postings that pay for it applied, atomically. It reports false when the cluster changed
// meanwhile; a device that is no longer free fails it with ECONFLICT.
func (s *DB) AddLease(ctx context.Context, clusterID string, rev int64, lost, reason string, l iog.Lease, postings ...iog.Posting) (bool, error) {
	s.before(ctx, "cluster", clusterID)
	done := false
	err := s.tx(ctx, func(q querier) error {
		done = false
		if ok, err := answerLoss(ctx, q, clusterID, rev, lost, reason, false); err != nil || !ok {
			return err
		}
		if err := hireAndInsert(ctx, q, clusterID, l.CreatedAt, []iog.Lease{l}); err != nil {
			return err
		}
		if err := applyPostings(ctx, q, postings); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done && err == nil, err
}
