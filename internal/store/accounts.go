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

// CreateAccount stores an account and the hash of its first API key.
func (s *DB) CreateAccount(ctx context.Context, a iog.Account, keyHash, keyPrefix string) error {
	return s.tx(ctx, func(q querier) error {
		roles := make([]string, len(a.Roles))
		for i, r := range a.Roles {
			roles[i] = string(r)
		}
		_, err := q.ExecContext(ctx, `INSERT INTO accounts (id, name, roles, created_at) VALUES ($1, $2, $3, $4)`,
			a.ID, a.Name, strings.Join(roles, ","), ms(a.CreatedAt))
		if isUnique(err) {
			return iog.Errorf(iog.ECONFLICT, "account name %q is taken", a.Name)
		}
		if err != nil {
			return fmt.Errorf("store: create account: %w", err)
		}
		return insertKey(ctx, q, a.ID, keyHash, keyPrefix, a.CreatedAt)
	})
}

func insertKey(ctx context.Context, q querier, accountID, hash, prefix string, now time.Time) error {
	_, err := q.ExecContext(ctx, `INSERT INTO api_keys (hash, account_id, prefix, created_at) VALUES ($1, $2, $3, $4)`,
		hash, accountID, prefix, ms(now))
	if err != nil {
		return fmt.Errorf("store: insert api key: %w", err)
	}
	return nil
}

// AddAPIKey adds another key to an account.
func (s *DB) AddAPIKey(ctx context.Context, accountID, hash, prefix string, now time.Time) error {
	return insertKey(ctx, s.db, accountID, hash, prefix, now)
}

const accountCols = `a.id, a.name, a.roles, a.created_at`

func scanAccount(row scanner) (iog.Account, error) {
	var a iog.Account
	var roles string
	var created int64
	if err := row.Scan(&a.ID, &a.Name, &roles, &created); err != nil {
		return a, err
	}
	for _, r := range strings.Split(roles, ",") {
		if r != "" {
			a.Roles = append(a.Roles, iog.Role(r))
		}
	}
	a.CreatedAt = tm(created)
	return a, nil
}

// AccountByKeyHash finds the account that owns an API key.
func (s *DB) AccountByKeyHash(ctx context.Context, hash string) (iog.Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx,
		`SELECT `+accountCols+` FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return a, iog.Errorf(iog.EUNAUTHORIZED, "unknown API key")
	}
	return a, err
}

// AccountByName finds an account by its unique name.
func (s *DB) AccountByName(ctx context.Context, name string) (iog.Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts a WHERE a.name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("account", name)
	}
	return a, err
}

// CreateJoinToken stores the hash of a one-time join token.
func (s *DB) CreateJoinToken(ctx context.Context, hash, accountID string, now, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO join_tokens (hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		hash, accountID, ms(now), ms(expires))
	if err != nil {
		return fmt.Errorf("store: create join token: %w", err)
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

// AccountByID finds an account by its id.
func (s *DB) AccountByID(ctx context.Context, id string) (iog.Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts a WHERE a.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("account", id)
	}
	return a, err
}
