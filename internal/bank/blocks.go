package bank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/rewards"
	"github.com/iognet/iog/internal/store"
)

// Formula is printed with every block so that a supplier can recompute its reward by hand.
const Formula = "score = multiplier x max(GPUs,1) x tier x (1000 + 1000 x hired_seconds/3600) x reputation (all per-mille); " +
	"reward = floor(emission x score / sum of scores); nominated: status ready or hired, nonce-answered uptime >= 5 h, " +
	"a passed proof in the last 24 h (once proofs are on), stake >= 200 IO x max(1, multiplier) x GPUs, a payout address, not blocked"

// blockDetail is what a block publishes.
type blockDetail struct {
	Shares       []api.BlockShare  `json:"shares"`
	NotNominated map[string]string `json:"not_nominated"`
}

// genesis is when block 0 starts.
func (b *Bank) genesis(ctx context.Context) (time.Time, error) {
	if !b.cfg.Genesis.IsZero() {
		return b.cfg.Genesis, nil
	}
	a, err := b.db.AccountByName(ctx, "admin")
	if err != nil {
		return time.Time{}, err
	}
	return a.CreatedAt.Truncate(BlockLength), nil
}

// ProduceBlocks records every block whose hour has ended, catching up after downtime. Each
// block is recorded once (its number is its key), with its emission and the treasury's IO burn.
func (b *Bank) ProduceBlocks(ctx context.Context) (int, error) {
	g, err := b.genesis(ctx)
	if err != nil {
		return 0, err
	}
	next, err := b.db.NextBlock(ctx)
	if err != nil {
		return 0, err
	}
	now := b.cfg.Now()
	made := 0
	for {
		start := g.Add(time.Duration(next) * BlockLength)
		end := start.Add(BlockLength)
		if end.After(now) {
			return made, nil
		}
		if err := b.produce(ctx, next, start, end, now); err != nil {
			return made, fmt.Errorf("block %d: %w", next, err)
		}
		made++
		next++
	}
}

func (b *Bank) produce(ctx context.Context, n int64, start, end, now time.Time) error {
	ds, err := b.db.Devices(ctx, "")
	if err != nil {
		return err
	}
	detail := blockDetail{NotNominated: map[string]string{}}
	var shares []rewards.Share
	for _, d := range ds {
		in, why, err := b.nominate(ctx, d, start, end)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One device that cannot be judged is not nominated; the block goes on for the
			// rest (a store that is down fails RecordBlock below, and the block is tried again).
			b.cfg.Log.Error("block nomination", "block", n, "device", d.ID, "err", err)
			detail.NotNominated[d.ID] = "could not be evaluated: " + iog.ErrorMessage(err)
			continue
		}
		if why != "" {
			detail.NotNominated[d.ID] = why
			continue
		}
		sh, err := rewards.Score(in, pricing.ClassOf(d.GPUModel).Multiplier)
		if err != nil {
			detail.NotNominated[d.ID] = err.Error()
			continue
		}
		shares = append(shares, sh)
	}
	emission := rewards.Capped(n)
	blk := rewards.Distribute(n, emission, shares)
	var ps []iog.Posting
	for _, s := range blk.Shares {
		detail.Shares = append(detail.Shares, api.BlockShare{
			DeviceID: s.DeviceID, OwnerID: s.OwnerID, Model: s.Model, GPUs: s.GPUs, Tier: s.Tier, HiredSeconds: s.HiredSeconds,
			Multiplier: s.MultiplierPermille, TierFactor: s.TierPermille, HireFactor: s.HirePermille, Reputation: s.ReputationPermille,
			Score: fmt.Sprint(s.Score), Reward: s.Reward.String(), RewardMicroIO: int64(s.Reward),
		})
		if s.Reward > 0 {
			ps = append(ps, iog.Transfer(key("block", n, s.DeviceID), key("block", n), iog.IO, end, iog.AccMint, iog.AccRewards(s.DeviceID), s.Reward, "block reward"))
		}
	}
	// The treasury's IO fee revenue is burned every block (the buy-back of USDC fees happens
	// on chain through the settlement adapter, not built yet).
	if t, err := b.db.Balance(ctx, iog.AccTreasury, iog.IO); err != nil {
		return err
	} else if t > 0 {
		ps = append(ps, iog.Transfer(key("burn", "block", n), key("block", n), iog.IO, end, iog.AccTreasury, iog.AccBurn, t, "treasury burns IO fees"))
	}
	raw, _ := json.Marshal(detail)
	nominated := make([]string, len(blk.Shares))
	for i, s := range blk.Shares {
		nominated[i] = s.DeviceID
	}
	_, err = b.db.RecordBlock(ctx, store.BlockRow{Number: n, Start: start, End: end, Emission: emission, Minted: blk.Minted, Detail: raw, CreatedAt: now,
		Nominated: nominated}, ps...)
	if err == nil {
		b.cfg.Log.Info("block", "number", n, "emission", emission, "minted", blk.Minted, "nominated", len(blk.Shares))
	}
	return err
}

// nominate returns a device's score inputs for the block, or why it is not nominated.
func (b *Bank) nominate(ctx context.Context, d iog.Device, start, end time.Time) (rewards.Input, string, error) {
	in := rewards.Input{DeviceID: d.ID, OwnerID: d.OwnerID, Model: d.GPUModel, GPUs: d.GPUCount, Tier: d.Tier, ReputationPermille: 1000}
	if in.Tier == "" {
		in.Tier = rewards.DefaultTier
	}
	switch {
	case d.Status == iog.DeviceBlocked:
		return in, "blocked: " + d.StatusReason, nil
	case d.Status != iog.DeviceReady && d.Status != iog.DeviceHired:
		return in, "status " + string(d.Status), nil
	case d.UpSince.IsZero() || end.Sub(d.UpSince) < b.cfg.MinUptime:
		return in, fmt.Sprintf("uptime under %s", b.cfg.MinUptime), nil
	}
	if b.cfg.ProofPassed != nil {
		ok, err := b.cfg.ProofPassed(ctx, d.ID, end)
		if err != nil {
			return in, "", fmt.Errorf("proofs: %w", err)
		}
		if !ok {
			return in, "no passed proof of GPU in the last 24 h", nil
		}
	}
	stake, err := b.db.Balance(ctx, iog.AccStake(d.ID), iog.IO)
	if err != nil {
		return in, "", err
	}
	if min := MinStake(d.GPUModel, d.GPUCount); stake < min {
		return in, fmt.Sprintf("stake %s IO under the minimum %s IO", stake, min), nil
	}
	addr, err := b.db.PayoutAddress(ctx, d.OwnerID)
	if err != nil {
		return in, "", err
	}
	if addr == "" {
		return in, "owner has no payout address", nil
	}
	if b.cfg.Nominable != nil {
		ok, why, err := b.cfg.Nominable(ctx, d.ID)
		if err != nil {
			return in, "", fmt.Errorf("idle policy: %w", err)
		}
		if !ok {
			return in, why, nil
		}
	}
	if in.HiredSeconds, err = b.db.HiredSeconds(ctx, d.ID, start, end); err != nil {
		return in, "", err
	}
	if b.cfg.Reputation != nil {
		if in.ReputationPermille, err = b.cfg.Reputation(ctx, d.ID, end); err != nil {
			return in, "", fmt.Errorf("reputation: %w", err)
		}
	}
	return in, "", nil
}

// Blocks lists recent blocks.
func (b *Bank) Blocks(ctx context.Context, limit int) ([]api.Block, error) {
	if limit <= 0 || limit > 1000 {
		limit = 24
	}
	rows, err := b.db.Blocks(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := []api.Block{}
	for _, r := range rows {
		out = append(out, toBlock(r))
	}
	return out, nil
}

// Block returns one block with every input.
func (b *Bank) Block(ctx context.Context, n int64) (api.Block, error) {
	r, err := b.db.Block(ctx, n)
	if err != nil {
		return api.Block{}, err
	}
	return toBlock(r), nil
}

func toBlock(r store.BlockRow) api.Block {
	var d blockDetail
	_ = json.Unmarshal(r.Detail, &d)
	if d.Shares == nil {
		d.Shares = []api.BlockShare{}
	}
	return api.Block{Number: r.Number, Start: r.Start, End: r.End, Emission: r.Emission.String(), Minted: r.Minted.String(),
		Formula: Formula, Shares: d.Shares, NotNominated: d.NotNominated}
}

// Tick runs the singleton work once if this coordinator leads: released stake, burned
// slashes, due blocks; the errors of all three come back together.
func (b *Bank) Tick(ctx context.Context) error {
	if !b.Lead(ctx) {
		return nil
	}
	// Each step runs whatever the others did: a stuck withdrawal or slash never stops blocks.
	var errs []error
	if err := b.releaseWithdrawals(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := b.burnDueSlashes(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := b.ProduceBlocks(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run ticks until ctx ends.
func (b *Bank) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := b.Tick(ctx); err != nil {
				b.cfg.Log.Error("bank tick", "err", err)
			}
		}
	}
}
