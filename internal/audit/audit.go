// Package audit checks a ledger export (api.LedgerRecord lines) from the file alone, as anyone
// outside the operator can: it recomputes every balance from the postings, the mint against
// the emission schedule, every fee against its formula and every lease's settlement against
// the minutes it served, and reports every difference. It is pure: it reads what it is given.
package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/rewards"
)

// MaxLine bounds one line of an export.
const MaxLine = 4 << 20

// Report is the verdict on an export; OK only when Problems is empty.
type Report struct {
	OK       bool     `json:"ok"`
	Scope    string   `json:"scope"`
	Problems []string `json:"problems"`
	Checked  []string `json:"checked"`
	Postings int      `json:"postings"`
	Leases   int      `json:"leases"`
	Blocks   int      `json:"blocks"`
	// Balances are the balances recomputed from the postings ("account/currency" -> amount),
	// for the accounts the export covers whole.
	Balances map[string]iog.Amount `json:"-"`
}

type posting struct {
	api.LedgerPosting
	amounts []iog.Amount
}

type lease struct {
	api.LedgerLease
	rate, prepaid, settled iog.Amount
}

// export is a parsed export.
type export struct {
	hdr      api.LedgerHeader
	postings []posting
	balances map[string]iog.Amount // "account/currency"
	leases   []lease
	blocks   []api.LedgerBlock
}

// Verify reads an export and checks it. A file that cannot be read as an export is an error;
// an export that can be read but does not add up is a Report with problems.
func Verify(r io.Reader) (Report, error) {
	x, err := parse(r)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Scope: x.hdr.Scope, Problems: []string{}, Postings: len(x.postings), Leases: len(x.leases), Blocks: len(x.blocks)}
	bad := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	check := func(what string) { rep.Checked = append(rep.Checked, what) }

	check("every posting has a key, a cause, a currency and two or more non-zero entries summing to zero")
	seen := map[string]bool{}
	for _, p := range x.postings {
		if seen[p.Key] {
			bad("posting %s appears twice", p.Key)
		}
		seen[p.Key] = true
		var sum iog.Amount
		for i, a := range p.amounts {
			if a == 0 || p.Entries[i].Account == "" {
				bad("posting %s: an empty account or a zero amount", p.Key)
			}
			sum += a
		}
		if p.Key == "" || p.Cause == "" || (p.Currency != string(iog.IO) && p.Currency != string(iog.USDC)) || len(p.Entries) < 2 || sum != 0 {
			bad("posting %s (%s, %s): %d entries summing to %s", p.Key, p.Cause, p.Currency, len(p.Entries), sum)
		}
	}
	if x.hdr.Since != nil {
		check("(an export since " + x.hdr.Since.UTC().Format(time.RFC3339) + " holds part of the ledger: balances, mint, fees and settlements are not recomputed)")
		rep.OK = len(rep.Problems) == 0
		return rep, nil
	}

	// Balances, for the accounts the export covers whole.
	rep.Balances = map[string]iog.Amount{}
	covered := func(acct string) bool { return true }
	if x.hdr.Scope != "all" {
		own := map[string]bool{}
		for _, a := range x.hdr.Accounts {
			own[a] = true
		}
		covered = func(acct string) bool { return own[acct] }
	}
	for _, p := range x.postings {
		for i, e := range p.Entries {
			if covered(e.Account) {
				rep.Balances[e.Account+"/"+p.Currency] += p.amounts[i]
			}
		}
	}
	check("every balance equals the sum of its entries")
	for _, k := range sortedKeys(x.balances) {
		acct, _, _ := strings.Cut(k, "/")
		if !covered(acct) {
			bad("balance of %s is in the export but its account is not in its scope", k)
			continue
		}
		if got := rep.Balances[k]; got != x.balances[k] {
			bad("balance %s is %s; its entries sum to %s", k, x.balances[k], got)
		}
	}
	for _, k := range sortedKeys(rep.Balances) {
		if _, ok := x.balances[k]; !ok && rep.Balances[k] != 0 {
			bad("entries on %s sum to %s but the export has no balance for it", k, rep.Balances[k])
		}
	}
	check("no balance below zero except mint and external")
	for _, k := range sortedKeys(rep.Balances) {
		acct, _, _ := strings.Cut(k, "/")
		if rep.Balances[k] < 0 && !iog.MayGoNegative(acct) {
			bad("%s is %s, below zero", k, rep.Balances[k])
		}
	}
	if x.hdr.Scope != "all" {
		rep.OK = len(rep.Problems) == 0
		return rep, nil
	}
	check("per currency the balances sum to zero")
	sums := map[string]iog.Amount{}
	for k, v := range rep.Balances {
		_, cur, _ := strings.Cut(k, "/")
		sums[cur] += v
	}
	for _, cur := range sortedKeys(sums) {
		if sums[cur] != 0 {
			bad("%s balances sum to %s, not zero", cur, sums[cur])
		}
	}
	checkMint(&rep, x, bad, check)
	checkFees(x, bad, check)
	checkLeases(x, bad, check)
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// checkMint: every block's emission is the schedule's; what each block minted is what its
// postings took from mint, never more than its emission; nothing else leaves mint.
func checkMint(rep *Report, x export, bad func(string, ...any), check func(string)) {
	check("every block's emission is the schedule's, and its postings mint what it says, no more")
	minted := map[int64]iog.Amount{}
	for _, p := range x.postings {
		for i, e := range p.Entries {
			if e.Account != iog.AccMint {
				continue
			}
			n, ok := blockOf(p.Cause)
			if !ok || p.Currency != string(iog.IO) {
				bad("posting %s moves mint but its cause is %s", p.Key, p.Cause)
				continue
			}
			minted[n] -= p.amounts[i]
		}
	}
	blocks := map[int64]bool{}
	var total iog.Amount
	for _, b := range x.blocks {
		blocks[b.Number] = true
		em, err1 := iog.ParseAmount(b.Emission)
		mi, err2 := iog.ParseAmount(b.Minted)
		if err1 != nil || err2 != nil {
			bad("block %d: unreadable amounts", b.Number)
			continue
		}
		if want := rewards.Capped(b.Number); em != want {
			bad("block %d: emission %s, the schedule says %s", b.Number, em, want)
		}
		if mi != minted[b.Number] || mi > em || mi < 0 {
			bad("block %d: says it minted %s of %s; its postings minted %s", b.Number, mi, em, minted[b.Number])
		}
		total += mi
	}
	for n, v := range minted {
		if !blocks[n] && v != 0 {
			bad("postings of block %d minted %s but the export has no such block", n, v)
		}
	}
	if total > rewards.EmissionCap {
		bad("blocks minted %s in all, over the cap %s", total, rewards.EmissionCap)
	}
	if b, ok := rep.Balances[iog.AccMint+"/"+string(iog.IO)]; ok && -b != total {
		bad("mint's balance is %s; the blocks minted %s", b, total)
	}
}

// checkFees: the renter's fees on every charge (create, extend, replacement) and the
// supplier's fee on every settlement are the published formulas' (pricing.RenterFee,
// pricing.SupplierFeeStep over the lease's settlements in order).
func checkFees(x export, bad func(string, ...any), check func(string)) {
	check("the renter's fees on every charge and the supplier's fee on every settlement follow the formulas")
	settled := map[string]iog.Amount{} // lease -> gross settled so far
	for _, p := range x.postings {
		var escrow, treasury, wallet iog.Amount
		var walletAcct string
		for i, e := range p.Entries {
			switch {
			case strings.HasPrefix(e.Account, "escrow:"):
				escrow += p.amounts[i]
			case e.Account == iog.AccTreasury:
				treasury += p.amounts[i]
			case strings.HasPrefix(e.Account, "wallet:"):
				wallet += p.amounts[i]
				walletAcct = e.Account
			}
		}
		cur := pricing.Currency(p.Currency)
		switch {
		case strings.HasPrefix(p.Key, "escrow:") || strings.HasPrefix(p.Key, "extend:") || strings.HasPrefix(p.Key, "replace:"):
			b, c, err := pricing.RenterFee(escrow, cur)
			if err != nil || treasury != b+c || wallet != -(escrow+treasury) {
				bad("posting %s: %s into escrow, %s fees; the renter's fees on it are %s", p.Key, escrow, treasury, b+c)
			}
		case strings.HasPrefix(p.Key, "settle:"):
			id := strings.TrimPrefix(p.Cause, "lease:")
			gross := -escrow
			fee, err := pricing.SupplierFeeStep(settled[id], gross, cur)
			if err != nil || treasury != fee || (gross-fee > 0) != (walletAcct != "") || wallet != gross-fee {
				bad("settlement %s: %s gross, %s fee, %s to the supplier; the fee after %s settled is %s", p.Key, gross, treasury, wallet, settled[id], fee)
			}
			settled[id] += gross
		}
	}
}

// checkLeases: every lease's settlements add up to what it says it settled, which is what its
// settled minutes cost at its rate (plus, for a commitment the renter ended early, the rest of
// the undiscounted rate), never past the minutes it served; a closed lease's rest is refunded;
// every cluster's escrow holds what its open leases still hold.
func checkLeases(x export, bad func(string, ...any), check func(string)) {
	check("every lease's settlements match the minutes it served at its rate; closed leases refund the rest; escrow holds what open leases hold")
	type sums struct{ regular, commitment, refund iog.Amount }
	byLease := map[string]*sums{}
	get := func(id string) *sums {
		if byLease[id] == nil {
			byLease[id] = &sums{}
		}
		return byLease[id]
	}
	for _, p := range x.postings {
		id, ok := strings.CutPrefix(p.Cause, "lease:")
		if !ok {
			continue
		}
		var escrow iog.Amount
		for i, e := range p.Entries {
			if strings.HasPrefix(e.Account, "escrow:") {
				escrow -= p.amounts[i]
			}
		}
		switch {
		case strings.HasSuffix(p.Key, ":commitment"):
			get(id).commitment += escrow
		case strings.HasPrefix(p.Key, "settle:"):
			get(id).regular += escrow
		case strings.HasPrefix(p.Key, "refund:"):
			get(id).refund += escrow
		}
	}
	escrowWant := map[string]iog.Amount{}
	for _, l := range x.leases {
		s := get(l.ID)
		if s.regular+s.commitment != l.settled {
			bad("lease %s: its settlements sum to %s; it says %s", l.ID, s.regular+s.commitment, l.settled)
		}
		if want := min(l.prepaid, minutesCost(l.rate, l.SettledMinutes)); s.regular != want {
			bad("lease %s: settled %s for %d minutes; at %s/h they cost %s", l.ID, s.regular, l.SettledMinutes, l.rate, want)
		}
		if served := servedMinutes(l.LedgerLease); l.SettledMinutes > served {
			bad("lease %s: settled %d minutes but served %d", l.ID, l.SettledMinutes, served)
		}
		if s.commitment != 0 && (l.Commitment == "" || l.Commitment == "hourly" || !l.CreatedAt.Equal(l.ClusterCreated)) {
			bad("lease %s: an early-end charge without a commitment", l.ID)
		}
		if l.Closed && s.refund != l.prepaid-l.settled {
			bad("lease %s: closed with %s of %s unspent; refunded %s", l.ID, l.prepaid-l.settled, l.prepaid, s.refund)
		}
		if !l.Closed {
			if s.refund != 0 {
				bad("lease %s: refunded %s while open", l.ID, s.refund)
			}
			escrowWant[l.ClusterID] += l.prepaid - l.settled
		}
	}
	clusters := map[string]string{}
	for _, l := range x.leases {
		clusters[l.ClusterID] = l.Currency
	}
	for _, id := range sortedKeys(clusters) {
		if got := x.balances["escrow:"+id+"/"+clusters[id]]; got != escrowWant[id] {
			bad("escrow of cluster %s holds %s; its open leases hold %s", id, got, escrowWant[id])
		}
	}
}

// minutesCost is what minutes [0, n) cost at perHour: the sum of pricing.PerMinute over them,
// which telescopes to floor(perHour x n / 60).
func minutesCost(perHour iog.Amount, n int64) iog.Amount {
	if perHour <= 0 || n <= 0 {
		return 0
	}
	v := new(big.Int).Mul(big.NewInt(int64(perHour)), big.NewInt(n))
	v.Quo(v, big.NewInt(60))
	if !v.IsInt64() {
		return iog.Amount(1<<63 - 1)
	}
	return iog.Amount(v.Int64())
}

// servedMinutes is how many whole minutes a lease served from its start to its end (or now, the
// export's time, while it runs), never past its cluster's paid end.
func servedMinutes(l api.LedgerLease) int64 {
	if l.StartedAt.IsZero() {
		return 0
	}
	end := l.EndedAt
	if end.IsZero() {
		return 1<<62 - 1 // still running: bounded by the paid end only
	}
	if !l.ExpiresAt.IsZero() && l.ExpiresAt.Before(end) {
		end = l.ExpiresAt
	}
	if !end.After(l.StartedAt) {
		return 0
	}
	return int64(end.Sub(l.StartedAt) / time.Minute)
}

func blockOf(cause string) (int64, bool) {
	s, ok := strings.CutPrefix(cause, "block:")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// parse reads an export: a header line, then records.
func parse(r io.Reader) (export, error) {
	x := export{balances: map[string]iog.Amount{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec api.LedgerRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return x, fmt.Errorf("line %d: not a ledger record: %w", line, err)
		}
		if line == 1 && rec.Kind != api.RecordExport {
			return x, fmt.Errorf("line 1: want the export header, got %q (is this a jsonl export?)", rec.Kind)
		}
		switch {
		case rec.Kind == api.RecordExport && rec.Export != nil && line == 1:
			x.hdr = *rec.Export
		case rec.Kind == api.RecordPosting && rec.Posting != nil:
			p := posting{LedgerPosting: *rec.Posting}
			for _, e := range p.Entries {
				a, err := iog.ParseAmount(e.Amount)
				if err != nil {
					return x, fmt.Errorf("line %d: posting %s: %w", line, p.Key, err)
				}
				p.amounts = append(p.amounts, a)
			}
			x.postings = append(x.postings, p)
		case rec.Kind == api.RecordBalance && rec.Balance != nil:
			a, err := iog.ParseAmount(rec.Balance.Balance)
			if err != nil {
				return x, fmt.Errorf("line %d: balance of %s: %w", line, rec.Balance.Account, err)
			}
			k := rec.Balance.Account + "/" + rec.Balance.Currency
			if _, dup := x.balances[k]; dup {
				return x, fmt.Errorf("line %d: balance of %s twice", line, k)
			}
			x.balances[k] = a
		case rec.Kind == api.RecordLease && rec.Lease != nil:
			l := lease{LedgerLease: *rec.Lease}
			var err1, err2, err3 error
			l.rate, err1 = iog.ParseAmount(l.PricePerHour)
			l.prepaid, err2 = iog.ParseAmount(l.Prepaid)
			l.settled, err3 = iog.ParseAmount(l.Settled)
			if err1 != nil || err2 != nil || err3 != nil {
				return x, fmt.Errorf("line %d: lease %s: unreadable amounts", line, l.ID)
			}
			x.leases = append(x.leases, l)
		case rec.Kind == api.RecordBlock && rec.Block != nil:
			x.blocks = append(x.blocks, *rec.Block)
		default:
			return x, fmt.Errorf("line %d: unknown record %q", line, rec.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return x, fmt.Errorf("read the export: %w", err)
	}
	if line == 0 {
		return x, fmt.Errorf("the export is empty")
	}
	return x, nil
}
