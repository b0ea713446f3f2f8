package store

import (
	"context"
	"fmt"
	"time"
)

// Output is what one node of a cluster left in its outputs directory, as a blob.
type Output struct {
	ClusterID string
	Rank      int
	Hash      string
	Size      int64
	CreatedAt time.Time
}

// PutOutput records a node's outputs, replacing an earlier record for the node.
func (s *DB) PutOutput(ctx context.Context, o Output) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO cluster_outputs (cluster_id, rank, hash, size, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (cluster_id, rank) DO UPDATE SET hash = excluded.hash, size = excluded.size, created_at = excluded.created_at`,
		o.ClusterID, o.Rank, o.Hash, o.Size, ms(o.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put output: %w", err)
	}
	return nil
}

// Outputs lists a cluster's outputs by rank.
func (s *DB) Outputs(ctx context.Context, clusterID string) ([]Output, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rank, hash, size, created_at FROM cluster_outputs WHERE cluster_id = $1 ORDER BY rank`, clusterID)
	if err != nil {
		return nil, fmt.Errorf("store: outputs: %w", err)
	}
	defer rows.Close()
	var out []Output
	for rows.Next() {
		o := Output{ClusterID: clusterID}
		var at int64
		if err := rows.Scan(&o.Rank, &o.Hash, &o.Size, &at); err != nil {
			return nil, fmt.Errorf("store: outputs: %w", err)
		}
		o.CreatedAt = tm(at)
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteOutputsBefore forgets the outputs recorded before cutoff (their blobs are swept).
func (s *DB) DeleteOutputsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	r, err := s.db.ExecContext(ctx, `DELETE FROM cluster_outputs WHERE created_at < $1`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("store: delete outputs: %w", err)
	}
	return r.RowsAffected()
}
