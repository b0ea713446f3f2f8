package rewards

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// classRow is how docs/REWARDS.md lists a class.
func classRow(c pricing.Class) string {
	name := "`" + c.Model + "`"
	if c.Model == "" {
		name = "CPU only (no GPU)"
	}
	return fmt.Sprintf("| %s | %d | %d.%03d | %s |", name, c.Multiplier, c.Multiplier/1000, c.Multiplier%1000, c.RefPerHour)
}

// inIO writes micro-IO as IO with thousands separated: 4566210045 is "4,566.210045".
func inIO(a int64) string {
	s := fmt.Sprintf("%d.%06d", a/1_000_000, a%1_000_000)
	whole, frac := s[:len(s)-7], s[len(s)-7:]
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	return whole + frac
}

// grouped writes an integer with thousands separated.
func grouped(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// workedExample is the block of the worked example in docs/REWARDS.md.
func workedExample(t *testing.T) Block {
	t.Helper()
	var shares []Share
	for _, in := range []Input{
		{DeviceID: "dev_b", Model: "RTX-4090", GPUs: 1, Tier: "standard", HiredSeconds: 1800, ReputationPermille: 900},
		{DeviceID: "dev_a", Model: "H100-80GB", GPUs: 8, Tier: "high", HiredSeconds: 3600, ReputationPermille: 1000},
		{DeviceID: "dev_d", Model: "", GPUs: 0, Tier: "standard", HiredSeconds: 900, ReputationPermille: 1000},
		{DeviceID: "dev_c", Model: "A100-80GB", GPUs: 2, Tier: "low", HiredSeconds: 0, ReputationPermille: 1000},
	} {
		s, err := Score(in, pricing.ClassOf(in.Model).Multiplier)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	return Distribute(0, Capped(0), shares)
}

func TestWorkedExample(t *testing.T) {
	b := workedExample(t)
	// By hand: the scores are 192, 1.6875, 8 and 0.125 points (x 10^12), 201.8125 in all, and
	// 4_566_210_045 x points / 201.8125, floored:
	//   dev_a 4_344_192_399.58 -> 4_344_192_399    dev_b 38_181_378.51 -> 38_181_378
	//   dev_c   181_008_016.65 ->   181_008_016    dev_d  2_828_250.26 ->  2_828_250
	want := []struct {
		id     string
		score  int64
		reward iog.Amount
	}{
		{"dev_a", 192_000_000_000_000, 4_344_192_399},
		{"dev_b", 1_687_500_000_000, 38_181_378},
		{"dev_c", 8_000_000_000_000, 181_008_016},
		{"dev_d", 125_000_000_000, 2_828_250},
	}
	if b.Emission != 4_566_210_045 || b.Minted != 4_566_210_043 || b.Dust != 2 || len(b.Shares) != len(want) {
		t.Fatalf("block %+v", b)
	}
	for i, w := range want {
		if s := b.Shares[i]; s.DeviceID != w.id || s.Score != w.score || s.Reward != w.reward {
			t.Errorf("share %d = %s score %d reward %d; want %s %d %d", i, s.DeviceID, s.Score, s.Reward, w.id, w.score, w.reward)
		}
	}
}

// TestDocsMatchCode holds docs/REWARDS.md to the code: every figure it shows is recomputed here.
func TestDocsMatchCode(t *testing.T) {
	raw, err := os.ReadFile("../../docs/REWARDS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var want []string
	for _, c := range pricing.Classes() {
		want = append(want, classRow(c))
	}
	for _, m := range []int64{0, 1, 2, 12, 24, 60, 120, 180, 239} {
		n := m * BlocksPerMonth
		want = append(want, fmt.Sprintf("| %d | %s | %s | %s ", m, grouped(n), inIO(int64(Emission(n))), inIO(int64(Emission(n))*BlocksPerMonth)))
	}
	for _, y := range []int64{1, 2, 5, 10, 15, 20} {
		n := y * BlocksPerYear
		c := Cumulative(n)
		want = append(want, fmt.Sprintf("| %d | %s | %s | %s |", y, grouped(n), inIO(int64(c)), inIO(int64(LaunchSupply+c))))
	}
	total := Cumulative(EmissionBlocks)
	var uncapped iog.Amount
	for m := int64(0); m < EmissionBlocks/BlocksPerMonth; m++ {
		uncapped += Emission(m*BlocksPerMonth) * BlocksPerMonth
	}
	want = append(want,
		"**"+inIO(int64(FirstEmission))+" IO**",
		"The schedule sums to "+inIO(int64(total))+" IO",
		"The uncapped schedule sums to "+inIO(int64(uncapped))+" IO",
		"the cut takes\n  "+inIO(int64(uncapped-EmissionCap))+" IO off the end",
		"block 175,197 mints "+inIO(int64(Capped(EmissionBlocks-3)))+" IO instead of "+inIO(int64(Emission(EmissionBlocks-3))),
		"| Supply at launch (`LaunchSupply`) | "+grouped(int64(LaunchSupply/iog.Unit))+" |",
		"| Emitted by blocks, at most (`EmissionCap`) | "+grouped(int64(EmissionCap/iog.Unit))+" |",
		"| Total cap (`TotalCap`) | "+grouped(int64(TotalCap/iog.Unit))+" |",
	)
	b := workedExample(t)
	var sum int64
	for _, s := range b.Shares {
		sum += s.Score
		want = append(want,
			fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s |", s.DeviceID, s.MultiplierPermille, max(s.GPUs, 1), s.TierPermille, s.HirePermille, s.ReputationPermille, grouped(s.Score)),
			fmt.Sprintf("| %s | %s |", grouped(int64(s.Reward)), inIO(int64(s.Reward))))
	}
	want = append(want,
		"**"+grouped(sum)+"**",
		"so the emission is "+inIO(int64(b.Emission))+" IO = "+grouped(int64(b.Emission))+" micro-IO",
		fmt.Sprintf("Minted: %s micro-IO; dust: %d micro-IO.", grouped(int64(b.Minted)), b.Dust),
	)
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/REWARDS.md does not say %q", w)
		}
	}
}
