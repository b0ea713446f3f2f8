package rewards

import (
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
		// 4_566_210_045 x 9898 / 10000 = 4_519_634_702.5... -> 4_519_634_702
		{"month 1", 730, 4_519_634_702},
		// Month 12 (the 13th month, a year in), flooring after each month:
		//   1 4_519_634_702   2 4_473_534_428   3 4_427_904_376   4 4_382_739_751
		//   5 4_338_035_805   6 4_293_787_839   7 4_249_991_203   8 4_206_641_292
		//   9 4_163_733_550  10 4_121_263_467  11 4_079_226_579  12 4_037_618_467
		{"month 12", 12 * 730, 4_037_618_467},
		{"month 11, last hour", 12*730 - 1, 4_079_226_579},
		{"last block", EmissionBlocks - 1, 393_909_323},
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
		e = e * 9898 / 10000
	}
	if e != 4_037_618_467 {
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
	// 730 x the sum of the 240 monthly rates.
	if total != 298_893_381_026_840 {
		t.Fatalf("20 years emit %d", total)
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
