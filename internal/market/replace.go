package market

import (
	"context"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/sched"
)

// MinReplaceTime is the least paid time a cluster must have left for a lost node to be
// replaced; with less, the cluster carries on degraded and the lost node's share is refunded.
const MinReplaceTime = 2 * time.Minute

// replace tries to put a new device in the place of a lost node (docs/DESIGN.md §4): same rank, same
// requirements, a device the cluster has not used yet. The renter pays for the time left at the
// new device's rate (the lost node's unspent share was refunded when it ended). The new lease
// is added only if the cluster is still at c.Rev, with why (and the device) as its reason. It
// reports whether the node was replaced, or why it cannot be; neither means that the cluster
// changed meanwhile.
func (m *Market) replace(ctx context.Context, c iog.Cluster, lost iog.Lease, why string) (bool, string, error) {
	now := m.cfg.Now()
	left := c.ExpiresAt.Sub(now)
	if left < MinReplaceTime {
		return false, fmt.Sprintf("under %s of paid time left", MinReplaceTime), nil
	}
	leases, err := m.db.Leases(ctx, c.ID)
	if err != nil {
		return false, "", err
	}
	used := map[string]bool{}
	for _, l := range leases {
		used[l.DeviceID] = true
	}
	m.place.Lock()
	defer m.place.Unlock()
	all, err := m.snapshot(ctx, c.Spec)
	if err != nil {
		return false, "", err
	}
	var snap []sched.Candidate
	for _, d := range all {
		if !used[d.ID] {
			snap = append(snap, d)
		}
	}
	one := c.Spec
	one.Nodes = 1
	nodes, err := place(one, snap)
	if err != nil {
		return false, iog.ErrorMessage(err), nil
	}
	// Price the device for whole hours to get its effective rate (demand included, no
	// commitment discount), then charge only the minutes that are left.
	one.Hours = int((left + time.Hour - 1) / time.Hour)
	one.Commitment = string(pricing.Hourly)
	q, err := m.quote(one, nodes, snap)
	if err != nil {
		return false, "", err
	}
	rate := q.PerDevice[0].PerHour
	prepaid := minutesCost(rate, 0, int64(left/time.Minute))
	booking, cfee, err := pricing.RenterFee(prepaid, pricing.Currency(c.Currency))
	if err != nil {
		return false, "", err
	}
	owner := ""
	for _, d := range snap {
		if d.ID == nodes[0].DeviceID {
			owner = d.Owner
		}
	}
	l := iog.Lease{ID: m.newID(iog.PrefixLease), ClusterID: c.ID, DeviceID: nodes[0].DeviceID, Rank: lost.Rank, State: iog.LeaseAssigned,
		GPUs: nodes[0].GPUs, CreatedAt: now, SupplierID: owner, PricePerHour: rate, Prepaid: prepaid}
	var ps []iog.Posting
	if total := prepaid + booking + cfee; total > 0 {
		p := iog.Posting{Key: "replace:" + l.ID, Cause: "cluster:" + c.ID, Currency: c.Currency, At: now,
			Memo:    fmt.Sprintf("replacement of node %d for the %s left", lost.Rank, left.Round(time.Minute)),
			Entries: []iog.Entry{{Account: iog.AccWallet(c.OwnerID), Amount: -total}}}
		if prepaid > 0 {
			p.Entries = append(p.Entries, iog.Entry{Account: iog.AccEscrow(c.ID), Amount: prepaid})
		}
		if booking+cfee > 0 {
			p.Entries = append(p.Entries, iog.Entry{Account: iog.AccTreasury, Amount: booking + cfee})
		}
		ps = append(ps, p)
	}
	why += "; replaced by device " + l.DeviceID
	if c.Reason != "" {
		why = c.Reason + "; " + why
	}
	ok, err := m.db.AddLease(ctx, c.ID, c.Rev, lost.ID, why, l, ps...)
	if err != nil {
		switch iog.ErrorCode(err) {
		case iog.EINSUFFICIENTFUNDS, iog.ECONFLICT:
			return false, iog.ErrorMessage(err), nil
		}
		return false, "", err
	}
	if !ok {
		return false, "", nil
	}
	m.cfg.Devices.Bump(l.DeviceID)
	m.bumpMesh(ctx, c.ID) // the other nodes learn their new peer
	m.cfg.Log.Info("node replaced", "cluster", c.ID, "rank", lost.Rank, "lost", lost.DeviceID, "device", l.DeviceID)
	return true, "", nil
}
