package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/ledger"
)

// applyPosting writes one posting and moves the balances, inside q's transaction. A posting
// whose key is already there is a no-op (false). A balance that would go below zero on an
// account that may not (iog.MayGoNegative) fails the whole transaction with
// EINSUFFICIENT_FUNDS.
func applyPosting(ctx context.Context, q querier, p iog.Posting) (bool, error) {
	if err := p.Check(); err != nil {
		return false, err
	}
	res, err := q.ExecContext(ctx, `INSERT INTO ledger_postings (key, cause, currency, at, memo) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key) DO NOTHING`, p.Key, p.Cause, string(p.Currency), ms(p.At), p.Memo)
	if err != nil {
		return false, fmt.Errorf("store: insert posting: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	// One upsert per entry moves the balance and returns it; a balance that went below zero
	// where it may not fails the transaction (the caller rolls it back).
	// Balances are locked in account order so that concurrent postings cannot deadlock.
	ordered := slices.Clone(p.Entries)
	slices.SortFunc(ordered, func(a, b iog.Entry) int { return strings.Compare(a.Account, b.Account) })
	for _, e := range ordered {
		var bal int64
		if err := q.QueryRowContext(ctx, `INSERT INTO ledger_balances (account, currency, balance) VALUES ($1, $2, $3)
			ON CONFLICT (account, currency) DO UPDATE SET balance = ledger_balances.balance + excluded.balance
			RETURNING balance`, e.Account, string(p.Currency), int64(e.Amount)).Scan(&bal); err != nil {
			return false, fmt.Errorf("store: move balance: %w", err)
		}
		if bal < 0 && !iog.MayGoNegative(e.Account) {
			had := iog.Amount(bal) - e.Amount
			return false, iog.Errorf(iog.EINSUFFICIENTFUNDS, "%s holds %s %s, %s more is needed", e.Account, had, p.Currency, -iog.Amount(bal))
		}
	}
	// All entries in one statement.
	var sb strings.Builder
	args := make([]any, 0, 4*len(p.Entries))
	sb.WriteString(`INSERT INTO ledger_entries (posting_key, account, currency, amount) VALUES `)
	for i, e := range p.Entries {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
		args = append(args, p.Key, e.Account, string(p.Currency), int64(e.Amount))
	}
	if _, err := q.ExecContext(ctx, sb.String(), args...); err != nil {
		return false, fmt.Errorf("store: insert entries: %w", err)
	}
	return true, nil
}

// applyPostings applies postings in order inside q's transaction. With several postings, every
// balance they move is locked first, in (account, currency) order, as applyPosting does for one:
// two transactions that each apply several postings then never wait for each other in a cycle
// (PostgreSQL).
func applyPostings(ctx context.Context, q querier, ps []iog.Posting) error {
	if len(ps) > 1 {
		type key struct{ account, currency string }
		var keys []key
		seen := map[key]bool{}
		for _, p := range ps {
			for _, e := range p.Entries {
				if k := (key{e.Account, string(p.Currency)}); !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
		slices.SortFunc(keys, func(a, b key) int {
			if c := strings.Compare(a.account, b.account); c != 0 {
				return c
			}
			return strings.Compare(a.currency, b.currency)
		})
		for _, k := range keys {
			if _, err := q.ExecContext(ctx, `INSERT INTO ledger_balances (account, currency, balance) VALUES ($1, $2, 0)
				ON CONFLICT (account, currency) DO UPDATE SET balance = ledger_balances.balance`, k.account, k.currency); err != nil {
				return fmt.Errorf("store: lock balance: %w", err)
			}
		}
	}
	for _, p := range ps {
		if _, err := applyPosting(ctx, q, p); err != nil {
			return err
		}
	}
	return nil
}

// Post applies postings in one transaction: all or none. It returns how many were new.
func (s *DB) Post(ctx context.Context, ps ...iog.Posting) (int, error) {
	n := 0
	err := s.tx(ctx, func(q querier) error {
		n = 0
		for _, p := range ps {
			ok, err := applyPosting(ctx, q, p)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Balance returns an account's balance in a currency (zero if it never held any).
func (s *DB) Balance(ctx context.Context, account string, c iog.Currency) (iog.Amount, error) {
	var b int64
	err := s.db.QueryRowContext(ctx, `SELECT balance FROM ledger_balances WHERE account = $1 AND currency = $2`, account, string(c)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: balance: %w", err)
	}
	return iog.Amount(b), nil
}

// AccountBalance is one balance row.
type AccountBalance struct {
	Account  string
	Currency iog.Currency
	Balance  iog.Amount
}

// Balances lists the balances of accounts whose name starts with prefix ("" for all).
func (s *DB) Balances(ctx context.Context, prefix string) ([]AccountBalance, error) {
	return queryBalances(ctx, s.db, `SELECT account, currency, balance FROM ledger_balances WHERE account LIKE $1 ORDER BY account, currency`, prefix+"%")
}

// PostingFilter selects postings; empty fields match everything.
type PostingFilter struct {
	Cause   string // exact cause
	Account string // postings with an entry on this account
	Limit   int
}

// Postings returns postings (with their entries) oldest first.
func (s *DB) Postings(ctx context.Context, f PostingFilter) ([]iog.Posting, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := `SELECT key, cause, currency, at, memo FROM ledger_postings p WHERE ($1 = '' OR cause = $1)
		AND ($2 = '' OR EXISTS (SELECT 1 FROM ledger_entries e WHERE e.posting_key = p.key AND e.account = $2))
		ORDER BY at, key LIMIT $3`
	rows, err := s.db.QueryContext(ctx, q, f.Cause, f.Account, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: postings: %w", err)
	}
	var out []iog.Posting
	idx := map[string]int{}
	for rows.Next() {
		var p iog.Posting
		var c string
		var at int64
		if err := rows.Scan(&p.Key, &p.Cause, &c, &at, &p.Memo); err != nil {
			rows.Close()
			return nil, err
		}
		p.Currency, p.At = iog.Currency(c), tm(at)
		idx[p.Key] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		er, err := s.db.QueryContext(ctx, `SELECT account, amount FROM ledger_entries WHERE posting_key = $1 ORDER BY amount, account`, out[i].Key)
		if err != nil {
			return nil, fmt.Errorf("store: entries: %w", err)
		}
		for er.Next() {
			var e iog.Entry
			var v int64
			if err := er.Scan(&e.Account, &v); err != nil {
				er.Close()
				return nil, err
			}
			e.Amount = iog.Amount(v)
			out[i].Entries = append(out[i].Entries, e)
		}
		er.Close()
	}
	return out, nil
}

// LedgerFacts reads everything verify needs.
func (s *DB) LedgerFacts(ctx context.Context) (ledger.Facts, error) {
	f := ledger.Facts{CurrencySums: map[iog.Currency]iog.Amount{}, Minted: map[iog.Currency]iog.Amount{}, Burned: map[iog.Currency]iog.Amount{}}
	err := s.snapshot(ctx, func(q querier) error {
		bals, err := queryBalances(ctx, q, `SELECT account, currency, balance FROM ledger_balances`)
		if err != nil {
			return err
		}
		for _, b := range bals {
			f.CurrencySums[b.Currency] += b.Balance
			if b.Balance < 0 && !iog.MayGoNegative(b.Account) {
				f.Negative = append(f.Negative, ledger.Balance(b))
			}
			switch b.Account {
			case iog.AccMint:
				f.Minted[b.Currency] = -b.Balance
			case iog.AccBurn:
				f.Burned[b.Currency] = b.Balance
			}
		}
		if f.BalanceMismatches, err = strings1(ctx, q, `SELECT b.account || '/' || b.currency FROM ledger_balances b
			WHERE b.balance <> COALESCE((SELECT SUM(e.amount) FROM ledger_entries e WHERE e.account = b.account AND e.currency = b.currency), 0)
			UNION ALL
			SELECT DISTINCT e.account || '/' || e.currency FROM ledger_entries e WHERE NOT EXISTS
			 (SELECT 1 FROM ledger_balances b WHERE b.account = e.account AND b.currency = e.currency)`); err != nil {
			return err
		}
		if f.Unbalanced, err = strings1(ctx, q, `SELECT posting_key FROM ledger_entries GROUP BY posting_key HAVING SUM(amount) <> 0`); err != nil {
			return err
		}
		if f.Empty, err = strings1(ctx, q, `SELECT key FROM ledger_postings p WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.posting_key = p.key)`); err != nil {
			return err
		}
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger_entries e WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.key = e.posting_key)`).Scan(&f.Orphans); err != nil {
			return fmt.Errorf("store: orphans: %w", err)
		}
		rows, err := q.QueryContext(ctx, `SELECT c.id, c.state, c.currency,
			COALESCE((SELECT b.balance FROM ledger_balances b WHERE b.account = 'escrow:' || c.id AND b.currency = c.currency), 0),
			COALESCE((SELECT SUM(l.prepaid - l.settled) FROM leases l WHERE l.cluster_id = c.id AND l.closed = 0), 0)
			FROM clusters c ORDER BY c.created_at`)
		if err != nil {
			return fmt.Errorf("store: escrow facts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e ledger.Escrow
			var st, cur string
			var bal, exp int64
			if err := rows.Scan(&e.ClusterID, &st, &cur, &bal, &exp); err != nil {
				return err
			}
			e.State, e.Currency, e.Balance, e.Expected = iog.ClusterState(st), iog.Currency(cur), iog.Amount(bal), iog.Amount(exp)
			f.Escrow = append(f.Escrow, e)
		}
		return rows.Err()
	})
	return f, err
}

func queryBalances(ctx context.Context, q querier, query string, args ...any) ([]AccountBalance, error) {
	return queryAll(ctx, q, "balances", func(r scanner) (AccountBalance, error) {
		var b AccountBalance
		var c string
		var v int64
		err := r.Scan(&b.Account, &c, &v)
		b.Currency, b.Balance = iog.Currency(c), iog.Amount(v)
		return b, err
	}, query, args...)
}

func strings1(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	return queryAll(ctx, q, "ledger facts", func(r scanner) (string, error) {
		var s string
		return s, r.Scan(&s)
	}, query, args...)
}
