package store

import (
	"context"
	"fmt"
	"time"
)

// UseNonce records a signed request's nonce key until expires and reports whether it was
// fresh: false when a coordinator on this database saw it before and it has not expired. One
// statement, so two coordinators given the same request at once accept it once.
func (s *DB) UseNonce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO used_nonces (k, expires_at) VALUES ($1, $2)
		ON CONFLICT (k) DO UPDATE SET expires_at = excluded.expires_at WHERE used_nonces.expires_at < $3`,
		key, ms(expires), ms(now))
	if err != nil {
		return false, fmt.Errorf("store: use nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: use nonce: %w", err)
	}
	return n == 1, nil
}

// ForgetNonces deletes the nonces that expired before now.
func (s *DB) ForgetNonces(ctx context.Context, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM used_nonces WHERE expires_at < $1`, ms(now)); err != nil {
		return fmt.Errorf("store: forget nonces: %w", err)
	}
	return nil
}
