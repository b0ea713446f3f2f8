package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
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

// Made is what an account made since a time: join tokens, and devices that joined with them,
// with the oldest of each in the window (for "try again at").
type Made struct {
	Tokens, Devices           int
	OldestToken, OldestDevice time.Time
}

// MadeSince counts the join tokens an account made, and the devices that joined with its
// tokens, at or after since (the hourly caps of issue 9).
func (s *DB) MadeSince(ctx context.Context, accountID string, since time.Time) (Made, error) {
	var m Made
	var ot, od int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(created_at), 0) FROM join_tokens WHERE account_id = $1 AND created_at >= $2`,
		accountID, ms(since)).Scan(&m.Tokens, &ot)
	if err != nil {
		return m, fmt.Errorf("store: count join tokens: %w", err)
	}
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(used_at), 0) FROM join_tokens WHERE account_id = $1 AND used_at >= $2`,
		accountID, ms(since)).Scan(&m.Devices, &od)
	if err != nil {
		return m, fmt.Errorf("store: count devices: %w", err)
	}
	m.OldestToken, m.OldestDevice = tm(ot), tm(od)
	return m, nil
}

// JoinTokenOwner is the account a join token belongs to (EUNAUTHORIZED when there is none).
func (s *DB) JoinTokenOwner(ctx context.Context, hash string) (string, error) {
	var owner string
	err := s.db.QueryRowContext(ctx, `SELECT account_id FROM join_tokens WHERE hash = $1`, hash).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", iog.Errorf(iog.EUNAUTHORIZED, "unknown join token")
	}
	if err != nil {
		return "", fmt.Errorf("store: join token: %w", err)
	}
	return owner, nil
}
