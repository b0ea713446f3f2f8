package rewards

import (
	"math"
	"math/big"
	"math/rand"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/iognet/iog/internal/iog"
)

func TestTierFactor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"low", 800, false}, {"standard", 1000, false}, {"High", 1200, false}, {" ULTRA ", 1500, false},
		{"", 1000, false}, {"premium", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := TierFactor(tc.in)
			if (err != nil) != tc.err || (err != nil && iog.ErrorCode(err) != iog.EINVALID) || got != tc.want {
				t.Fatalf("TierFactor(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestScore(t *testing.T) {
	base := Input{DeviceID: "d", Model: "H100-80GB", GPUs: 1, Tier: "standard", ReputationPermille: 1000}
	with := func(f func(*Input)) Input { in := base; f(&in); return in }
	for _, tc := range []struct {
		name       string
		in         Input
		mult       int64
		hire, want int64
		err        bool
	}{
		// 10000 x 1 x 1000 x 1000 x 1000 = 10^13: 10 points
		{"idle H100", base, 10000, 1000, 10_000_000_000_000, false},
		// hired all hour doubles it
		{"hired all hour", with(func(in *Input) { in.HiredSeconds = 3600 }), 10000, 2000, 20_000_000_000_000, false},
		// 1000 + 1000 x 1 / 3600 floors to 1000
		{"hired a second", with(func(in *Input) { in.HiredSeconds = 1 }), 10000, 1000, 10_000_000_000_000, false},
		// 1000 + 1000 x 1799 / 3600 = 1000 + 499.7 -> 1499
		{"hired 1799 s", with(func(in *Input) { in.HiredSeconds = 1799 }), 10000, 1499, 14_990_000_000_000, false},
		// 100 x max(0,1) x 800 x 1000 x 500 = 4 x 10^10
		{"CPU, low tier, half reputation", with(func(in *Input) { in.Model, in.GPUs, in.Tier, in.ReputationPermille = "", 0, "low", 500 }), 100, 1000, 40_000_000_000, false},
		// 15000 x 8 x 1500 x 2000 x 1000 = 3.6 x 10^14
		{"8 B200 ultra hired", with(func(in *Input) { in.GPUs, in.Tier, in.HiredSeconds = 8, "ultra", 3600 }), 15000, 2000, 360_000_000_000_000, false},
		{"empty tier is standard", with(func(in *Input) { in.Tier = "" }), 10000, 1000, 10_000_000_000_000, false},
		{"zero reputation scores zero", with(func(in *Input) { in.ReputationPermille = 0 }), 10000, 1000, 0, false},
		{"no device", with(func(in *Input) { in.DeviceID = "" }), 10000, 0, 0, true},
		{"zero multiplier", base, 0, 0, 0, true},
		{"negative GPUs", with(func(in *Input) { in.GPUs = -1 }), 10000, 0, 0, true},
		{"hired past the hour", with(func(in *Input) { in.HiredSeconds = 3601 }), 10000, 0, 0, true},
		{"hired negative", with(func(in *Input) { in.HiredSeconds = -1 }), 10000, 0, 0, true},
		{"reputation over 1000", with(func(in *Input) { in.ReputationPermille = 1001 }), 10000, 0, 0, true},
		{"reputation negative", with(func(in *Input) { in.ReputationPermille = -1 }), 10000, 0, 0, true},
		{"unknown tier", with(func(in *Input) { in.Tier = "gold" }), 10000, 0, 0, true},
		{"overflow", with(func(in *Input) { in.GPUs = math.MaxInt32 }), math.MaxInt32, 0, 0, true},
		{"overflow at the last factor", with(func(in *Input) { in.GPUs = 1 << 20; in.HiredSeconds = 3600 }), 1 << 20, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Score(tc.in, tc.mult)
			if tc.err {
				if iog.ErrorCode(err) != iog.EINVALID || !reflect.DeepEqual(s, Share{}) {
					t.Fatalf("Score = %+v, %v; want an EINVALID error", s, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Score != tc.want || s.HirePermille != tc.hire || s.MultiplierPermille != tc.mult || s.Input != tc.in {
				t.Fatalf("Score = %+v; want score %d, hire %d", s, tc.want, tc.hire)
			}
		})
	}
}

func TestDistribute(t *testing.T) {
	shares := []Share{
		{Input: Input{DeviceID: "c"}, Score: 1},
		{Input: Input{DeviceID: "a"}, Score: 1},
		{Input: Input{DeviceID: "b"}, Score: 2},
		{Input: Input{DeviceID: "z"}, Score: 0},
		{Input: Input{DeviceID: "y"}, Score: -5, Reward: 99},
	}
	for _, tc := range []struct {
		name     string
		emission iog.Amount
		shares   []Share
		rewards  map[string]iog.Amount
		minted   iog.Amount
	}{
		// 10 x 1/4 = 2.5 -> 2; 10 x 2/4 = 5; the zero and negative scores get nothing; dust 1
		{"proportional, floored", 10, shares, map[string]iog.Amount{"a": 2, "b": 5, "c": 2, "y": 0, "z": 0}, 9},
		{"exact", 4_000, shares, map[string]iog.Amount{"a": 1000, "b": 2000, "c": 1000, "y": 0, "z": 0}, 4_000},
		{"no shares", 10, nil, map[string]iog.Amount{}, 0},
		{"no score", 10, shares[3:], map[string]iog.Amount{"y": 0, "z": 0}, 0},
		{"no emission", 0, shares, map[string]iog.Amount{"a": 0, "b": 0, "c": 0, "y": 0, "z": 0}, 0},
		{"negative emission", -7, shares, map[string]iog.Amount{"a": 0, "b": 0, "c": 0, "y": 0, "z": 0}, 0},
		// emission x score needs 125 bits here
		{"huge", math.MaxInt64, []Share{{Input: Input{DeviceID: "a"}, Score: math.MaxInt64}, {Input: Input{DeviceID: "b"}, Score: math.MaxInt64}},
			map[string]iog.Amount{"a": math.MaxInt64 / 2, "b": math.MaxInt64 / 2}, math.MaxInt64 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.shares)
			b := Distribute(7, tc.emission, tc.shares)
			if !reflect.DeepEqual(in, tc.shares) {
				t.Fatal("Distribute changed its argument")
			}
			if b.Number != 7 || b.Emission != max(tc.emission, 0) || b.Minted != tc.minted || b.Dust != b.Emission-b.Minted {
				t.Fatalf("block %+v; want minted %d", b, tc.minted)
			}
			if len(b.Shares) != len(tc.rewards) {
				t.Fatalf("%d shares, want %d", len(b.Shares), len(tc.rewards))
			}
			for i, s := range b.Shares {
				if i > 0 && b.Shares[i-1].DeviceID > s.DeviceID {
					t.Fatalf("shares not sorted: %q before %q", b.Shares[i-1].DeviceID, s.DeviceID)
				}
				if s.Reward != tc.rewards[s.DeviceID] {
					t.Errorf("%s gets %d, want %d", s.DeviceID, s.Reward, tc.rewards[s.DeviceID])
				}
			}
		})
	}
}

// checkBlock asserts what holds of every distribution, recomputing each reward in big integers.
func checkBlock(t *testing.T, emission iog.Amount, shares []Share, b Block) {
	t.Helper()
	total := new(big.Int)
	for _, s := range shares {
		total.Add(total, big.NewInt(max(s.Score, 0)))
	}
	var minted iog.Amount
	for _, s := range b.Shares {
		want := new(big.Int)
		if total.Sign() > 0 && s.Score > 0 && emission > 0 {
			want.Quo(want.Mul(big.NewInt(int64(emission)), big.NewInt(s.Score)), total)
		}
		if s.Reward < 0 || want.Cmp(big.NewInt(int64(s.Reward))) != 0 {
			t.Fatalf("%s: reward %d, want %s", s.DeviceID, s.Reward, want)
		}
		minted += s.Reward
	}
	if minted != b.Minted || b.Minted < 0 || b.Minted > max(emission, 0) || b.Dust != b.Emission-b.Minted || b.Dust < 0 {
		t.Fatalf("emission %d, minted %d (rewards %d), dust %d", emission, b.Minted, minted, b.Dust)
	}
	// Fewer than one micro-IO per scoring device is lost to flooring.
	if total.Sign() > 0 && emission > 0 && b.Dust >= iog.Amount(len(shares)) {
		t.Fatalf("dust %d for %d shares", b.Dust, len(shares))
	}
}

func TestDistributeRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for range 2_000 {
		var shares []Share
		for i := range rng.Intn(50) {
			in := Input{
				DeviceID: "dev_" + strconv.Itoa(rng.Intn(1000)) + "_" + strconv.Itoa(i), GPUs: rng.Intn(9),
				Tier:         []string{"low", "standard", "high", "ultra", ""}[rng.Intn(5)],
				HiredSeconds: rng.Int63n(3601), ReputationPermille: rng.Int63n(1001),
			}
			s, err := Score(in, []int64{100, 300, 1250, 5000, 10000, 15000}[rng.Intn(6)])
			if err != nil {
				t.Fatal(err)
			}
			shares = append(shares, s)
		}
		emission := Capped(rng.Int63n(EmissionBlocks + 100))
		b := Distribute(1, emission, shares)
		checkBlock(t, emission, shares, b)
		// Any order in gives the same block out.
		shuffled := slices.Clone(shares)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Distribute(1, emission, shuffled); !reflect.DeepEqual(again, b) {
			t.Fatal("Distribute depends on the order of its input")
		}
	}
}

func FuzzDistribute(f *testing.F) {
	f.Add(int64(4_566_210_045), int64(1), int64(2), int64(3), uint8(3))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), uint8(3))
	f.Add(int64(10), int64(-1), int64(0), int64(5), uint8(2))
	f.Fuzz(func(t *testing.T, emission, a, b, c int64, n uint8) {
		var shares []Share
		for i, s := range []int64{a, b, c}[:int(n)%4] {
			shares = append(shares, Share{Input: Input{DeviceID: "d" + strconv.Itoa(2-i)}, Score: s})
		}
		checkBlock(t, iog.Amount(emission), shares, Distribute(0, iog.Amount(emission), shares))
	})
}
