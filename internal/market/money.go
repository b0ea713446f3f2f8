package market

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/sched"
	"github.com/iognet/iog/internal/store"
)

// utilisation is the share (per-mille) of the devices of the requested class that are hired
// now: the demand the quote's demand factor follows.
func utilisation(spec iog.ClusterSpec, snap []sched.Candidate) int64 {
	var hired, avail int64
	for _, c := range snap {
		if spec.GPUModel != "" && !sched.ModelMatches(c.GPUModel, spec.GPUModel) {
			continue
		}
		if spec.GPUModel == "" && c.GPUModel != "" {
			continue
		}
		switch c.Status {
		case iog.DeviceHired:
			hired++
			avail++
		case iog.DeviceReady:
			avail++
		}
	}
	if avail == 0 {
		return 0
	}
	return hired * 1000 / avail
}

// quote prices the chosen devices for the spec.
func (m *Market) quote(spec iog.ClusterSpec, nodes []sched.Node, snap []sched.Candidate) (pricing.Quote, error) {
	byID := map[string]sched.Candidate{}
	for _, c := range snap {
		byID[c.ID] = c
	}
	chosen := make([]sched.Candidate, len(nodes))
	for i, n := range nodes {
		chosen[i] = byID[n.DeviceID]
	}
	return m.quoteOf(spec, chosen, utilisation(spec, snap))
}

// quoteOf prices the chosen devices, in node order, at a utilisation (per mille).
func (m *Market) quoteOf(spec iog.ClusterSpec, chosen []sched.Candidate, util int64) (pricing.Quote, error) {
	in := pricing.QuoteInput{Hours: spec.Hours, Currency: pricing.Currency(spec.Currency), Commitment: pricing.Commitment(spec.Commitment),
		UtilPermille: util, IOPriceUSDC: m.ioPrice()}
	for _, c := range chosen {
		in.Devices = append(in.Devices, pricing.DeviceAsk{DeviceID: c.ID, Model: c.GPUModel, GPUs: c.GPUCount, AskPerHour: c.Ask})
	}
	return pricing.Compute(in)
}

func (m *Market) ioPrice() iog.Amount {
	if m.cfg.IOPriceUSDC > 0 {
		return m.cfg.IOPriceUSDC
	}
	return 2 * iog.Unit
}

// escrowPostings moves a quote's total out of the renter's wallet: the subtotal into the
// cluster's escrow and the renter's fees to the treasury.
func escrowPostings(c iog.Cluster, q pricing.Quote) []iog.Posting {
	if q.Total == 0 {
		return nil
	}
	p := iog.Posting{Key: "escrow:" + c.ID, Cause: "cluster:" + c.ID, Currency: c.Currency, At: c.CreatedAt,
		Memo: "quote total into escrow", Entries: []iog.Entry{{Account: iog.AccWallet(c.OwnerID), Amount: -q.Total}}}
	if q.Subtotal > 0 {
		p.Entries = append(p.Entries, iog.Entry{Account: iog.AccEscrow(c.ID), Amount: q.Subtotal})
	}
	if q.Fees > 0 {
		p.Entries = append(p.Entries, iog.Entry{Account: iog.AccTreasury, Amount: q.Fees})
	}
	return []iog.Posting{p}
}

// toAPIQuote is the renter-facing form.
func toAPIQuote(q pricing.Quote, nodes []sched.Node) api.Quote {
	out := api.Quote{Currency: string(q.Currency), Hours: q.Hours, Commitment: string(q.Commitment),
		Subtotal: q.Subtotal.String(), Fees: q.Fees.String(), Total: q.Total.String(),
		DemandFactor: permille(q.DemandPermille + 1000*btoi(q.DemandPermille == 0)), Discount: permille(q.DiscountPermille)}
	for _, l := range q.Lines {
		out.Lines = append(out.Lines, api.QuoteLine{Label: l.Label, DeviceID: l.DeviceID, Amount: l.Amount.String()})
	}
	for _, d := range q.PerDevice {
		out.Devices = append(out.Devices, api.QuoteDevice{DeviceID: d.DeviceID, PerHour: d.PerHour.String(), Prepaid: d.Prepaid.String()})
	}
	return out
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func permille(p int64) string {
	return strconv.FormatInt(p/1000, 10) + "." + fmt.Sprintf("%03d", p%1000)
}

// Quote prices a cluster request against the devices that would be placed now, without
// placing it.
func (m *Market) Quote(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Quote, error) {
	// A quote prices devices, not a workload: fill in what placement does not look at.
	if r.Type == "" {
		r.Type = iog.TypeProcess
	}
	if len(r.Command) == 0 {
		r.Command = []string{"quote"}
	}
	if r.Image == "" && r.Type == iog.TypeContainer {
		r.Image = "quote"
	}
	spec, err := m.validate(ctx, r)
	if err != nil {
		return api.Quote{}, err
	}
	m.place.Lock()
	defer m.place.Unlock()
	if err := m.syncLocked(ctx); err != nil {
		return api.Quote{}, err
	}
	nodes, _, q, err := m.placeIndexed(ctx, spec)
	if err != nil {
		return api.Quote{}, err
	}
	return toAPIQuote(q, nodes), nil
}

// minutesCost is what minutes [from, to) of a lease cost at perHour: the sum of
// pricing.PerMinute over them, so that any whole hour costs exactly perHour.
func minutesCost(perHour iog.Amount, from, to int64) iog.Amount {
	var sum iog.Amount
	for i := from; i < to; i++ {
		sum += pricing.PerMinute(perHour, i)
	}
	return sum
}

// servedMinutes is how many whole minutes a lease has served by now (never past the cluster's
// paid end).
func servedMinutes(l iog.Lease, c iog.Cluster, now time.Time) int64 {
	if l.StartedAt.IsZero() {
		return 0
	}
	end := now
	if !l.EndedAt.IsZero() && l.EndedAt.Before(end) {
		end = l.EndedAt
	}
	if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(end) {
		end = c.ExpiresAt
	}
	if !end.After(l.StartedAt) {
		return 0
	}
	return int64(end.Sub(l.StartedAt) / time.Minute)
}

// payment is what pays a lease's supplier for minutes [l.SettledMinutes, served): its gross
// amount (never more than the lease still holds) and the posting, net of the supplier's fee.
func payment(l iog.Lease, c iog.Cluster, served int64, now time.Time) (iog.Amount, []iog.Posting, error) {
	return paymentTo(l, c, served, l.Settled+minutesCost(l.PricePerHour, l.SettledMinutes, served), fmt.Sprintf("settle:%s:%d", l.ID, served),
		fmt.Sprintf("minutes %d-%d of node %d", l.SettledMinutes, served, l.Rank), now)
}

// paymentTo is payment for a lease whose minutes up to served cost total in all, posted
// under key with memo.
func paymentTo(l iog.Lease, c iog.Cluster, served int64, total iog.Amount, key, memo string, now time.Time) (iog.Amount, []iog.Posting, error) {
	amt := total - l.Settled
	if l.Settled+amt > l.Prepaid {
		amt = l.Prepaid - l.Settled
	}
	if amt <= 0 {
		return 0, nil, nil
	}
	fee, err := pricing.SupplierFeeStep(l.Settled, amt, pricing.Currency(c.Currency))
	if err != nil {
		return 0, nil, err
	}
	p := iog.Posting{Key: key, Cause: "lease:" + l.ID, Currency: c.Currency, At: now, Memo: memo,
		Entries: []iog.Entry{{Account: iog.AccEscrow(c.ID), Amount: -amt}}}
	if net := amt - fee; net > 0 {
		p.Entries = append(p.Entries, iog.Entry{Account: iog.AccWallet(l.SupplierID), Amount: net})
	}
	if fee > 0 {
		p.Entries = append(p.Entries, iog.Entry{Account: iog.AccTreasury, Amount: fee})
	}
	return amt, []iog.Posting{p}, nil
}

// closer settles a lease that has ended, as of now: its supplier is paid for the whole minutes
// served up to its end (never past the cluster's paid end), and what is left of its prepaid
// share goes back to the renter. The store runs it inside the transaction that ends (or
// closes) the lease, so the end, the payment and the refund happen once, together.
func closer(now time.Time) store.Closer { return closerEnding(now, false) }

// closerEnding is closer for an end the renter chose (forfeit: a terminate, or its workload
// exiting): a node of a daily or weekly commitment that ends before the paid end costs at
// least the undiscounted rate for the minutes it served (endTotal).
func closerEnding(now time.Time, forfeit bool) store.Closer {
	return func(l iog.Lease, c iog.Cluster) (store.Settlement, error) {
		st := store.Settlement{Minutes: l.SettledMinutes, Amount: l.Settled}
		served := servedMinutes(l, c, now)
		if served > l.SettledMinutes {
			amt, ps, err := payment(l, c, served, now)
			if err != nil {
				return st, err
			}
			st.Minutes, st.Amount, st.Postings = served, l.Settled+amt, ps
		}
		if total := endTotal(l, c, served, forfeit, now); total > st.Amount {
			// The forfeited discount, in a posting of its own (its minutes may be settled already).
			paid := l
			paid.Settled, paid.SettledMinutes = st.Amount, st.Minutes
			amt, ps, err := paymentTo(paid, c, served, total, "settle:"+l.ID+":commitment",
				fmt.Sprintf("node %d: %d minutes of a %s commitment ended early, at the undiscounted rate", l.Rank, served, c.Spec.Commitment), now)
			if err != nil {
				return st, err
			}
			st.Amount += amt
			st.Postings = append(st.Postings, ps...)
		}
		if rest := l.Prepaid - st.Amount; rest > 0 {
			st.Postings = append(st.Postings, iog.Transfer("refund:"+l.ID, "lease:"+l.ID, c.Currency, now, iog.AccEscrow(c.ID), iog.AccWallet(c.OwnerID), rest,
				fmt.Sprintf("unspent share of node %d (%s)", l.Rank, l.State)))
		}
		return st, nil
	}
}

// undiscountedRate is the hourly rate of a node of a daily or weekly commitment without its
// discount (rounded up, so it is never under the hourly price); ok is false for a node with no
// discount: an hourly cluster's, or a replacement (priced hourly, hired after the cluster).
func undiscountedRate(l iog.Lease, c iog.Cluster) (iog.Amount, bool) {
	disc, err := pricing.Discount(pricing.Commitment(c.Spec.Commitment), c.Spec.Hours)
	if err != nil || disc <= 0 || disc >= 1000 || !l.CreatedAt.Equal(c.CreatedAt) {
		return 0, false
	}
	r, err := l.PricePerHour.Mul(1000)
	if err != nil {
		return 0, false
	}
	return (r + iog.Amount(999-disc)) / iog.Amount(1000-disc), true
}

// endTotal is what a lease's minutes up to served cost in all when it ends at now: its rate for
// the minutes, and, when the renter ends a commitment before its paid end (forfeit), at least
// the undiscounted rate for them; never more than its prepaid share. The supplier is paid the
// difference: the discount was the price of the commitment the renter did not keep.
func endTotal(l iog.Lease, c iog.Cluster, served int64, forfeit bool, now time.Time) iog.Amount {
	total := l.Settled + minutesCost(l.PricePerHour, l.SettledMinutes, served)
	if forfeit && now.Before(c.ExpiresAt) {
		if r, ok := undiscountedRate(l, c); ok {
			total = max(total, minutesCost(r, 0, served))
		}
	}
	return min(total, l.Prepaid)
}

// settle pays a running lease's supplier for the minutes served since the last settlement, and
// closes an ended lease that is not closed yet (one ended by an older version). Every step is
// atomic and guarded by what it read, so it can run again after a crash, or on two
// coordinators at once, without paying anything twice.
func (m *Market) settle(ctx context.Context, l iog.Lease, c iog.Cluster, now time.Time) error {
	if l.Closed {
		return nil
	}
	if !l.State.Active() {
		_, err := m.db.CloseLease(ctx, l.ID, closer(now))
		return err
	}
	served := servedMinutes(l, c, now)
	if served <= l.SettledMinutes {
		return nil
	}
	amt, ps, err := payment(l, c, served, now)
	if err != nil {
		return err
	}
	// A no-op when someone else settled or extended it meanwhile: the next pass sees the new state.
	_, err = m.db.SettleLease(ctx, l.ID, l.SettledMinutes, served, amt, l.Prepaid, ps...)
	return err
}

// Settle runs one billing pass over every lease whose money is not final.
func (m *Market) Settle(ctx context.Context) error {
	ls, err := m.db.UnclosedLeases(ctx)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	clusters := map[string]iog.Cluster{}
	for _, l := range ls {
		c, ok := clusters[l.ClusterID]
		if !ok {
			if c, err = m.db.Cluster(ctx, l.ClusterID); err != nil {
				return err
			}
			clusters[l.ClusterID] = c
		}
		if err := m.settle(ctx, l, c, now); err != nil {
			return fmt.Errorf("settle %s: %w", l.ID, err)
		}
	}
	return nil
}

// Extend buys more hours for an open cluster at the prices its nodes were placed at: each node
// open at that moment is charged its share, and the expiry moves by exactly the hours bought,
// however many extends run at once. The whole rental never exceeds MaxHours.
func (m *Market) Extend(ctx context.Context, acct iog.Account, id string, hours int) (api.Cluster, error) {
	c, err := m.owned(ctx, acct, id)
	if err != nil {
		return api.Cluster{}, err
	}
	if hours < 1 || hours > MaxHours {
		return api.Cluster{}, iog.Errorf(iog.EINVALID, "hours must be between 1 and %d, got %d", MaxHours, hours)
	}
	if c.State.Ended() {
		return api.Cluster{}, iog.Errorf(iog.ECONFLICT, "cluster %s already %s", id, c.State)
	}
	x := store.Extension{By: time.Duration(hours) * time.Hour, Max: MaxHours * time.Hour,
		Share: func(l iog.Lease) (iog.Amount, error) { return l.PricePerHour.Mul(int64(hours)) },
		Postings: func(c iog.Cluster, sub iog.Amount) ([]iog.Posting, error) {
			booking, cfee, err := pricing.RenterFee(sub, pricing.Currency(c.Currency))
			if err != nil {
				return nil, err
			}
			total := sub + booking + cfee
			if total <= 0 {
				return nil, nil
			}
			p := iog.Posting{Key: "extend:" + id + ":" + m.newID("op"), Cause: "cluster:" + id, Currency: c.Currency, At: m.cfg.Now(),
				Memo: fmt.Sprintf("extend by %d h", hours), Entries: []iog.Entry{{Account: iog.AccWallet(c.OwnerID), Amount: -total}}}
			if sub > 0 {
				p.Entries = append(p.Entries, iog.Entry{Account: iog.AccEscrow(id), Amount: sub})
			}
			if booking+cfee > 0 {
				p.Entries = append(p.Entries, iog.Entry{Account: iog.AccTreasury, Amount: booking + cfee})
			}
			return []iog.Posting{p}, nil
		}}
	if _, err := m.db.ExtendCluster(ctx, id, x); err != nil {
		return api.Cluster{}, err
	}
	m.clusters.Bump(id)
	return m.View(ctx, id)
}

// QuoteOf returns the quote a cluster was created with.
func quoteOf(c iog.Cluster) *api.Quote {
	if len(c.Quote) == 0 {
		return nil
	}
	var q api.Quote
	if json.Unmarshal(c.Quote, &q) != nil {
		return nil
	}
	return &q
}
