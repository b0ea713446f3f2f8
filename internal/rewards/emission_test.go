package rewards

import (
	"math/big"
	"testing"

	"github.com/iognet/iog/internal/iog"
)

func TestEmission(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block int64
		want  iog.Amount
	}{
		{"before the first block", -1, 0},
		// 40_000_000 IO / 8760 = 4_566.2100456... IO, floored to the micro-IO.
		{"first hour", 0, 4_566_210_045},
		{"last hour of month 0", 729, 4_566_210_045},
		// 4_566_210_045 x 989_849 / 1_000_000 = 4_519_858_446.6... -> 4_519_858_446
		{"month 1", 730, 4_519_858_446},
		{"month 12", 12 * 730, 4_040_017_705},
		{"last block", EmissionBlocks - 1, 398_597_496},
		{"after 20 years", EmissionBlocks, 0},
		{"long after", 1 << 62, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Emission(tc.block); got != tc.want {
				t.Fatalf("Emission(%d) = %d, want %d", tc.block, got, tc.want)
			}
		})
	}
	// The twelve floors, done here step by step rather than by the package's loop.
	e := FirstEmission
	for range 12 {
		e = e * 989_849 / 1_000_000
	}
	if e != 4_040_017_705 {
		t.Fatalf("12 monthly floors give %d", e)
	}
}

func TestConstants(t *testing.T) {
	if LaunchSupply != 500_000_000_000_000 || EmissionCap != 300_000_000_000_000 || TotalCap != 800_000_000_000_000 {
		t.Fatalf("supply constants %d %d %d", LaunchSupply, EmissionCap, TotalCap)
	}
	if EmissionBlocks != 20*BlocksPerYear || BlocksPerYear != 12*BlocksPerMonth {
		t.Fatal("the calendar constants disagree")
	}
}

func TestCumulativeMatchesBruteForce(t *testing.T) {
	var sum iog.Amount
	check := func(n int64) {
		if got := Cumulative(n); got != min(sum, EmissionCap) {
			t.Fatalf("Cumulative(%d) = %d, brute force %d", n, got, sum)
		}
		if got, want := Capped(n), min(Emission(n), EmissionCap-min(sum, EmissionCap)); got != want {
			t.Fatalf("Capped(%d) = %d, want %d", n, got, want)
		}
	}
	// Every block of the first 3000 (four month boundaries), then all 175,200 at a stride.
	for n := int64(0); n < EmissionBlocks+10; n++ {
		if n < 3000 || n%997 == 0 || n%BlocksPerMonth == 0 || n >= EmissionBlocks-2 {
			check(n)
		}
		sum += Emission(n)
	}
	if Cumulative(-5) != 0 {
		t.Fatal("Cumulative before block 0 must be 0")
	}
}

func TestWholeSchedule(t *testing.T) {
	total := Cumulative(EmissionBlocks)
	// 730 x the sum of the 240 monthly rates is 1,061.068440 IO over the cap: the cap cuts it.
	if total != EmissionCap {
		t.Fatalf("20 years emit %d", total)
	}
	if Capped(EmissionBlocks-3) != 134_724_048 || Capped(EmissionBlocks-2) != 0 || Capped(EmissionBlocks-4) != Emission(EmissionBlocks-4) {
		t.Fatalf("the cap cuts %d %d %d", Capped(EmissionBlocks-4), Capped(EmissionBlocks-3), Capped(EmissionBlocks-2))
	}
	if total > EmissionCap {
		t.Fatalf("20 years emit %s, past the cap %s", total, EmissionCap)
	}
	if Cumulative(EmissionBlocks+1_000_000) != total || Cumulative(1<<62) != total {
		t.Fatal("cumulative emission grows after 20 years")
	}
	for _, n := range []int64{EmissionBlocks, EmissionBlocks + 1, 1 << 40} {
		if Emission(n) != 0 || Capped(n) != 0 {
			t.Fatalf("block %d emits %d (capped %d)", n, Emission(n), Capped(n))
		}
	}
	var minted iog.Amount
	for n := range int64(EmissionBlocks) {
		minted += Capped(n)
	}
	if minted != total {
		t.Fatalf("capped blocks mint %d, cumulative %d", minted, total)
	}
	if LaunchSupply+minted > TotalCap {
		t.Fatal("supply passes the total cap")
	}
}

// TestEmissionFactorMatchesIoNet: the monthly factor is the one io.net's published figures imply
// (300M IO in 240 months from 8% a year of 500M), to the six places the constant has, and the
// difference from 1 - 1.02% over 20 years is what docs/REWARDS.md says.
func TestEmissionFactorMatchesIoNet(t *testing.T) {
	// sum(k) = 730 x FirstEmission x (1 - k^240) / (1 - k), in exact rationals (no float).
	sum := func(num, den int64) *big.Rat {
		k := big.NewRat(num, den)
		pow := big.NewRat(1, 1)
		s := new(big.Rat)
		for range 240 {
			s.Add(s, pow)
			pow.Mul(pow, k)
		}
		return s.Mul(s, big.NewRat(int64(FirstEmission)*BlocksPerMonth, 1))
	}
	limit := new(big.Rat).SetInt64(int64(EmissionCap))
	lo, hi := sum(MonthlyKeep, KeepDenominator), sum(MonthlyKeep-1, KeepDenominator)
	// 0.989849 emits at least the cap, 0.989848 less: the factor that sums to the cap is in
	// between, so 0.989849 is it rounded to six places (0.98984895...).
	if lo.Cmp(limit) < 0 || hi.Cmp(limit) >= 0 {
		t.Fatalf("0.989849 sums to %s, 0.989848 to %s; the cap %s is not between", lo.FloatString(0), hi.FloatString(0), limit.FloatString(0))
	}
	// The old factor, with the package's floors: 1,106,618.973160 IO less over 20 years.
	e, old := FirstEmission, iog.Amount(0)
	for range 240 {
		old += e * BlocksPerMonth
		e = e * 9898 / 10000
	}
	if d := Cumulative(EmissionBlocks) - old; d != 1_106_618_973_160 {
		t.Fatalf("0.989849 emits %d more than 0.9898 over 20 years", d)
	}
}
