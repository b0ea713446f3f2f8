package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// Export is the ledger as one snapshot read it: what `iog ledger export` writes.
type Export struct {
	Postings []iog.Posting // oldest first, with their entries
	Balances []AccountBalance
	Leases   []ExportLease // only in a full export
	Blocks   []BlockRow    // only in a full export; without their detail
}

// ExportLease is a lease with the cluster it belongs to.
type ExportLease struct {
	Lease   iog.Lease
	Cluster iog.Cluster
}

// LedgerExport reads the postings at or after since (zero: all) with an entry on one of
// accounts (nil: every posting), the balances of those accounts (nil: all), and, when full,
// every lease with its cluster and every block, all in one snapshot. It holds the whole export
// in memory.
func (s *DB) LedgerExport(ctx context.Context, since time.Time, accounts []string, full bool) (Export, error) {
	var x Export
	err := s.snapshot(ctx, func(q querier) error {
		x = Export{}
		filter, args := `p.at >= $1`, []any{ms(since)}
		if accounts != nil {
			if len(accounts) == 0 {
				return nil
			}
			list, largs := inListFrom(accounts, 2)
			filter += ` AND EXISTS (SELECT 1 FROM ledger_entries f WHERE f.posting_key = p.key AND f.account IN (` + list + `))`
			args = append(args, largs...)
		}
		ps, err := queryAll(ctx, q, "postings", func(row scanner) (iog.Posting, error) {
			var p iog.Posting
			var cur string
			var at int64
			err := row.Scan(&p.Key, &p.Cause, &cur, &at, &p.Memo)
			p.Currency, p.At = iog.Currency(cur), tm(at)
			return p, err
		}, `SELECT p.key, p.cause, p.currency, p.at, p.memo FROM ledger_postings p WHERE `+filter+` ORDER BY p.at, p.key`, args...)
		if err != nil {
			return err
		}
		type entry struct {
			key string
			e   iog.Entry
		}
		es, err := queryAll(ctx, q, "entries", func(row scanner) (entry, error) {
			var x entry
			var v int64
			err := row.Scan(&x.key, &x.e.Account, &v)
			x.e.Amount = iog.Amount(v)
			return x, err
		}, `SELECT e.posting_key, e.account, e.amount FROM ledger_entries e JOIN ledger_postings p ON p.key = e.posting_key
			WHERE `+filter+` ORDER BY e.amount, e.account`, args...)
		if err != nil {
			return err
		}
		idx := make(map[string]int, len(ps))
		for i, p := range ps {
			idx[p.Key] = i
		}
		for _, e := range es {
			if i, ok := idx[e.key]; ok {
				ps[i].Entries = append(ps[i].Entries, e.e)
			}
		}
		x.Postings = ps
		if accounts == nil {
			x.Balances, err = queryBalances(ctx, q, `SELECT account, currency, balance FROM ledger_balances ORDER BY account, currency`)
		} else {
			list, largs := inListFrom(accounts, 1)
			x.Balances, err = queryBalances(ctx, q, `SELECT account, currency, balance FROM ledger_balances WHERE account IN (`+list+`) ORDER BY account, currency`, largs...)
		}
		if err != nil || !full {
			return err
		}
		cs, err := queryAll(ctx, q, "clusters", scanCluster, `SELECT `+clusterCols+` FROM clusters`)
		if err != nil {
			return err
		}
		byID := make(map[string]iog.Cluster, len(cs))
		for _, c := range cs {
			byID[c.ID] = c
		}
		ls, err := queryAll(ctx, q, "leases", scanLease, `SELECT `+leaseCols+` FROM leases ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		for _, l := range ls {
			x.Leases = append(x.Leases, ExportLease{Lease: l, Cluster: byID[l.ClusterID]})
		}
		x.Blocks, err = queryAll(ctx, q, "blocks", func(r scanner) (BlockRow, error) {
			var b BlockRow
			var st, en, em, mi int64
			err := r.Scan(&b.Number, &st, &en, &em, &mi)
			b.Start, b.End, b.Emission, b.Minted = tm(st), tm(en), iog.Amount(em), iog.Amount(mi)
			return b, err
		}, `SELECT number, start_at, end_at, emission, minted FROM blocks ORDER BY number`)
		return err
	})
	return x, err
}

// inListFrom is inList with placeholders numbered from first.
func inListFrom(values []string, first int) (string, []any) {
	in := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		in[i], args[i] = fmt.Sprintf("$%d", first+i), v
	}
	return strings.Join(in, ", "), args
}
