package market

import (
	"context"
	"slices"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/sched"
)

// Money is a cluster's money now: what was paid (with extensions and replacements), spent,
// refunded, refundable now, and the current rate. It is the one computation behind the API's
// cluster view and the console's cluster page.
func (m *Market) Money(ctx context.Context, c iog.Cluster, leases []iog.Lease) (api.ClusterMoney, error) {
	ps, err := m.db.CausePostings(ctx, "cluster:"+c.ID)
	if err != nil {
		return api.ClusterMoney{}, err
	}
	return clusterMoney(c, leases, ps, m.cfg.Now())
}

// clusterMoney splits a cluster's escrow into spent, refunded and refundable by its leases, and
// reads what the renter paid from the postings that charged the wallet (cause "cluster:ID").
func clusterMoney(c iog.Cluster, leases []iog.Lease, ps []iog.Posting, now time.Time) (api.ClusterMoney, error) {
	wallet := iog.AccWallet(c.OwnerID)
	var paid, fees, escrowed, spent, refunded, refundable, rate iog.Amount
	var err error
	add := func(into *iog.Amount, v iog.Amount) {
		if err == nil {
			*into, err = into.Add(v)
		}
	}
	for _, p := range ps {
		for _, e := range p.Entries {
			switch e.Account {
			case wallet:
				add(&paid, -e.Amount)
			case iog.AccTreasury:
				add(&fees, e.Amount)
			}
		}
	}
	for _, l := range leases {
		s := leaseSpent(l, c, now)
		add(&escrowed, l.Prepaid)
		add(&spent, s)
		if l.Closed {
			add(&refunded, l.Prepaid-l.Settled)
		} else {
			add(&refundable, l.Prepaid-s)
		}
		if l.State.Active() {
			add(&rate, l.PricePerHour)
		}
	}
	return api.ClusterMoney{Currency: string(c.Currency), Paid: paid.String(), Fees: fees.String(), Escrowed: escrowed.String(),
		Spent: spent.String(), Refunded: refunded.String(), RefundableNow: refundable.String(), RatePerHour: rate.String(), At: now}, err
}

// leaseSpent is what a lease's minutes served by now cost if the renter ended the cluster now:
// settled, plus the minutes that the next settlement pass will pay, and for a commitment ended
// before its paid end at least the undiscounted rate (endTotal); never more than its prepaid
// share. Refundable now is the rest, exactly what a terminate now returns.
func leaseSpent(l iog.Lease, c iog.Cluster, now time.Time) iog.Amount {
	if l.Closed {
		return l.Settled
	}
	return endTotal(l, c, max(servedMinutes(l, c, now), l.SettledMinutes), !c.State.Ended(), now)
}

// ExtensionPrice is what buying more hours of a cluster costs now.
type ExtensionPrice struct {
	Hours    int
	Currency iog.Currency
	PerHour  iog.Amount // the running nodes' rates
	Subtotal iog.Amount
	Fees     iog.Amount
	Total    iog.Amount
}

// PriceExtension prices an extension without buying it (the console shows it before the renter
// confirms); Extend charges exactly this.
func (m *Market) PriceExtension(ctx context.Context, acct iog.Account, id string, hours int) (ExtensionPrice, error) {
	c, err := m.owned(ctx, acct, id)
	if err != nil {
		return ExtensionPrice{}, err
	}
	leases, err := m.db.Leases(ctx, id)
	if err != nil {
		return ExtensionPrice{}, err
	}
	return extensionPrice(c, leases, hours)
}

// extensionPrice prices hours more of the cluster's running nodes at the rates they were placed
// at, plus the renter's fees.
func extensionPrice(c iog.Cluster, leases []iog.Lease, hours int) (ExtensionPrice, error) {
	if c.State.Ended() {
		return ExtensionPrice{}, iog.Errorf(iog.ECONFLICT, "cluster %s already %s", c.ID, c.State)
	}
	// The same bound as store.ExtendCluster's: the whole rental, from creation, at most MaxHours.
	if hours < 1 || hours > MaxHours || c.ExpiresAt.Sub(c.CreatedAt)+time.Duration(hours)*time.Hour > MaxHours*time.Hour {
		return ExtensionPrice{}, iog.Errorf(iog.EINVALID, "hours must be between 1 and %d in all", MaxHours)
	}
	x := ExtensionPrice{Hours: hours, Currency: c.Currency}
	for _, l := range leases {
		if l.Closed || !l.State.Active() {
			continue
		}
		a, err := l.PricePerHour.Mul(int64(hours))
		if err != nil {
			return x, err
		}
		if x.Subtotal, err = x.Subtotal.Add(a); err != nil {
			return x, err
		}
		if x.PerHour, err = x.PerHour.Add(l.PricePerHour); err != nil {
			return x, err
		}
	}
	booking, cfee, err := pricing.RenterFee(x.Subtotal, pricing.Currency(c.Currency))
	if err != nil {
		return x, err
	}
	x.Fees = booking + cfee
	x.Total, err = x.Subtotal.Add(x.Fees)
	return x, err
}

// PriceClass is the price index of one GPU class: the median ask of its proven devices and the
// demand factor a quote for it would carry now.
type PriceClass struct {
	Model        string // "" for CPU-only devices
	Devices      int    // proven: ready or hired
	Hired        int
	GPUs         int
	MedianAsk    iog.Amount // per device-hour, USDC
	MedianPerGPU iog.Amount // per GPU-hour, USDC (devices with GPUs)
	UtilPermille int64
	DemandFactor int64 // per mille, as in quotes
}

// PriceIndex is the price index per GPU class, over proven devices only, with the same
// utilisation and demand factor that quotes use.
func (m *Market) PriceIndex(ctx context.Context) ([]PriceClass, error) {
	ds, err := m.db.Devices(ctx, "")
	if err != nil {
		return nil, err
	}
	snap := make([]sched.Candidate, 0, len(ds))
	by := map[string][]iog.Device{}
	for _, d := range ds {
		if d.Status != iog.DeviceReady && d.Status != iog.DeviceHired {
			continue
		}
		snap = append(snap, sched.Candidate{ID: d.ID, Status: d.Status, GPUModel: d.GPUModel, GPUCount: d.GPUCount})
		by[d.GPUModel] = append(by[d.GPUModel], d)
	}
	var out []PriceClass
	for model, devs := range by {
		pc := PriceClass{Model: model, Devices: len(devs)}
		asks := make([]iog.Amount, 0, len(devs))
		var perGPU []iog.Amount
		for _, d := range devs {
			asks = append(asks, d.AskPerHour)
			pc.GPUs += d.GPUCount
			if d.Status == iog.DeviceHired {
				pc.Hired++
			}
			if d.GPUCount > 0 {
				perGPU = append(perGPU, d.AskPerHour/iog.Amount(d.GPUCount))
			}
		}
		pc.MedianAsk, pc.MedianPerGPU = median(asks), median(perGPU)
		pc.UtilPermille = utilisation(iog.ClusterSpec{GPUModel: model}, snap)
		pc.DemandFactor = pricing.DemandFactor(pc.UtilPermille)
		out = append(out, pc)
	}
	slices.SortFunc(out, func(a, b PriceClass) int {
		if a.Model < b.Model {
			return -1
		}
		if a.Model > b.Model {
			return 1
		}
		return 0
	})
	return out, nil
}

// median of amounts (the lower middle one for an even count; 0 for none).
func median(xs []iog.Amount) iog.Amount {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[(len(xs)-1)/2]
}
