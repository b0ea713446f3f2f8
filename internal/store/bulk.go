package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// A block records a reward posting for every nominated device, tens of thousands at 100,000
// devices: applyPostings' statements for each (its posting, its balances, its entries) were
// most of a block on PostgreSQL, each a round trip. There RecordBlock applies them with
// multi-row statements of up to bulkRows rows (recordBulk); SQLite keeps a statement each.

// bulkRows is how many rows one multi-row statement writes (4 parameters a row at most, well
// under either engine's limit).
const bulkRows = 1000

// applyPostingsBulk applies postings inside q's transaction as applyPostings does, with a few
// statements for them all: the postings whose keys are new, then the balances they move, each
// account's by its total and in (account, currency) order (the order applyPostings locks them
// in), then their entries. A balance that ends below zero where it may not fails the
// transaction; of several postings on one account only the end balance is checked, which the
// postings of a block (one on each device's rewards, the rest on accounts that may go negative
// or moved once) make the same.
func (s *DB) applyPostingsBulk(ctx context.Context, q querier, ps []iog.Posting) error {
	byKey := make(map[string]iog.Posting, len(ps))
	for _, p := range ps {
		if err := p.Check(); err != nil {
			return err
		}
		byKey[p.Key] = p
	}
	var fresh []iog.Posting
	err := s.bulk(ctx, q, "insert postings", `INSERT INTO ledger_postings (key, cause, currency, at, memo)`,
		` ON CONFLICT (key) DO NOTHING RETURNING key`, 5, len(ps), func(i int) []any {
			p := ps[i]
			return []any{p.Key, p.Cause, string(p.Currency), ms(p.At), p.Memo}
		}, func(sc scanner) error {
			var k string
			if err := sc.Scan(&k); err != nil {
				return err
			}
			fresh = append(fresh, byKey[k])
			return nil
		})
	if err != nil {
		return err
	}
	type balance struct {
		account, currency string
		delta             int64
	}
	var moves []balance
	at := map[[2]string]int{}
	var entries []iog.Entry
	var entryPosting []iog.Posting
	for _, p := range fresh {
		for _, e := range p.Entries {
			k := [2]string{e.Account, string(p.Currency)}
			i, ok := at[k]
			if !ok {
				i = len(moves)
				at[k] = i
				moves = append(moves, balance{account: e.Account, currency: string(p.Currency)})
			}
			moves[i].delta += int64(e.Amount)
			entries = append(entries, e)
			entryPosting = append(entryPosting, p)
		}
	}
	slices.SortFunc(moves, func(a, b balance) int {
		if c := strings.Compare(a.account, b.account); c != 0 {
			return c
		}
		return strings.Compare(a.currency, b.currency)
	})
	delta := make(map[[2]string]int64, len(moves))
	for _, m := range moves {
		delta[[2]string{m.account, m.currency}] = m.delta
	}
	err = s.bulk(ctx, q, "move balances", `INSERT INTO ledger_balances (account, currency, balance)`,
		` ON CONFLICT (account, currency) DO UPDATE SET balance = ledger_balances.balance + excluded.balance
		RETURNING account, currency, balance`, 3, len(moves), func(i int) []any {
			return []any{moves[i].account, moves[i].currency, moves[i].delta}
		}, func(sc scanner) error {
			var acct, cur string
			var bal int64
			if err := sc.Scan(&acct, &cur, &bal); err != nil {
				return err
			}
			if bal < 0 && !iog.MayGoNegative(acct) {
				moved := iog.Amount(delta[[2]string{acct, cur}])
				return iog.Errorf(iog.EINSUFFICIENTFUNDS, "%s holds %s %s, %s more is needed", acct, iog.Amount(bal)-moved, cur, -iog.Amount(bal))
			}
			return nil
		})
	if err != nil {
		return err
	}
	return s.bulk(ctx, q, "insert entries", `INSERT INTO ledger_entries (posting_key, account, currency, amount)`, "", 4, len(entries),
		func(i int) []any {
			return []any{entryPosting[i].Key, entries[i].Account, string(entryPosting[i].Currency), int64(entries[i].Amount)}
		}, nil)
}

// recordBulk applies a block's postings and marks its nominated devices with multi-row
// statements.
func (s *DB) recordBulk(ctx context.Context, q querier, b BlockRow, postings []iog.Posting) error {
	if err := s.applyPostingsBulk(ctx, q, postings); err != nil {
		return err
	}
	for ids := b.Nominated; len(ids) > 0; {
		n := min(len(ids), bulkRows)
		var sb strings.Builder
		sb.WriteString(`UPDATE devices SET last_nominated_block = `)
		s.Param(&sb, 1)
		sb.WriteString(` WHERE last_nominated_block < `)
		s.Param(&sb, 2)
		sb.WriteString(` AND id IN `)
		args := s.inList(&sb, []any{b.Number, b.Number}, ids[:n])
		if _, err := q.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("store: last nominated block: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// inList writes a parenthesised list of placeholders for vals, whose values it appends to the
// statement's args (those of the placeholders written before it).
func (s *DB) inList(b *strings.Builder, args []any, vals []string) []any {
	b.WriteString("(")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		args = append(args, v)
		s.Param(b, len(args))
	}
	b.WriteString(")")
	return args
}

// bulk writes n rows, row(i) each (cols values), with multi-row statements head VALUES (...),
// (...) tail of up to bulkRows rows; each returned row, if any, goes to scan.
func (s *DB) bulk(ctx context.Context, q querier, what, head, tail string, cols, n int, row func(int) []any, scan func(scanner) error) error {
	for from := 0; from < n; from += bulkRows {
		to := min(n, from+bulkRows)
		var b strings.Builder
		b.WriteString(head + " VALUES ")
		args := make([]any, 0, (to-from)*cols)
		for i := from; i < to; i++ {
			if i > from {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j, v := range row(i) {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, v)
				s.Param(&b, len(args))
			}
			b.WriteString(")")
		}
		b.WriteString(tail)
		rows, err := q.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		for rows.Next() {
			if scan == nil {
				continue
			}
			if err := scan(rows); err != nil {
				rows.Close()
				return fmt.Errorf("store: %s: %w", what, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
	}
	return nil
}
