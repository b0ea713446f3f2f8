package bank

import (
	"context"
	"errors"
	"fmt"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// MinStake is what a device must stake to be nominated: 200 IO x max(1, class multiplier) x
// GPUs (CPU-only devices count as one unit).
func MinStake(model string, gpus int) iog.Amount {
	mult := max(pricing.ClassOf(model).Multiplier, 1000)
	return MinStakePerUnit * iog.Amount(mult) / 1000 * iog.Amount(max(gpus, 1))
}

func (b *Bank) ownedDevice(ctx context.Context, acct iog.Account, id string) (iog.Device, error) {
	d, err := b.db.Device(ctx, id)
	if err != nil {
		return d, err
	}
	if d.OwnerID != acct.ID && !acct.Has(iog.RoleAdmin) {
		return d, iog.Errorf(iog.ENOTFOUND, "device %s not found", id)
	}
	return d, nil
}

func positive(s string) (iog.Amount, error) {
	a, err := iog.ParseAmount(s)
	if err != nil {
		return 0, err
	}
	if a <= 0 {
		return 0, iog.Errorf(iog.EINVALID, "amount must be above 0")
	}
	return a, nil
}

// AddStake moves IO from the owner's wallet to the device's stake.
func (b *Bank) AddStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error) {
	d, err := b.ownedDevice(ctx, acct, r.DeviceID)
	if err != nil {
		return api.StakeStatus{}, err
	}
	amt, err := positive(r.Amount)
	if err != nil {
		return api.StakeStatus{}, err
	}
	now := b.cfg.Now()
	p := iog.Transfer(key("stake", d.ID, b.cfg.NewID("op")), "stake:"+d.ID, iog.IO, now, iog.AccWallet(d.OwnerID), iog.AccStake(d.ID), amt, "stake")
	if _, err := b.db.Post(ctx, p); err != nil {
		return api.StakeStatus{}, err
	}
	return b.stakeStatus(ctx, d)
}

// WithdrawStake starts the 14-day cooldown of some of a device's stake; stake in cooldown does
// not count towards the minimum.
func (b *Bank) WithdrawStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error) {
	d, err := b.ownedDevice(ctx, acct, r.DeviceID)
	if err != nil {
		return api.StakeStatus{}, err
	}
	amt, err := positive(r.Amount)
	if err != nil {
		return api.StakeStatus{}, err
	}
	// As on io.net: stake backs the work a device does, so it stays while the device is hired.
	if d.Status == iog.DeviceHired {
		return api.StakeStatus{}, iog.Errorf(iog.ECONFLICT, "device %s is hired; withdraw its stake after its lease ends", d.ID)
	}
	now := b.cfg.Now()
	id := b.cfg.NewID("wd")
	p := iog.Transfer("withdraw:"+id, "stake:"+d.ID, iog.IO, now, iog.AccStake(d.ID), iog.AccCooldown(d.ID), amt, "unstake: cooldown starts")
	w := storeWithdrawal(id, d.ID, amt, now)
	if err := b.db.CreateWithdrawal(ctx, w, p); err != nil {
		return api.StakeStatus{}, err
	}
	return b.stakeStatus(ctx, d)
}

// Stakes returns the stake status of the account's devices (or one of them).
func (b *Bank) Stakes(ctx context.Context, acct iog.Account, device string) ([]api.StakeStatus, error) {
	if device != "" {
		d, err := b.ownedDevice(ctx, acct, device)
		if err != nil {
			return nil, err
		}
		s, err := b.stakeStatus(ctx, d)
		return []api.StakeStatus{s}, err
	}
	ds, err := b.db.Devices(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	out := []api.StakeStatus{}
	for _, d := range ds {
		s, err := b.stakeStatus(ctx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *Bank) stakeStatus(ctx context.Context, d iog.Device) (api.StakeStatus, error) {
	staked, err := b.db.Balance(ctx, iog.AccStake(d.ID), iog.IO)
	if err != nil {
		return api.StakeStatus{}, err
	}
	held, err := b.db.Balance(ctx, iog.AccHeld(d.ID), iog.IO)
	if err != nil {
		return api.StakeStatus{}, err
	}
	unclaimed, err := b.db.Balance(ctx, iog.AccRewards(d.ID), iog.IO)
	if err != nil {
		return api.StakeStatus{}, err
	}
	min := MinStake(d.GPUModel, d.GPUCount)
	out := api.StakeStatus{DeviceID: d.ID, Staked: staked.String(), Minimum: min.String(), Sufficient: staked >= min,
		Held: held.String(), Unclaimed: unclaimed.String(), Cooling: []api.Withdrawal{}, NominatedIn: -1}
	if out.NominatedIn, err = b.db.LastNominatedBlock(ctx, d.ID); err != nil {
		return out, err
	}
	ws, err := b.db.AllWithdrawals(ctx, d.ID, 50)
	if err != nil {
		return out, err
	}
	for _, w := range ws {
		// Stake in its cooldown, and stake a slash took during its cooldown (never paid out).
		if w.State == "cooling" || w.State == "slashed" {
			out.Cooling = append(out.Cooling, api.Withdrawal{ID: w.ID, Amount: w.Amount.String(), UnlockAt: w.UnlockAt, State: w.State})
		}
	}
	return out, nil
}

// releaseWithdrawals pays out stake whose cooldown is over, to the device's owner (also of a
// device deleted before deletes were guarded). One withdrawal that fails does not hold up the
// others; the errors are returned together.
func (b *Bank) releaseWithdrawals(ctx context.Context) error {
	now := b.cfg.Now()
	ws, err := b.db.DueWithdrawals(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range ws {
		owner, err := b.db.DeviceOwner(ctx, w.DeviceID)
		if err == nil {
			p := iog.Transfer("unstake:"+w.ID, "stake:"+w.DeviceID, iog.IO, now, iog.AccCooldown(w.DeviceID), iog.AccWallet(owner), w.Amount, "cooldown over")
			err = b.db.ReleaseWithdrawal(ctx, w.ID, p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("release withdrawal %s of device %s: %w", w.ID, w.DeviceID, err))
		}
	}
	return errors.Join(errs...)
}
