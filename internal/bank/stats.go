package bank

import (
	"context"
	"fmt"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Stats are the network's public aggregates. Only proven devices (ready or hired) count as
// supply; pending, blocked and down devices are shown apart, so a crowd of fake devices cannot
// inflate what the Explorer calls rentable.
func (b *Bank) Stats(ctx context.Context) (api.NetworkStats, error) {
	n, err := b.db.NetworkCounts(ctx, b.cfg.Now())
	if err != nil {
		return api.NetworkStats{}, err
	}
	st := n.DevicesByStatus
	out := api.NetworkStats{
		Rentable: st[string(iog.DeviceReady)], Hired: st[string(iog.DeviceHired)], Pending: st[string(iog.DevicePending)],
		Blocked: st[string(iog.DeviceBlocked)], Down: st[string(iog.DeviceDown)] + st[string(iog.DeviceInactive)],
		GPUsByModel: n.GPUsByModel, Clusters: n.ClustersByState, Blocks: n.Blocks, Minted: iog.Amount(n.MintedMicroIO).String(),
		ComputeHours: fmt.Sprintf("%d.%02d", n.ComputeSeconds/3600, n.ComputeSeconds%3600*100/3600),
	}
	for s, c := range st {
		if s != string(iog.DeviceDown) && s != string(iog.DeviceInactive) {
			out.Connected += c
		}
	}
	return out, nil
}
