package fleet

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// owned loads a device the account may manage (its owner or an admin). Others get ENOTFOUND,
// so device ids cannot be probed.
func (f *Fleet) owned(ctx context.Context, acct iog.Account, id string) (iog.Device, error) {
	d, err := f.db.Device(ctx, id)
	if err != nil {
		return d, err
	}
	if d.OwnerID != acct.ID && !acct.Has(iog.RoleAdmin) {
		return d, iog.Errorf(iog.ENOTFOUND, "device %s not found", id)
	}
	return d, nil
}

// View is the API form of a device; with detail it carries inventory, telemetry and history.
func (f *Fleet) View(ctx context.Context, d iog.Device, detail bool) (api.Device, error) {
	out := api.Device{
		ID: d.ID, OwnerID: d.OwnerID, Name: d.Name, Status: string(d.Status), StatusReason: d.StatusReason,
		Region: d.Region, GPUModel: d.GPUModel, GPUCount: d.GPUCount, AskPerHour: d.AskPerHour.String(),
		SharedHost: d.SharedHost, DataPlane: d.DataPlane, Addr: d.Addr, LastSeenAt: f.LastSeen(d), CreatedAt: d.CreatedAt,
	}
	if !detail {
		return out, nil
	}
	var inv api.Inventory
	if err := json.Unmarshal(d.Inventory, &inv); err == nil {
		out.Inventory = &inv
	}
	if t, ok := f.Telemetry(d.ID); ok {
		out.Telemetry = &t
	}
	evs, err := f.db.DeviceEvents(ctx, d.ID, 100)
	if err != nil {
		return out, err
	}
	for _, e := range evs {
		out.Events = append(out.Events, api.DeviceEvent{At: e.At, Status: string(e.Status), Reason: e.Reason})
	}
	if err := f.trustView(ctx, d, &out); err != nil {
		return out, err
	}
	if out.Review, err = f.db.HardwareReview(ctx, d.ID); err != nil {
		return out, err
	}
	leases, err := f.db.ActiveLeases(ctx, d.ID)
	if err != nil {
		return out, err
	}
	if len(leases) > 0 {
		out.LeaseID = leases[0].ID
	}
	return out, nil
}

// List returns the account's devices (every device for an admin).
func (f *Fleet) List(ctx context.Context, acct iog.Account) ([]api.Device, error) {
	owner := acct.ID
	if acct.Has(iog.RoleAdmin) {
		owner = ""
	}
	ds, err := f.db.Devices(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]api.Device, 0, len(ds))
	for _, d := range ds {
		v, _ := f.View(ctx, d, false)
		out = append(out, v)
	}
	return out, nil
}

// Get returns one device with its detail.
func (f *Fleet) Get(ctx context.Context, acct iog.Account, id string) (api.Device, error) {
	d, err := f.owned(ctx, acct, id)
	if err != nil {
		return api.Device{}, err
	}
	return f.View(ctx, d, true)
}

// Rename changes a device's display name.
func (f *Fleet) Rename(ctx context.Context, acct iog.Account, id, name string) (api.Device, error) {
	d, err := f.owned(ctx, acct, id)
	if err != nil {
		return api.Device{}, err
	}
	name = strings.TrimSpace(name)
	if err := iog.CheckLabel("name", name, api.MaxName, false); err != nil {
		return api.Device{}, err
	}
	d.Name = name
	if err := f.db.UpdateDevice(ctx, d); err != nil {
		return api.Device{}, err
	}
	return f.View(ctx, d, true)
}

// Pause takes a device off the market; a hired device finishes its lease first and is paused
// when it ends.
func (f *Fleet) Pause(ctx context.Context, acct iog.Account, id string) (api.Device, error) {
	return f.setPaused(ctx, acct, id, true)
}

// Resume puts a paused device back on the market.
func (f *Fleet) Resume(ctx context.Context, acct iog.Account, id string) (api.Device, error) {
	return f.setPaused(ctx, acct, id, false)
}

func (f *Fleet) setPaused(ctx context.Context, acct iog.Account, id string, paused bool) (api.Device, error) {
	d, err := f.owned(ctx, acct, id)
	if err != nil {
		return api.Device{}, err
	}
	if d.Status == iog.DeviceHired && paused {
		return api.Device{}, iog.Errorf(iog.ECONFLICT, "device %s is hired; it can be paused when its lease ends", id)
	}
	d.Paused = paused
	if err := f.db.UpdateDevice(ctx, d); err != nil {
		return api.Device{}, err
	}
	now := f.cfg.Now()
	if paused {
		_, err = f.setStatus(ctx, id, iog.DevicePaused, "paused by owner", now, iog.DeviceReady, iog.DevicePending)
	} else {
		st, why := iog.DeviceReady, "resumed by owner"
		if !f.cfg.SkipProofs {
			st, why = f.returnStatus(ctx, d, now, why)
			f.scheduleHello(id, st, now)
		}
		_, err = f.setStatus(ctx, id, st, why, now, iog.DevicePaused)
	}
	if err != nil {
		return api.Device{}, err
	}
	d, err = f.db.Device(ctx, id)
	if err != nil {
		return api.Device{}, err
	}
	return f.View(ctx, d, true)
}

// SetPrice sets a device's ask per hour (USDC), or makes it automatic: the class reference
// price for its GPUs.
func (f *Fleet) SetPrice(ctx context.Context, acct iog.Account, id string, r api.PriceRequest) (api.Device, error) {
	d, err := f.owned(ctx, acct, id)
	if err != nil {
		return api.Device{}, err
	}
	switch {
	case r.Auto && r.PerHour != "":
		return api.Device{}, iog.Errorf(iog.EINVALID, "give a price per hour or auto, not both")
	case r.Auto:
		d.AskPerHour = pricing.AutoAsk(d.GPUModel, d.GPUCount, 0)
	case r.PerHour != "":
		p, err := iog.ParseAmount(r.PerHour)
		if err != nil {
			return api.Device{}, err
		}
		if p < 0 || p > 10_000*iog.Unit {
			return api.Device{}, iog.Errorf(iog.EINVALID, "price per hour must be between 0 and 10000")
		}
		d.AskPerHour = p
	default:
		return api.Device{}, iog.Errorf(iog.EINVALID, "give a price per hour or auto")
	}
	if err := f.db.UpdateDevice(ctx, d); err != nil {
		return api.Device{}, err
	}
	return f.View(ctx, d, true)
}

// Delete removes a device that holds no lease; its worker's key stops working.
func (f *Fleet) Delete(ctx context.Context, acct iog.Account, id string) error {
	if _, err := f.owned(ctx, acct, id); err != nil {
		return err
	}
	if err := f.db.DeleteDevice(ctx, id, f.cfg.Now()); err != nil {
		return err
	}
	f.dropLive(id)
	if f.cfg.Forget != nil {
		f.cfg.Forget(id)
	}
	return nil
}
