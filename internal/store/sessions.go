package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// Session is a web console login. Only a hash of the cookie's secret is stored, so a copy of
// the database does not let anyone in.
type Session struct {
	Hash      string
	AccountID string
	CSRF      string // the token every form of this session must carry
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession stores a new session.
func (s *DB) CreateSession(ctx context.Context, se Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO web_sessions (hash, account_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		se.Hash, se.AccountID, se.CSRF, ms(se.CreatedAt), ms(se.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// SessionAccount returns a live session and its account; an unknown or expired session is
// EUNAUTHORIZED.
func (s *DB) SessionAccount(ctx context.Context, hash string, now time.Time) (iog.Account, Session, error) {
	se := Session{Hash: hash}
	var created, expires int64
	var a iog.Account
	var roles string
	var acreated int64
	err := s.db.QueryRowContext(ctx, `SELECT w.account_id, w.csrf, w.created_at, w.expires_at, a.id, a.name, a.roles, a.created_at
		FROM web_sessions w JOIN accounts a ON a.id = w.account_id WHERE w.hash = $1 AND w.expires_at > $2`, hash, ms(now)).
		Scan(&se.AccountID, &se.CSRF, &created, &expires, &a.ID, &a.Name, &roles, &acreated)
	if errors.Is(err, sql.ErrNoRows) {
		return a, se, iog.Errorf(iog.EUNAUTHORIZED, "not logged in, or the session expired")
	}
	if err != nil {
		return a, se, fmt.Errorf("store: session: %w", err)
	}
	se.CreatedAt, se.ExpiresAt = tm(created), tm(expires)
	a.Roles, a.CreatedAt = splitRoles(roles), tm(acreated)
	return a, se, nil
}

// DeleteSession ends a session (logout).
func (s *DB) DeleteSession(ctx context.Context, hash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM web_sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// PruneSessions deletes the sessions that expired before now and returns how many.
func (s *DB) PruneSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at <= $1`, ms(now))
	if err != nil {
		return 0, fmt.Errorf("store: prune sessions: %w", err)
	}
	return res.RowsAffected()
}

// Accounts lists accounts, oldest first, at most limit.
func (s *DB) Accounts(ctx context.Context, limit int) ([]iog.Account, error) {
	return queryAll(ctx, s.db, "accounts", scanAccount, `SELECT `+accountCols+` FROM accounts a ORDER BY a.created_at, a.id LIMIT $1`, limit)
}

func splitRoles(s string) []iog.Role {
	var out []iog.Role
	for _, r := range strings.Split(s, ",") {
		if r != "" {
			out = append(out, iog.Role(r))
		}
	}
	return out
}
