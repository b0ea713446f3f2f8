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
	detail := blockDetail{NotNominated: map[string]string{}}
	var shares []rewards.Share
	// judge adds one device, judged by f, to the block.
	judge := func(d iog.Device, f facts) error {
		in, why, err := b.nominate(ctx, d, end, f)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One device that cannot be judged is not nominated; the block goes on for the
			// rest (a store that is down fails RecordBlock below, and the block is tried again).
			b.cfg.Log.Error("block nomination", "block", n, "device", d.ID, "err", err)
			detail.NotNominated[d.ID] = "could not be evaluated: " + iog.ErrorMessage(err)
			return nil
		}
		if why != "" {
			detail.NotNominated[d.ID] = why
			return nil
		}
		sh, err := rewards.Score(in, pricing.ClassOf(d.GPUModel).Multiplier)
		if err != nil {
			detail.NotNominated[d.ID] = err.Error()
			return nil
		}
		shares = append(shares, sh)
		return nil
	}
	// The wall-clock durations of judging the fleet and of recording the block are logged
	// (docs/SCALE.md, "Block production"): at 100,000 devices each takes seconds.
	t0 := time.Now()
	var err error
	if b.perDevice() {
		err = b.judgeEach(ctx, start, end, judge)
	} else {
		err = b.judgePages(ctx, start, end, judge)
	}
	if err != nil {
		return err
	}
	judged := time.Since(t0)
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
	t1 := time.Now()
	_, err = b.db.RecordBlock(ctx, store.BlockRow{Number: n, Start: start, End: end, Emission: emission, Minted: blk.Minted, Detail: raw, CreatedAt: now,
		Nominated: nominated}, ps...)
	if err == nil {
		b.cfg.Log.Info("block", "number", n, "emission", emission, "minted", blk.Minted, "nominated", len(blk.Shares),
			"devices", len(detail.Shares)+len(detail.NotNominated), "judged_in", judged.Round(time.Millisecond),
			"recorded_in", time.Since(t1).Round(time.Millisecond))
	}
	return err
}

// perDevice reports whether the block judges one device at a time: when the trust side gives
// only its per-device hooks (tests that fail one device's reads). Otherwise it judges the
// fleet a page at a time (judgePages).
func (b *Bank) perDevice() bool {
	return b.cfg.Trust == nil && (b.cfg.ProofPassed != nil || b.cfg.Reputation != nil || b.cfg.Nominable != nil)
}

// nominateChunk is how many devices a block judges at once: their nomination inputs and
// reputation records (a month of status changes, eight half-lives of proofs and jobs) in memory.
var nominateChunk = 2000

// judgeEach judges every device with reads of its own: about ten queries a device.
func (b *Bank) judgeEach(ctx context.Context, start, end time.Time, judge func(iog.Device, facts) error) error {
	ds, err := b.db.Devices(ctx, "")
	if err != nil {
		return err
	}
	f := eachFacts{b: b, start: start, end: end}
	for _, d := range ds {
		if err := judge(d, f); err != nil {
			return err
		}
	}
	return nil
}

// judgePages judges the fleet a page of nominateChunk devices at a time in id order, reading
// each page's inputs with one query per table (store.DevicesFrom, StakesIn, PayoutAddressesIn,
// HiredSecondsIn; the trust side's Config.Trust): a dozen queries a page, not ten a device.
// A page whose reads fail fails the block, unlike a device of judgeEach whose read fails (left
// out as "could not be evaluated"): such a read is every device's, and when it fails the store
// is most likely down; no block is recorded, and the next tick tries it again, rather than a
// block that leaves thousands of devices out of their reward.
func (b *Bank) judgePages(ctx context.Context, start, end time.Time, judge func(iog.Device, facts) error) error {
	for after := ""; ; {
		page, err := b.db.DevicesFrom(ctx, after, nominateChunk)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].ID
		// Only the devices that pass the status and uptime checks need their inputs read.
		var candidates []iog.Device
		var ids []string
		for _, d := range page {
			if screen(d, end, b.cfg.MinUptime) == "" {
				candidates = append(candidates, d)
				ids = append(ids, d.ID)
			}
		}
		f := pageFacts{eachFacts: eachFacts{b: b, start: start, end: end}}
		if len(candidates) > 0 {
			r := store.Range(ids)
			if f.stakes, err = b.db.StakesIn(ctx, r); err != nil {
				return err
			}
			if f.addrs, err = b.db.PayoutAddressesIn(ctx, r); err != nil {
				return err
			}
			if f.hired, err = b.db.HiredSecondsIn(ctx, r, start, end); err != nil {
				return err
			}
			if b.cfg.Trust != nil {
				if f.trust, err = b.cfg.Trust(ctx, candidates, end); err != nil {
					return fmt.Errorf("trust: %w", err)
				}
			}
		}
		for _, d := range page {
			if err := judge(d, f); err != nil {
				return err
			}
		}
		if len(page) < nominateChunk {
			return nil
		}
	}
}

// facts are a device's nomination inputs, each read when nominate first needs it: by itself
// (eachFacts) or from its page's reads (pageFacts). An error leaves the device out of the
// block as "could not be evaluated".
type facts interface {
	proofPassed(ctx context.Context, d iog.Device) (bool, error)
	stake(ctx context.Context, d iog.Device) (iog.Amount, error)
	payoutAddress(ctx context.Context, d iog.Device) (string, error)
	nominable(ctx context.Context, d iog.Device) (bool, string, error)
	hiredSeconds(ctx context.Context, d iog.Device) (int64, error)
	reputation(ctx context.Context, d iog.Device) (int64, error)
}

// eachFacts reads each input of one device with a query of its own.
type eachFacts struct {
	b          *Bank
	start, end time.Time
}

func (f eachFacts) proofPassed(ctx context.Context, d iog.Device) (bool, error) {
	if f.b.cfg.ProofPassed == nil {
		return true, nil
	}
	ok, err := f.b.cfg.ProofPassed(ctx, d.ID, f.end)
	if err != nil {
		return false, fmt.Errorf("proofs: %w", err)
	}
	return ok, nil
}

func (f eachFacts) stake(ctx context.Context, d iog.Device) (iog.Amount, error) {
	return f.b.db.Balance(ctx, iog.AccStake(d.ID), iog.IO)
}

func (f eachFacts) payoutAddress(ctx context.Context, d iog.Device) (string, error) {
	return f.b.db.PayoutAddress(ctx, d.OwnerID)
}

func (f eachFacts) nominable(ctx context.Context, d iog.Device) (bool, string, error) {
	if f.b.cfg.Nominable == nil {
		return true, "", nil
	}
	ok, why, err := f.b.cfg.Nominable(ctx, d.ID)
	if err != nil {
		return false, "", fmt.Errorf("idle policy: %w", err)
	}
	return ok, why, nil
}

func (f eachFacts) hiredSeconds(ctx context.Context, d iog.Device) (int64, error) {
	return f.b.db.HiredSeconds(ctx, d.ID, f.start, f.end)
}

func (f eachFacts) reputation(ctx context.Context, d iog.Device) (int64, error) {
	if f.b.cfg.Reputation == nil {
		return 1000, nil
	}
	r, err := f.b.cfg.Reputation(ctx, d.ID, f.end)
	if err != nil {
		return 0, fmt.Errorf("reputation: %w", err)
	}
	return r, nil
}

// pageFacts looks each input up in its page's reads.
type pageFacts struct {
	eachFacts
	stakes map[string]iog.Amount
	addrs  map[string]string
	hired  map[string]int64
	trust  map[string]Trust // nil when Config.Trust is
}

// trustOf is the trust side's judgement of a device of the page.
func (f pageFacts) trustOf(d iog.Device) (Trust, error) {
	t, ok := f.trust[d.ID]
	if !ok {
		return Trust{}, iog.Errorf(iog.EINTERNAL, "the trust side did not judge device %s", d.ID)
	}
	return t, nil
}

func (f pageFacts) proofPassed(_ context.Context, d iog.Device) (bool, error) {
	if f.b.cfg.Trust == nil {
		return true, nil
	}
	t, err := f.trustOf(d)
	return t.ProofPassed, err
}

func (f pageFacts) stake(_ context.Context, d iog.Device) (iog.Amount, error) {
	return f.stakes[d.ID], nil
}

func (f pageFacts) payoutAddress(ctx context.Context, d iog.Device) (string, error) {
	if a, ok := f.addrs[d.ID]; ok {
		return a, nil
	}
	// The owner's account row is missing (the read says not found, as it always did).
	return f.eachFacts.payoutAddress(ctx, d)
}

func (f pageFacts) nominable(_ context.Context, d iog.Device) (bool, string, error) {
	if f.b.cfg.Trust == nil {
		return true, "", nil
	}
	t, err := f.trustOf(d)
	return t.Idle == "", t.Idle, err
}

func (f pageFacts) hiredSeconds(_ context.Context, d iog.Device) (int64, error) {
	return f.hired[d.ID], nil
}

func (f pageFacts) reputation(_ context.Context, d iog.Device) (int64, error) {
	if f.b.cfg.Trust == nil {
		return 1000, nil
	}
	t, err := f.trustOf(d)
	return t.Reputation, err
}

// screen is why a device is not nominated for the block ending at end whatever its other
// inputs: its status or its uptime ("" when it passes).
func screen(d iog.Device, end time.Time, minUptime time.Duration) string {
	switch {
	case d.Status == iog.DeviceBlocked:
		return "blocked: " + d.StatusReason
	case d.Status != iog.DeviceReady && d.Status != iog.DeviceHired:
		return "status " + string(d.Status)
	case d.UpSince.IsZero() || end.Sub(d.UpSince) < minUptime:
		return fmt.Sprintf("uptime under %s", minUptime)
	}
	return ""
}

// nominate returns a device's score inputs for the block ending at end, or why it is not
// nominated: the first criterion it fails, in this order, whichever way f reads them.
func (b *Bank) nominate(ctx context.Context, d iog.Device, end time.Time, f facts) (rewards.Input, string, error) {
	in := rewards.Input{DeviceID: d.ID, OwnerID: d.OwnerID, Model: d.GPUModel, GPUs: d.GPUCount, Tier: d.Tier, ReputationPermille: 1000}
	if in.Tier == "" {
		in.Tier = rewards.DefaultTier
	}
	if why := screen(d, end, b.cfg.MinUptime); why != "" {
		return in, why, nil
	}
	ok, err := f.proofPassed(ctx, d)
	if err != nil {
		return in, "", err
	}
	if !ok {
		return in, "no passed proof of GPU in the last 24 h", nil
	}
	stake, err := f.stake(ctx, d)
	if err != nil {
		return in, "", err
	}
	if min := MinStake(d.GPUModel, d.GPUCount); stake < min {
		return in, fmt.Sprintf("stake %s IO under the minimum %s IO", stake, min), nil
	}
	addr, err := f.payoutAddress(ctx, d)
	if err != nil {
		return in, "", err
	}
	if addr == "" {
		return in, "owner has no payout address", nil
	}
	ok, why, err := f.nominable(ctx, d)
	if err != nil {
		return in, "", err
	}
	if !ok {
		return in, why, nil
	}
	if in.HiredSeconds, err = f.hiredSeconds(ctx, d); err != nil {
		return in, "", err
	}
	if in.ReputationPermille, err = f.reputation(ctx, d); err != nil {
		return in, "", err
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
