package rewards

import "github.com/iognet/iog/internal/iog"

// Supply, in micro-IO (docs/DESIGN.md §5).
const (
	LaunchSupply iog.Amount = 500_000_000 * iog.Unit // in circulation at launch
	EmissionCap  iog.Amount = 300_000_000 * iog.Unit // the most that blocks ever mint
	TotalCap     iog.Amount = LaunchSupply + EmissionCap
)

// The schedule: one block an hour, months of 730 blocks, 240 months.
const (
	BlocksPerYear  = 8760
	BlocksPerMonth = 730
	EmissionBlocks = 175200 // 20 years; every block from here on emits nothing
	// FirstEmission is block 0's emission: 8% a year of the launch supply, spread over the hours
	// of a year and floored: 40_000_000 IO / 8760 = 4_566.210045 IO.
	FirstEmission iog.Amount = LaunchSupply * 8 / 100 / BlocksPerYear
	// Each month's per-block emission is the last month's x MonthlyKeep / KeepDenominator,
	// floored: 0.989849, the monthly factor io.net's published figures imply (300M IO over 20
	// years from 8% a year of the launch supply), a fall of 1.0151% a month where io.net's text
	// rounds it to 1.02% (docs/REWARDS.md).
	MonthlyKeep     = 989_849
	KeepDenominator = 1_000_000
)

// monthEmission is the per-block emission of month m, for 0 <= m < 240: FirstEmission
// multiplied by MonthlyKeep/KeepDenominator m times, flooring after each month. At most 239 steps.
func monthEmission(m int64) iog.Amount {
	e := FirstEmission
	for range m {
		e = e * MonthlyKeep / KeepDenominator // e < 2^33, so e * 989849 < 2^53 fits
	}
	return e
}

// Emission is the scheduled emission of block n in micro-IO, before the cumulative cap: the
// emission of its month, n / BlocksPerMonth. It is zero before block 0 and from EmissionBlocks on.
func Emission(n int64) iog.Amount {
	if n < 0 || n >= EmissionBlocks {
		return 0
	}
	return monthEmission(n / BlocksPerMonth)
}

// Cumulative is what blocks 0..n-1 emit in total, capped at EmissionCap: whole months at 730
// blocks each plus the part of n's month before it. It takes at most 240 steps, not n.
func Cumulative(n int64) iog.Amount {
	n = min(max(n, 0), EmissionBlocks)
	var sum iog.Amount
	e := FirstEmission
	for m := int64(0); m*BlocksPerMonth < n; m++ {
		blocks := min(n-m*BlocksPerMonth, BlocksPerMonth)
		sum += e * iog.Amount(blocks) // the whole schedule sums below 300M IO: no overflow
		e = e * MonthlyKeep / KeepDenominator
	}
	return min(sum, EmissionCap)
}

// Capped is what block n may mint: its Emission, cut so that the cumulative emission never
// passes EmissionCap. (The schedule sums to 1,061.068440 IO over the cap, so the cut takes
// that much off the last blocks of year 20; see docs/REWARDS.md.)
func Capped(n int64) iog.Amount {
	return max(min(Emission(n), EmissionCap-Cumulative(n)), 0)
}
