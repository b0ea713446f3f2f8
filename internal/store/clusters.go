package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// CreateCluster stores a cluster and its leases and marks their devices hired, atomically. A
// device that is no longer ready, or already in an active lease, makes the whole create fail
// with ECONFLICT: placement is all-or-nothing.
func (s *DB) CreateCluster(ctx context.Context, c iog.Cluster, leases []iog.Lease, postings ...iog.Posting) error {
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		return fmt.Errorf("store: encode spec: %w", err)
	}
	return s.tx(ctx, func(q querier) error {
		cur := c.Currency
		if cur == "" {
			cur = iog.IO
		}
		_, err := q.ExecContext(ctx, `INSERT INTO clusters (id, owner_id, spec, state, reason, created_at, expires_at, currency, quote)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, c.ID, c.OwnerID, string(spec), string(c.State), c.Reason, ms(c.CreatedAt), ms(c.ExpiresAt),
			string(cur), string(c.Quote))
		if err != nil {
			return fmt.Errorf("store: insert cluster: %w", err)
		}
		if err := hireAndInsert(ctx, q, c.ID, c.CreatedAt, leases); err != nil {
			return err
		}
		if c.Spec.Type == iog.TypeArray {
			if err := insertTasks(ctx, q, c.ID, c.Spec.Tasks, c.Spec.Retries); err != nil {
				return err
			}
		}
		return applyPostings(ctx, q, postings)
	})
}

// hireAndInsert moves the leases' devices from ready to hired and inserts the leases, inside q's
// transaction. A device that is no longer ready, or already in an active lease, fails it all.
func hireAndInsert(ctx context.Context, q querier, clusterID string, at time.Time, leases []iog.Lease) error {
	// Hire in device-id order, so that two placements racing over the same devices lock
	// them in the same order and one waits for the other instead of deadlocking.
	byDevice := slices.Clone(leases)
	slices.SortFunc(byDevice, func(a, b iog.Lease) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	seq, err := nextDeviceSeq(ctx, q)
	if err != nil {
		return err
	}
	for _, l := range byDevice {
		res, err := q.ExecContext(ctx, `UPDATE devices SET status = $1, status_reason = $2, changed_seq = $5 WHERE id = $3 AND status = $4 AND deleted = 0`,
			string(iog.DeviceHired), "hired by cluster "+clusterID, l.DeviceID, string(iog.DeviceReady), seq)
		if err != nil {
			return fmt.Errorf("store: hire device: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return iog.Errorf(iog.ECONFLICT, "device %s is no longer ready", l.DeviceID)
		}
		if err := insertEvent(ctx, q, l.DeviceID, at, iog.DeviceHired, "hired by cluster "+clusterID); err != nil {
			return err
		}
	}
	for _, l := range leases {
		_, err := q.ExecContext(ctx, `INSERT INTO leases (id, cluster_id, device_id, rank, state, gpus, active, created_at,
			price_per_hour, prepaid, supplier_id)
			VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10)`, l.ID, clusterID, l.DeviceID, l.Rank, string(l.State), strings.Join(l.GPUs, ","),
			ms(at), int64(l.PricePerHour), int64(l.Prepaid), l.SupplierID)
		if isUnique(err) {
			return iog.Errorf(iog.ECONFLICT, "device %s is already leased", l.DeviceID)
		}
		if err != nil {
			return fmt.Errorf("store: insert lease: %w", err)
		}
	}
	return nil
}

const clusterCols = `id, owner_id, spec, state, reason, degraded, created_at, started_at, ended_at, expires_at, currency, quote, rev`

func scanCluster(row scanner) (iog.Cluster, error) {
	var c iog.Cluster
	var spec, state, cur, quote string
	var degraded int
	var created, started, ended, expires int64
	if err := row.Scan(&c.ID, &c.OwnerID, &spec, &state, &c.Reason, &degraded, &created, &started, &ended, &expires, &cur, &quote, &c.Rev); err != nil {
		return c, err
	}
	c.Currency, c.Quote = iog.Currency(cur), []byte(quote)
	if err := json.Unmarshal([]byte(spec), &c.Spec); err != nil {
		return c, fmt.Errorf("store: decode spec of %s: %w", c.ID, err)
	}
	c.State, c.Degraded = iog.ClusterState(state), degraded == 1
	c.CreatedAt, c.StartedAt, c.EndedAt, c.ExpiresAt = tm(created), tm(started), tm(ended), tm(expires)
	return c, nil
}

func (s *DB) clusterWhere(ctx context.Context, where string, args ...any) ([]iog.Cluster, error) {
	return queryAll(ctx, s.db, "clusters", scanCluster, `SELECT `+clusterCols+` FROM clusters WHERE `+where, args...)
}

// Cluster returns one cluster.
func (s *DB) Cluster(ctx context.Context, id string) (iog.Cluster, error) {
	cs, err := s.clusterWhere(ctx, `id = $1`, id)
	if err != nil {
		return iog.Cluster{}, err
	}
	if len(cs) == 0 {
		return iog.Cluster{}, notFound("cluster", id)
	}
	return cs[0], nil
}

// Clusters lists an owner's clusters (all when ownerID is ""), newest first, at most limit.
func (s *DB) Clusters(ctx context.Context, ownerID string, limit int) ([]iog.Cluster, error) {
	if ownerID == "" {
		return s.clusterWhere(ctx, `1 = 1 ORDER BY created_at DESC, id LIMIT $1`, limit)
	}
	return s.clusterWhere(ctx, `owner_id = $1 ORDER BY created_at DESC, id LIMIT $2`, ownerID, limit)
}

// OpenClusters lists the clusters that have not ended.
func (s *DB) OpenClusters(ctx context.Context) ([]iog.Cluster, error) {
	return s.clusterWhere(ctx, `state IN ($1, $2) ORDER BY created_at`, string(iog.ClusterDeploying), string(iog.ClusterRunning))
}

const leaseCols = `id, cluster_id, device_id, rank, state, reason, exit_code, gpus, created_at, started_at, ended_at,
	price_per_hour, prepaid, settled_minutes, settled, closed, supplier_id, handled`

func scanLease(row scanner) (iog.Lease, error) {
	var l iog.Lease
	var state, gpus string
	var code sql.NullInt64
	var created, started, ended, price, prepaid, settled int64
	var closed, handled int
	if err := row.Scan(&l.ID, &l.ClusterID, &l.DeviceID, &l.Rank, &state, &l.Reason, &code, &gpus, &created, &started, &ended,
		&price, &prepaid, &l.SettledMinutes, &settled, &closed, &l.SupplierID, &handled); err != nil {
		return l, err
	}
	l.PricePerHour, l.Prepaid, l.Settled, l.Closed = iog.Amount(price), iog.Amount(prepaid), iog.Amount(settled), closed == 1
	l.Handled = handled == 1
	l.State = iog.LeaseState(state)
	if code.Valid {
		c := int(code.Int64)
		l.ExitCode = &c
	}
	if gpus != "" {
		l.GPUs = strings.Split(gpus, ",")
	}
	l.CreatedAt, l.StartedAt, l.EndedAt = tm(created), tm(started), tm(ended)
	return l, nil
}

func (s *DB) leaseWhere(ctx context.Context, where string, args ...any) ([]iog.Lease, error) {
	return queryAll(ctx, s.db, "leases", scanLease, `SELECT `+leaseCols+` FROM leases WHERE `+where, args...)
}

// Lease returns one lease.
func (s *DB) Lease(ctx context.Context, id string) (iog.Lease, error) {
	ls, err := s.leaseWhere(ctx, `id = $1`, id)
	if err != nil {
		return iog.Lease{}, err
	}
	if len(ls) == 0 {
		return iog.Lease{}, notFound("lease", id)
	}
	return ls[0], nil
}

// Leases returns a cluster's leases by rank.
func (s *DB) Leases(ctx context.Context, clusterID string) ([]iog.Lease, error) {
	return s.leaseWhere(ctx, `cluster_id = $1 ORDER BY rank, created_at, id`, clusterID)
}

// ActiveLeases returns the leases a device should be running.
func (s *DB) ActiveLeases(ctx context.Context, deviceID string) ([]iog.Lease, error) {
	return s.leaseWhere(ctx, `device_id = $1 AND active = 1 ORDER BY created_at`, deviceID)
}

// PruneLogBatches forgets the batch ids of leases that ended before before (their logs are
// closed: market.LogWindow) and returns how many were deleted.
func (s *DB) PruneLogBatches(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM log_batches WHERE lease_id IN (SELECT id FROM leases WHERE active = 0 AND ended_at > 0 AND ended_at < $1)`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune log batches: %w", err)
	}
	return res.RowsAffected()
}

// AppendLogs appends output chunks of a lease to its cluster's log. A batch id already stored
// for the lease (a retry) stores nothing again.
func (s *DB) AppendLogs(ctx context.Context, clusterID, leaseID string, rank int, batch string, chunks []iog.LogChunk) error {
	return s.tx(ctx, func(q querier) error {
		if batch != "" {
			res, err := q.ExecContext(ctx, `INSERT INTO log_batches (lease_id, batch) VALUES ($1, $2) ON CONFLICT DO NOTHING`, leaseID, batch)
			if err != nil {
				return fmt.Errorf("store: log batch: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil // stored already
			}
		}
		var next int64
		if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM log_chunks WHERE cluster_id = $1`, clusterID).Scan(&next); err != nil {
			return fmt.Errorf("store: log seq: %w", err)
		}
		for _, c := range chunks {
			next++
			_, err := q.ExecContext(ctx, `INSERT INTO log_chunks (cluster_id, seq, lease_id, rank, stream, data, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				clusterID, next, leaseID, rank, c.Stream, c.Data, ms(c.At))
			if isUnique(err) {
				return iog.Errorf(iog.ECONFLICT, "concurrent log append, retry")
			}
			if err != nil {
				return fmt.Errorf("store: append log: %w", err)
			}
		}
		return nil
	})
}

// Logs returns up to limit chunks of a cluster after seq; rank < 0 means every node.
func (s *DB) Logs(ctx context.Context, clusterID string, rank int, after int64, limit int) ([]iog.LogChunk, []int, error) {
	var rows *sql.Rows
	var err error
	if rank < 0 {
		rows, err = s.db.QueryContext(ctx, `SELECT seq, lease_id, rank, stream, data, at FROM log_chunks WHERE cluster_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, clusterID, after, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT seq, lease_id, rank, stream, data, at FROM log_chunks WHERE cluster_id = $1 AND seq > $2 AND rank = $3 ORDER BY seq LIMIT $4`, clusterID, after, rank, limit)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: logs: %w", err)
	}
	defer rows.Close()
	var out []iog.LogChunk
	var ranks []int
	for rows.Next() {
		var c iog.LogChunk
		var r int
		var at int64
		if err := rows.Scan(&c.Seq, &c.LeaseID, &r, &c.Stream, &c.Data, &at); err != nil {
			return nil, nil, err
		}
		c.At = tm(at)
		out, ranks = append(out, c), append(ranks, r)
	}
	return out, ranks, rows.Err()
}

// LogBytes returns how many bytes of output a lease has stored (for the per-node cap).
func (s *DB) LogBytes(ctx context.Context, leaseID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(data)), 0) FROM log_chunks WHERE lease_id = $1`, leaseID).Scan(&n)
	return n, err
}

// MarkReported records that a lease's worker reported its end, after shipping its output.
func (s *DB) MarkReported(ctx context.Context, leaseID string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE leases SET reported = 1 WHERE id = $1`, leaseID); err != nil {
		return fmt.Errorf("store: mark reported: %w", err)
	}
	return nil
}

// Unreported counts a cluster's leases that started but whose worker has not reported their end.
func (s *DB) Unreported(ctx context.Context, clusterID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM leases WHERE cluster_id = $1 AND started_at > 0 AND reported = 0`, clusterID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: unreported leases: %w", err)
	}
	return n, nil
}
