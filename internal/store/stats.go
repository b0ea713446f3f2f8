package store

import (
	"context"
	"fmt"
	"time"
)

// NetworkCounts are the aggregates the Explorer shows, computed in SQL so they stay cheap at
// scale.
type NetworkCounts struct {
	DevicesByStatus map[string]int64
	// GPUsByModel counts GPUs on devices that are rentable now or hired: proven supply only.
	GPUsByModel     map[string]int64
	ClustersByState map[string]int64
	ComputeSeconds  int64 // node-seconds served by leases that ran (ended ones, plus running ones up to now)
	Blocks          int64
	MintedMicroIO   int64
}

// NetworkCounts reads the Explorer's aggregates.
func (s *DB) NetworkCounts(ctx context.Context, now time.Time) (NetworkCounts, error) {
	n := NetworkCounts{DevicesByStatus: map[string]int64{}, GPUsByModel: map[string]int64{}, ClustersByState: map[string]int64{}}
	group := func(q string, into map[string]int64, args ...any) error {
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("store: stats: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			into[k] = v
		}
		return rows.Err()
	}
	if err := group(`SELECT status, COUNT(*) FROM devices WHERE deleted = 0 GROUP BY status`, n.DevicesByStatus); err != nil {
		return n, err
	}
	if err := group(`SELECT gpu_model, COALESCE(SUM(gpu_count), 0) FROM devices WHERE deleted = 0 AND gpu_count > 0
		AND status IN ('ready', 'hired') GROUP BY gpu_model`, n.GPUsByModel); err != nil {
		return n, err
	}
	if err := group(`SELECT state, COUNT(*) FROM clusters GROUP BY state`, n.ClustersByState); err != nil {
		return n, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(CASE WHEN ended_at > 0 THEN ended_at ELSE $1 END - started_at), 0) AS BIGINT) / 1000
		FROM leases WHERE started_at > 0`, ms(now)).Scan(&n.ComputeSeconds); err != nil {
		return n, fmt.Errorf("store: compute seconds: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(minted), 0) FROM blocks`).Scan(&n.Blocks, &n.MintedMicroIO); err != nil {
		return n, fmt.Errorf("store: block stats: %w", err)
	}
	return n, nil
}
