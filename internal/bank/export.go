package bank

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// ExportLedger writes the ledger as one snapshot read it: an admin gets all of it with every
// lease and block; anyone else the postings that touch their own accounts (wallet, their
// clusters' escrows, their devices' stake, cooldown, rewards and held money) and those
// accounts' balances. since (zero: all) keeps only later postings. It reads everything first
// and writes after, so an error is returned before anything is written.
func (b *Bank) ExportLedger(ctx context.Context, acct iog.Account, since time.Time, format string, w io.Writer) error {
	if format == "" {
		format = FormatJSONL
	}
	if format != FormatJSONL && format != FormatCSV {
		return iog.Errorf(iog.EINVALID, "unknown format %q: want jsonl or csv", format)
	}
	admin := acct.Has(iog.RoleAdmin)
	hdr := api.LedgerHeader{At: b.cfg.Now(), Scope: "all"}
	var accounts []string
	if !admin {
		var err error
		if accounts, err = b.ownAccounts(ctx, acct); err != nil {
			return err
		}
		hdr.Scope, hdr.Accounts = acct.ID, accounts
	}
	if !since.IsZero() {
		hdr.Since = &since
	}
	x, err := b.db.LedgerExport(ctx, since, accounts, admin)
	if err != nil {
		return err
	}
	var own map[string]bool // nil: an admin sees every account
	if !admin {
		own = map[string]bool{}
		for _, a := range accounts {
			own[a] = true
		}
	}
	bw := bufio.NewWriter(w)
	if format == FormatCSV {
		cw := csv.NewWriter(bw)
		_ = cw.Write([]string{"posting_key", "cause", "currency", "at", "memo", "account", "amount"})
		for _, p := range x.Postings {
			for _, e := range p.Entries {
				_ = cw.Write([]string{p.Key, p.Cause, string(p.Currency), p.At.UTC().Format(time.RFC3339Nano), p.Memo, shown(e.Account, own), e.Amount.String()})
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	}
	enc := json.NewEncoder(bw)
	put := func(r api.LedgerRecord) error { return enc.Encode(r) }
	if err := put(api.LedgerRecord{Kind: api.RecordExport, Export: &hdr}); err != nil {
		return err
	}
	for _, p := range x.Postings {
		lp := api.LedgerPosting{Key: p.Key, Cause: p.Cause, Currency: string(p.Currency), At: p.At, Memo: p.Memo, Entries: []api.LedgerEntry{}}
		for _, e := range p.Entries {
			lp.Entries = append(lp.Entries, api.LedgerEntry{Account: shown(e.Account, own), Amount: e.Amount.String()})
		}
		if err := put(api.LedgerRecord{Kind: api.RecordPosting, Posting: &lp}); err != nil {
			return err
		}
	}
	for _, bal := range x.Balances {
		if err := put(api.LedgerRecord{Kind: api.RecordBalance, Balance: &api.LedgerBalance{Account: bal.Account, Currency: string(bal.Currency), Balance: bal.Balance.String()}}); err != nil {
			return err
		}
	}
	for _, el := range x.Leases {
		if err := put(api.LedgerRecord{Kind: api.RecordLease, Lease: exportLease(el)}); err != nil {
			return err
		}
	}
	for _, bl := range x.Blocks {
		if err := put(api.LedgerRecord{Kind: api.RecordBlock, Block: &api.LedgerBlock{Number: bl.Number, Emission: bl.Emission.String(), Minted: bl.Minted.String()}}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// OtherAccount stands, in an account's own export, for any account of someone else: the
// amounts still sum to zero, but no other party is named.
const OtherAccount = "other"

// shown is how an account appears in an export scoped to own (nil: an admin's, all named).
func shown(account string, own map[string]bool) string {
	switch {
	case own == nil || own[account]:
		return account
	case account == iog.AccMint, account == iog.AccBurn, account == iog.AccExternal, account == iog.AccTreasury:
		return account
	}
	return OtherAccount
}

func exportLease(el store.ExportLease) *api.LedgerLease {
	l, c := el.Lease, el.Cluster
	return &api.LedgerLease{ID: l.ID, ClusterID: l.ClusterID, Currency: string(c.Currency), Commitment: c.Spec.Commitment, ClusterHours: c.Spec.Hours,
		ClusterCreated: c.CreatedAt, ExpiresAt: c.ExpiresAt, CreatedAt: l.CreatedAt, StartedAt: l.StartedAt, EndedAt: l.EndedAt,
		State: string(l.State), PricePerHour: l.PricePerHour.String(), Prepaid: l.Prepaid.String(), SettledMinutes: l.SettledMinutes,
		Settled: l.Settled.String(), Closed: l.Closed}
}

// ownAccounts are the ledger accounts an account owns: its wallet, its clusters' escrows and
// its devices' stake, cooldown, rewards and held money.
func (b *Bank) ownAccounts(ctx context.Context, acct iog.Account) ([]string, error) {
	out := []string{iog.AccWallet(acct.ID)}
	ds, err := b.db.Devices(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		out = append(out, iog.AccStake(d.ID), iog.AccCooldown(d.ID), iog.AccRewards(d.ID), iog.AccHeld(d.ID))
	}
	cs, err := b.db.Clusters(ctx, acct.ID, 1_000_000)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		out = append(out, iog.AccEscrow(c.ID))
	}
	return out, nil
}
