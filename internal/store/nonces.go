package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// UseNonces is UseNonce for many keys in one statement (a coordinator's group commit of
// the nonces of the signed requests that arrived together): fresh[i] reports keys[i]. A key
// given twice is fresh at most once.
func (s *DB) UseNonces(ctx context.Context, keys []string, now, expires time.Time) ([]bool, error) {
	fresh := make([]bool, len(keys))
	first := make(map[string]int, len(keys))
	const rows = 200
	var b strings.Builder
	var args []any
	var uniq []string
	for i, k := range keys {
		if _, dup := first[k]; !dup {
			first[k] = i
			uniq = append(uniq, k)
		}
	}
	for len(uniq) > 0 {
		n := min(rows, len(uniq))
		b.Reset()
		args = args[:0]
		b.WriteString(`INSERT INTO used_nonces (k, expires_at) VALUES `)
		for i, k := range uniq[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			s.Param(&b, 2*i+1)
			b.WriteString(", ")
			s.Param(&b, 2*i+2)
			b.WriteByte(')')
			args = append(args, k, ms(expires))
		}
		// now is a number this function formats, not text from a caller.
		b.WriteString(` ON CONFLICT (k) DO UPDATE SET expires_at = excluded.expires_at WHERE used_nonces.expires_at < ` +
			strconv.FormatInt(ms(now), 10) + ` RETURNING k`)
		rs, err := s.db.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("store: use nonces: %w", err)
		}
		for rs.Next() {
			var k string
			if err := rs.Scan(&k); err != nil {
				rs.Close()
				return nil, fmt.Errorf("store: use nonces: %w", err)
			}
			if i, ok := first[k]; ok {
				fresh[i] = true
			}
		}
		if err := rs.Close(); err != nil {
			return nil, fmt.Errorf("store: use nonces: %w", err)
		}
		uniq = uniq[n:]
	}
	return fresh, nil
}

// ForgetNonces deletes the nonces that expired before now.
func (s *DB) ForgetNonces(ctx context.Context, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM used_nonces WHERE expires_at < $1`, ms(now)); err != nil {
		return fmt.Errorf("store: forget nonces: %w", err)
	}
	return nil
}
