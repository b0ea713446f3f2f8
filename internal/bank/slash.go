package bank

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

func storeWithdrawal(id, device string, amt iog.Amount, now time.Time) store.Withdrawal {
	return store.Withdrawal{ID: id, DeviceID: device, Amount: amt, RequestedAt: now, UnlockAt: now.Add(StakeCooldown), State: "cooling"}
}

// Slash moves a device's whole stake (in its cooldown too) and unpaid rewards into a held
// account after fraud. After the 30-day appeal window it is burned, unless an admin upholds the
// appeal.
func (b *Bank) Slash(ctx context.Context, deviceID, reason string) error {
	d, err := b.db.Device(ctx, deviceID)
	if err != nil {
		return err
	}
	now := b.cfg.Now()
	stake, err := b.db.Balance(ctx, iog.AccStake(d.ID), iog.IO)
	if err != nil {
		return err
	}
	rewards, err := b.db.Balance(ctx, iog.AccRewards(d.ID), iog.IO)
	if err != nil {
		return err
	}
	// Stake in its cooldown is still at stake: withdrawing does not escape a slash.
	cooling, err := b.db.Withdrawals(ctx, d.ID)
	if err != nil {
		return err
	}
	var cooled iog.Amount
	var wids []string
	for _, w := range cooling {
		cooled += w.Amount
		wids = append(wids, w.ID)
	}
	id := b.cfg.NewID("sl")
	var ps []iog.Posting
	if stake > 0 {
		ps = append(ps, iog.Transfer("slash:"+id+":stake", "slash:"+id, iog.IO, now, iog.AccStake(d.ID), iog.AccHeld(d.ID), stake, reason))
	}
	if cooled > 0 {
		ps = append(ps, iog.Transfer("slash:"+id+":cooldown", "slash:"+id, iog.IO, now, iog.AccCooldown(d.ID), iog.AccHeld(d.ID), cooled, reason))
		stake += cooled
	}
	if rewards > 0 {
		ps = append(ps, iog.Transfer("slash:"+id+":rewards", "slash:"+id, iog.IO, now, iog.AccRewards(d.ID), iog.AccHeld(d.ID), rewards, reason))
	}
	sl := store.Slash{ID: id, DeviceID: d.ID, OwnerID: d.OwnerID, Stake: stake, Rewards: rewards, Reason: reason, At: now,
		AppealUntil: now.Add(AppealWindow), Withdrawals: wids}
	if err := b.db.CreateSlash(ctx, sl, ps...); err != nil {
		return err
	}
	b.cfg.Log.Warn("device slashed", "device", d.ID, "stake", stake, "rewards", rewards, "reason", reason)
	return nil
}

// Slashes lists slashes: all for an admin, the account's devices' otherwise.
func (b *Bank) Slashes(ctx context.Context, acct iog.Account) ([]api.Slash, error) {
	owner := acct.ID
	if acct.Has(iog.RoleAdmin) {
		owner = ""
	}
	ss, err := b.db.Slashes(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := []api.Slash{}
	for _, s := range ss {
		out = append(out, toSlash(s))
	}
	return out, nil
}

func toSlash(s store.Slash) api.Slash {
	return api.Slash{ID: s.ID, DeviceID: s.DeviceID, OwnerID: s.OwnerID, Stake: s.Stake.String(), Rewards: s.Rewards.String(),
		Reason: s.Reason, At: s.At, AppealUntil: s.AppealUntil, State: s.State}
}

// Appeal decides a held slash (admin): upheld returns the funds to the owner's wallet,
// rejected burns them now.
func (b *Bank) Appeal(ctx context.Context, acct iog.Account, id string, uphold bool) (api.Slash, error) {
	if !acct.Has(iog.RoleAdmin) {
		return api.Slash{}, iog.Errorf(iog.EFORBIDDEN, "only admins decide appeals")
	}
	ss, err := b.db.Slashes(ctx, "")
	if err != nil {
		return api.Slash{}, err
	}
	for _, s := range ss {
		if s.ID != id {
			continue
		}
		if s.State != "held" {
			return api.Slash{}, iog.Errorf(iog.ECONFLICT, "slash %s is already %s", id, s.State)
		}
		if err := b.resolve(ctx, s, uphold); err != nil {
			return api.Slash{}, err
		}
		ss, err = b.db.Slashes(ctx, "")
		if err != nil {
			return api.Slash{}, err
		}
		for _, s2 := range ss {
			if s2.ID == id {
				return toSlash(s2), nil
			}
		}
	}
	return api.Slash{}, iog.Errorf(iog.ENOTFOUND, "slash %s not found", id)
}

func (b *Bank) resolve(ctx context.Context, s store.Slash, uphold bool) error {
	now := b.cfg.Now()
	total := s.Stake + s.Rewards
	state, to, memo := "burned", iog.AccBurn, "appeal window over: burned"
	if uphold {
		state, to, memo = "returned", iog.AccWallet(s.OwnerID), "appeal upheld: returned"
	}
	var ps []iog.Posting
	if total > 0 {
		ps = append(ps, iog.Transfer("slash:"+s.ID+":"+state, "slash:"+s.ID, iog.IO, now, iog.AccHeld(s.DeviceID), to, total, memo))
	}
	_, err := b.db.ResolveSlash(ctx, s.ID, state, now, ps...)
	return err
}

// burnDueSlashes burns held funds whose appeal window has passed.
func (b *Bank) burnDueSlashes(ctx context.Context) error {
	ss, err := b.db.DueSlashes(ctx, b.cfg.Now())
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range ss {
		if err := b.resolve(ctx, s, false); err != nil {
			errs = append(errs, fmt.Errorf("burn slash %s: %w", s.ID, err))
		}
	}
	return errors.Join(errs...)
}
