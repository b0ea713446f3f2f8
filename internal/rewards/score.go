package rewards

import (
	"math/big"
	"math/bits"
	"slices"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Connectivity tiers and their factors in per-mille.
const (
	DefaultTier = "standard"
	// HireWeight is the weight in per-mille of an hour fully hired: a device hired all hour scores
	// 1000 + 1000 = 2000, twice an idle one (io.net weighs hires at 0.05).
	HireWeight = 1000
)

var tiers = map[string]int64{"low": 800, "standard": 1000, "high": 1200, "ultra": 1500}

// TierFactor is the factor in per-mille of a connectivity tier, named in any case; "" is the
// DefaultTier.
func TierFactor(t string) (int64, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "" {
		t = DefaultTier
	}
	f, ok := tiers[t]
	if !ok {
		return 0, iog.Errorf(iog.EINVALID, "unknown tier %q: want low, standard, high or ultra", t)
	}
	return f, nil
}

// Input is what a nominated device brings to a block, as published with the block.
type Input struct {
	DeviceID, OwnerID, Model string
	GPUs                     int
	Tier                     string // "" is DefaultTier
	HiredSeconds             int64  // seconds of the block's hour under a paid lease, 0..3600
	ReputationPermille       int64  // 0..1000; 1000 where there is no reputation yet
}

// Share is a device's score in a block and, once distributed, its reward.
type Share struct {
	Input
	MultiplierPermille, TierPermille, HirePermille int64
	// Score = multiplier x max(GPUs,1) x tier x hire x reputation, the four factors in per-mille,
	// so Score / 10^12 is the score in points (an idle 1-GPU H100 at standard tier with full
	// reputation is 10 points).
	Score  int64
	Reward iog.Amount
}

// Score scores a device for a block. classMultiplierPermille is its class's multiplier,
// pricing.ClassOf(in.Model).Multiplier. In integers, with every factor in per-mille:
//
//	hire  = 1000 + HireWeight x HiredSeconds / 3600      (floored)
//	score = multiplier x max(GPUs, 1) x tier x hire x reputation
//
// Bad input and a score that does not fit in 64 bits are EINVALID errors.
func Score(in Input, classMultiplierPermille int64) (Share, error) {
	switch {
	case in.DeviceID == "":
		return Share{}, iog.Errorf(iog.EINVALID, "a share needs a device ID")
	case classMultiplierPermille <= 0:
		return Share{}, iog.Errorf(iog.EINVALID, "device %s: class multiplier must be above zero, got %d", in.DeviceID, classMultiplierPermille)
	case in.GPUs < 0:
		return Share{}, iog.Errorf(iog.EINVALID, "device %s: negative GPU count %d", in.DeviceID, in.GPUs)
	case in.HiredSeconds < 0 || in.HiredSeconds > 3600:
		return Share{}, iog.Errorf(iog.EINVALID, "device %s: hired seconds must be 0 to 3600, got %d", in.DeviceID, in.HiredSeconds)
	case in.ReputationPermille < 0 || in.ReputationPermille > 1000:
		return Share{}, iog.Errorf(iog.EINVALID, "device %s: reputation must be 0 to 1000, got %d", in.DeviceID, in.ReputationPermille)
	}
	tier, err := TierFactor(in.Tier)
	if err != nil {
		return Share{}, iog.Errorf(iog.EINVALID, "device %s: %s", in.DeviceID, iog.ErrorMessage(err))
	}
	s := Share{
		Input:              in,
		MultiplierPermille: classMultiplierPermille,
		TierPermille:       tier,
		HirePermille:       1000 + HireWeight*in.HiredSeconds/3600,
	}
	score := int64(1)
	for _, f := range []int64{classMultiplierPermille, int64(max(in.GPUs, 1)), tier, s.HirePermille, in.ReputationPermille} {
		hi, lo := bits.Mul64(uint64(score), uint64(f)) // all factors are >= 0
		if hi != 0 || lo > 1<<63-1 {
			return Share{}, iog.Errorf(iog.EINVALID, "device %s: score is too large to compute", in.DeviceID)
		}
		score = int64(lo)
	}
	s.Score = score
	return s, nil
}

// Block is one hour's distribution.
type Block struct {
	Number   int64
	Emission iog.Amount // what the block could mint: Capped(Number), as the caller passes it
	Shares   []Share    // sorted by DeviceID, each with its Reward
	Minted   iog.Amount // the sum of the rewards
	Dust     iog.Amount // Emission - Minted: what flooring leaves; never minted
}

// Distribute splits a block's emission among shares in proportion to their scores:
//
//	reward_i = floor(emission x score_i / sum of scores)
//
// with the product in big integers. Shares are sorted by DeviceID (ties keep their order), so the
// result does not depend on the order given. A negative score counts as zero, as does a negative
// emission. With no shares or no score, nothing is minted and all of the emission is dust. The
// rewards never sum past the emission.
func Distribute(number int64, emission iog.Amount, shares []Share) Block {
	emission = max(emission, 0)
	b := Block{Number: number, Emission: emission, Shares: slices.Clone(shares)}
	slices.SortStableFunc(b.Shares, func(x, y Share) int { return strings.Compare(x.DeviceID, y.DeviceID) })
	total := new(big.Int)
	for _, s := range b.Shares {
		total.Add(total, big.NewInt(max(s.Score, 0)))
	}
	for i := range b.Shares {
		b.Shares[i].Reward = 0
		if total.Sign() == 0 || b.Shares[i].Score <= 0 {
			continue
		}
		r := new(big.Int).Mul(big.NewInt(int64(emission)), big.NewInt(b.Shares[i].Score))
		r.Quo(r, total) // <= emission, so it fits
		b.Shares[i].Reward = iog.Amount(r.Int64())
		b.Minted += b.Shares[i].Reward
	}
	b.Dust = b.Emission - b.Minted
	return b
}
