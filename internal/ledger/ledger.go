// Package ledger holds the rules of iog's money: what a consistent double-entry ledger is
// (Verify) and the facts it is checked against. It is pure: the store gathers the facts, this
// package judges them, so the rules can be tested without a database.
package ledger

import (
	"fmt"
	"sort"

	"github.com/iognet/iog/internal/iog"
)

// Balance is one account's balance in one currency.
type Balance struct {
	Account  string
	Currency iog.Currency
	Balance  iog.Amount
}

// Escrow compares a cluster's escrow account with what its open leases still hold.
type Escrow struct {
	ClusterID string
	State     iog.ClusterState
	Currency  iog.Currency
	Balance   iog.Amount
	Expected  iog.Amount // sum over leases not yet closed of prepaid - settled
}

// Facts is what Verify checks, read in one consistent snapshot.
type Facts struct {
	CurrencySums      map[iog.Currency]iog.Amount // sum of all balances per currency
	BalanceMismatches []string                    // balances that differ from the sum of their entries
	Unbalanced        []string                    // postings whose entries do not sum to zero
	Empty             []string                    // postings without entries
	Orphans           int                         // entries without a posting
	Negative          []Balance                   // balances below zero on accounts that may not be
	Escrow            []Escrow
	Minted, Burned    map[iog.Currency]iog.Amount
}

// Report is the verdict; OK only when Problems is empty.
type Report struct {
	OK       bool                        `json:"ok"`
	Problems []string                    `json:"problems"`
	Minted   map[iog.Currency]iog.Amount `json:"minted"`
	Burned   map[iog.Currency]iog.Amount `json:"burned"`
	Checked  []string                    `json:"checked"`
}

// Verify checks every invariant of the ledger:
//   - conservation: per currency the balances sum to zero, so money only enters through mint
//     (emission) or external (deposits) and only leaves through burn or external;
//   - every balance equals the sum of its entries, every posting sums to zero and has entries,
//     no entry is orphaned;
//   - no balance is negative except mint and external;
//   - every open cluster's escrow equals what its open leases still hold, and an ended
//     cluster's escrow is empty.
func Verify(f Facts) Report {
	r := Report{Minted: f.Minted, Burned: f.Burned, Problems: []string{}, Checked: []string{
		"conservation per currency", "balances equal their entries", "postings balance", "no orphan entries",
		"no negative balances", "escrow equals what open clusters hold",
	}}
	bad := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }
	curs := make([]string, 0, len(f.CurrencySums))
	for c := range f.CurrencySums {
		curs = append(curs, string(c))
	}
	sort.Strings(curs)
	for _, c := range curs {
		if s := f.CurrencySums[iog.Currency(c)]; s != 0 {
			bad("conservation: %s balances sum to %s, not 0", c, s)
		}
	}
	for _, m := range f.BalanceMismatches {
		bad("balance %s differs from the sum of its entries", m)
	}
	for _, k := range f.Unbalanced {
		bad("posting %s does not sum to zero", k)
	}
	for _, k := range f.Empty {
		bad("posting %s has no entries", k)
	}
	if f.Orphans > 0 {
		bad("%d entries belong to no posting", f.Orphans)
	}
	for _, b := range f.Negative {
		bad("%s is negative: %s %s", b.Account, b.Balance, b.Currency)
	}
	for _, e := range f.Escrow {
		switch {
		case e.State.Ended() && e.Balance != 0:
			bad("cluster %s has ended (%s) but its escrow still holds %s %s", e.ClusterID, e.State, e.Balance, e.Currency)
		case !e.State.Ended() && e.Balance != e.Expected:
			bad("cluster %s escrow holds %s %s but its open leases hold %s", e.ClusterID, e.Balance, e.Currency, e.Expected)
		}
	}
	r.OK = len(r.Problems) == 0
	return r
}
