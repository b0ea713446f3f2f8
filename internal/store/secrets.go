package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// ScrubSecrets removes the secrets from the spec of cluster id (once it has ended, nothing
// needs them). It is idempotent.
func (s *DB) ScrubSecrets(ctx context.Context, id string) error {
	c, err := s.Cluster(ctx, id)
	if err != nil {
		return err
	}
	if len(c.Spec.Secrets) == 0 && c.Spec.JupyterToken == "" {
		return nil
	}
	c.Spec.Secrets, c.Spec.JupyterToken = nil, ""
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE clusters SET spec = $1 WHERE id = $2`, string(spec), id); err != nil {
		return fmt.Errorf("store: scrub secrets: %w", err)
	}
	return nil
}

// EndedWithSecrets lists ended clusters whose spec still holds secrets (a coordinator that
// crashed between ending a cluster and scrubbing it).
func (s *DB) EndedWithSecrets(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM clusters WHERE state NOT IN ('deploying', 'running') AND (spec LIKE '%"secrets":%' OR spec LIKE '%"jupyter_token":%')`)
	if err != nil {
		return nil, fmt.Errorf("store: ended with secrets: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
