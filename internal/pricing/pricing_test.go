package pricing

import (
	"math"
	"math/big"
	"math/rand"
	"strings"
	"testing"

	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/iog"
)

// wantErr fails unless err is an EINVALID *iog.Error (want) or nil (!want).
func wantErr(t *testing.T, err error, want bool) {
	t.Helper()
	switch {
	case want && iog.ErrorCode(err) != iog.EINVALID:
		t.Fatalf("err = %v, want EINVALID", err)
	case !want && err != nil:
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestMulDiv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b, d int64
		r       rounding
		want    int64
		ok      bool
	}{
		{"exact", 6, 7, 2, down, 21, true},
		{"down drops the remainder", 7, 1, 2, down, 3, true},
		{"up takes any remainder", 7, 1, 3, up, 3, true},        // 2.33 -> 3
		{"up leaves an exact result", 9, 1, 3, up, 3, true},     // 3 -> 3
		{"half up below half", 4, 1, 10, halfUp, 0, true},       // 0.4 -> 0
		{"half up at half", 5, 1, 10, halfUp, 1, true},          // 0.5 -> 1
		{"half up odd divisor", 1, 1, 3, halfUp, 0, true},       // 0.33 -> 0
		{"half up odd divisor above", 2, 1, 3, halfUp, 1, true}, // 0.67 -> 1
		{"128-bit product", math.MaxInt64, 1000, 1000, down, math.MaxInt64, true},
		{"128-bit product rounds", math.MaxInt64, 3, 6, halfUp, math.MaxInt64/2 + 1, true}, // x.5 up
		{"quotient too large", math.MaxInt64, 2, 1, down, 0, false},
		{"rounding past the top", math.MaxInt64, 2, 2, up, math.MaxInt64, true},
		{"negative a", -1, 1, 1, down, 0, false},
		{"zero divisor", 1, 1, 0, down, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := mulDiv(tc.a, tc.b, tc.d, tc.r)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("mulDiv(%d, %d, %d, %d) = %d, %v; want %d, %v", tc.a, tc.b, tc.d, tc.r, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseCurrency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Currency
		err  bool
	}{
		{"io", IO, false}, {"IO", IO, false}, {" Usdc ", USDC, false}, {"USDC", USDC, false},
		{"usd", "", true}, {"", "", true}, {"sol", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCurrency(tc.in)
			wantErr(t, err, tc.err)
			if got != tc.want {
				t.Fatalf("ParseCurrency(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseCommitment(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Commitment
		err  bool
	}{
		{"hourly", Hourly, false}, {"Daily", Daily, false}, {" WEEKLY ", Weekly, false},
		{"monthly", "", true}, {"", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCommitment(tc.in)
			wantErr(t, err, tc.err)
			if got != tc.want {
				t.Fatalf("ParseCommitment(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClassTable(t *testing.T) {
	// The rows the design fixes; the others are filled in between them.
	fixed := map[string]struct{ mult, ref int64 }{
		"H100-80GB": {10000, 2_000_000}, "H100-94GB": {10000, 2_000_000}, "H200": {12000, 2_500_000},
		"B200": {15000, 3_500_000}, "GH200": {12000, 0}, "A100-80GB": {5000, 1_200_000},
		"A100-40GB": {4000, 900_000}, "H800-80GB": {9000, 0}, "A800-80GB": {4500, 0},
		"L40S": {3000, 800_000}, "L40": {2500, 0}, "RTX-A6000": {1800, 0}, "RTX-6000-ADA": {2500, 0},
		"RTX-5090": {2000, 0}, "RTX-4090": {1250, 350_000}, "RTX-4080": {900, 0},
		"RTX-3090": {800, 200_000}, "A10G": {700, 0}, "A10": {700, 0}, "L4": {600, 0},
		"T4": {300, 80_000}, "V100-32GB": {1000, 0}, "V100-16GB": {800, 0},
		UnknownModel: {250, 0}, "": {100, 20_000},
	}
	seen := map[string]bool{}
	for _, c := range Classes() {
		if seen[c.Model] {
			t.Errorf("model %q listed twice", c.Model)
		}
		seen[c.Model] = true
		if c.Multiplier <= 0 || c.RefPerHour <= 0 {
			t.Errorf("%q: multiplier %d, ref %s: both must be positive", c.Model, c.Multiplier, c.RefPerHour)
		}
		if f, ok := fixed[c.Model]; ok {
			if c.Multiplier != f.mult || (f.ref != 0 && int64(c.RefPerHour) != f.ref) {
				t.Errorf("%q = %d, %d; want %d, %d", c.Model, c.Multiplier, c.RefPerHour, f.mult, f.ref)
			}
		}
	}
	for m := range fixed {
		if !seen[m] {
			t.Errorf("model %q missing from the table", m)
		}
	}
	// Every class the worker can report has a row of its own, so none is priced as unknown.
	for _, m := range hwinfo.KnownModels() {
		if !seen[m] {
			t.Errorf("hwinfo reports %q but the class table has no row for it", m)
		}
	}
	c := Classes()
	c[0].Multiplier = 1
	if Classes()[0].Multiplier == 1 {
		t.Error("Classes returned the table itself, not a copy")
	}
}

func TestClassOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"H100-80GB", "H100-80GB"},
		{"h100-94gb", "H100-94GB"},
		{"H100", "H100-80GB"},     // family: both rows 10000, the first wins
		{"A100", "A100-40GB"},     // family: the lesser multiplier
		{"V100", "V100-16GB"},     // family: the lesser multiplier
		{"RTX-4080", "RTX-4080"},  // exact beats the SUPER it prefixes
		{"A10", "A10"},            // exact, though "A100" shares the letters
		{" T4 ", "T4"},            // spaces trimmed
		{"H100-80", UnknownModel}, // a prefix that stops mid-name is no family
		{"Z9000", UnknownModel},   // unlisted
		{"unknown", UnknownModel}, // the row's own name
		{"", ""},                  // CPU-only
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := ClassOf(tc.in).Model; got != tc.want {
				t.Fatalf("ClassOf(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAutoAsk(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model string
		gpus  int
		perf  int64
		want  iog.Amount
	}{
		{"8 x H100 at par", "H100", 8, 0, 16_000_000},           // 2.00 x 8
		{"4090 measured fast", "RTX-4090", 1, 1234, 431_900},    // 350_000 x 1.234
		{"B200 pair at 1.5", "B200", 2, 1500, 10_500_000},       // 3.50 x 2 x 1.5
		{"T4 at 0.333", "T4", 1, 333, 26_640},                   // 80_000 x 0.333
		{"CPU device", "", 0, 0, 20_000},                        // 0.02 per device-hour
		{"negatives mean one GPU at par", "T4", -3, -5, 80_000}, // max(gpus,1), perf unknown
		{"unknown GPU", "X1", 2, 1000, 100_000},                 // 0.05 x 2
		{"saturates on GPU count", "B200", math.MaxInt, 1000, math.MaxInt64},
		{"saturates on performance", "H100", 1, math.MaxInt64, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AutoAsk(tc.model, tc.gpus, tc.perf); got != tc.want {
				t.Fatalf("AutoAsk(%q, %d, %d) = %d, want %d", tc.model, tc.gpus, tc.perf, got, tc.want)
			}
		})
	}
}

func TestToCurrency(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usdc  iog.Amount
		c     Currency
		price iog.Amount
		want  iog.Amount
		err   bool
	}{
		{"USDC passes through", 1_234_567, USDC, 0, 1_234_567, false},
		{"IO at 2 USDC", 2_000_000, IO, 2_000_000, 1_000_000, false},
		{"IO at 1.5 USDC", 1_000_000, IO, 1_500_000, 666_667, false}, // 666_666.67 -> up
		{"IO below half", 1, IO, 3_000_000, 0, false},                // 0.333 -> 0
		{"IO at half", 2, IO, 4_000_000, 1, false},                   // 0.5 -> 1
		{"IO cheap", 1, IO, 1, 1_000_000, false},                     // 1 micro-USDC = 1 IO
		{"IO zero", 0, IO, 7, 0, false},
		{"IO overflow", math.MaxInt64, IO, 1, 0, true},
		{"IO without a price", 1, IO, 0, 0, true},
		{"IO negative price", 1, IO, -1, 0, true},
		{"negative amount", -1, USDC, 0, 0, true},
		{"unknown currency", 1, "EUR", 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ToCurrency(tc.usdc, tc.c, tc.price)
			wantErr(t, err, tc.err)
			if got != tc.want {
				t.Fatalf("ToCurrency(%d, %s, %d) = %d, want %d", tc.usdc, tc.c, tc.price, got, tc.want)
			}
		})
	}
}

func TestDemandFactor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		util, want int64
	}{
		{"below zero clamps", -5, 1000},
		{"idle", 0, 1000},
		{"one per mille", 1, 1000}, // 1/2000 floors to 0
		{"10%", 100, 1005},         // 10_000/2000
		{"50%", 500, 1125},         // 250_000/2000
		{"50.5%", 505, 1127},       // 255_025/2000 = 127.5 -> 127
		{"99.9%", 999, 1499},       // 998_001/2000 = 499.0 -> 499
		{"full", 1000, 1500},
		{"above full clamps", 5000, 1500},
		{"extreme clamps", math.MinInt64, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DemandFactor(tc.util); got != tc.want {
				t.Fatalf("DemandFactor(%d) = %d, want %d", tc.util, got, tc.want)
			}
		})
	}
}

func TestDiscount(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     Commitment
		hours int
		want  int64
		err   string
	}{
		{"hourly", Hourly, 1, 0, ""},
		{"daily at 24 h", Daily, 24, 50, ""},
		{"daily short", Daily, 23, 0, "a daily commitment needs at least 24 hours"},
		{"weekly at 168 h", Weekly, 168, 100, ""},
		{"weekly short", Weekly, 167, 0, "a weekly commitment needs at least 168 hours"},
		{"unknown", "monthly", 1000, 0, `unknown commitment "monthly": want hourly, daily or weekly`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Discount(tc.c, tc.hours)
			wantErr(t, err, tc.err != "")
			if tc.err != "" && iog.ErrorMessage(err) != tc.err {
				t.Fatalf("message %q, want %q", iog.ErrorMessage(err), tc.err)
			}
			if got != tc.want {
				t.Fatalf("Discount(%s, %d) = %d, want %d", tc.c, tc.hours, got, tc.want)
			}
		})
	}
}

func TestFees(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		amount               iog.Amount
		c                    Currency
		renterB, renterC     iog.Amount
		supplierB, supplierC iog.Amount
		err                  bool
	}{
		{"1 USDC", 1_000_000, USDC, 2_500, 20_000, 2_500, 20_000, false},
		{"1 IO", 1_000_000, IO, 2_500, 0, 2_500, 0, false},
		{"zero", 0, USDC, 0, 0, 0, 0, false},
		// 0.0025 and 0.02 micro-units round up to 1 each; the supplier's gross of 1 covers only the
		// booking fee, so the currency fee is cut to 0.
		{"one micro-unit USDC", 1, USDC, 1, 1, 1, 0, false},
		{"two micro-units USDC", 2, USDC, 1, 1, 1, 1, false},
		{"399 rounds up", 399, IO, 1, 0, 1, 0, false},                                       // 0.9975 -> 1
		{"400 is exact", 400, IO, 1, 0, 1, 0, false},                                        // 1.0
		{"401 rounds up", 401, IO, 2, 0, 2, 0, false},                                       // 1.0025 -> 2
		{"quote subtotal", 60_277_500, USDC, 150_694, 1_205_550, 150_694, 1_205_550, false}, // 150_693.75 -> up
		{"largest amount", math.MaxInt64, USDC, 23_058_430_092_136_940, 184_467_440_737_095_517, 23_058_430_092_136_940, 184_467_440_737_095_517, false},
		{"negative", -1, IO, 0, 0, 0, 0, true},
		{"unknown currency", 1, "EUR", 0, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, c, err := RenterFee(tc.amount, tc.c)
			wantErr(t, err, tc.err)
			if b != tc.renterB || c != tc.renterC {
				t.Errorf("RenterFee(%d, %s) = %d, %d; want %d, %d", tc.amount, tc.c, b, c, tc.renterB, tc.renterC)
			}
			b, c, err = SupplierFee(tc.amount, tc.c)
			wantErr(t, err, tc.err)
			if b != tc.supplierB || c != tc.supplierC {
				t.Errorf("SupplierFee(%d, %s) = %d, %d; want %d, %d", tc.amount, tc.c, b, c, tc.supplierB, tc.supplierC)
			}
		})
	}
}

func TestSupplierNetNeverNegative(t *testing.T) {
	for gross := iog.Amount(0); gross < 2000; gross++ {
		for _, c := range []Currency{IO, USDC} {
			b, f, err := SupplierFee(gross, c)
			if err != nil || b < 0 || f < 0 || gross-b-f < 0 {
				t.Fatalf("SupplierFee(%d, %s) = %d, %d, %v", gross, c, b, f, err)
			}
		}
	}
}

func TestPerMinute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perHour iog.Amount
		minute  int64
		want    iog.Amount
	}{
		{"60 per hour", 60, 7, 1},
		{"61: first minute", 61, 0, 1},  // floor(61/60) - 0
		{"61: second minute", 61, 1, 1}, // floor(122/60) - floor(61/60) = 2 - 1
		{"61: last minute", 61, 59, 2},  // 61 - floor(3599/60) = 61 - 59
		{"30: first minute", 30, 0, 0},  // floor(30/60)
		{"30: second minute", 30, 1, 1}, // floor(60/60) - floor(30/60)
		{"next hour repeats", 61, 60 + 59, 2},
		// MaxInt64 = 60*153722867280912930 + 7, minute 7 of its hour: floor(61*8/60) - floor(61*7/60) = 8 - 7.
		{"far future", 61, math.MaxInt64, 1},
		{"zero rate", 0, 5, 0},
		{"negative rate", -60, 5, 0},
		{"negative minute", 60, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PerMinute(tc.perHour, tc.minute); got != tc.want {
				t.Fatalf("PerMinute(%d, %d) = %d, want %d", tc.perHour, tc.minute, got, tc.want)
			}
		})
	}
}

func TestPerMinuteSumsToTheHour(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	rates := []iog.Amount{1, 59, 60, 61, 119, 2_137_500, 374_062, math.MaxInt64, math.MaxInt64 - 1}
	for range 200 {
		rates = append(rates, iog.Amount(rng.Int63n(1_000_000_000_000)))
	}
	hours := []int64{0, 1, 2, 8759, math.MaxInt64/60 - 1}
	for _, p := range rates {
		for _, h := range hours {
			var sum iog.Amount
			var lo, hi iog.Amount = math.MaxInt64, 0
			for m := range int64(60) {
				c := PerMinute(p, h*60+m)
				// The definition, in big integers.
				i := big.NewInt(h*60 + m)
				want := new(big.Int).Sub(
					new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(p)), new(big.Int).Add(i, big.NewInt(1))), big.NewInt(60)),
					new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(p)), i), big.NewInt(60)))
				if want.Int64() != int64(c) {
					t.Fatalf("PerMinute(%d, %d) = %d, want %s", p, h*60+m, c, want)
				}
				sum += c
				lo, hi = min(lo, c), max(hi, c)
			}
			if sum != p {
				t.Fatalf("rate %d, hour %d: minutes sum to %d", p, h, sum)
			}
			if hi-lo > 1 {
				t.Fatalf("rate %d: minutes range %d..%d", p, lo, hi)
			}
		}
	}
}

func TestPercentLabels(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{ppmPercent(BookingFeePPM), "0.25%"}, {ppmPercent(USDCFeePPM), "2%"}, {ppmPercent(1), "0.0001%"},
		{permillePercent(50), "5%"}, {permillePercent(100), "10%"}, {permillePercent(505), "50.5%"}, {permillePercent(0), "0%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		model   string
		mem     int64
		want    string
		unliste bool
		err     string
	}{
		{"H100-80GB", 81559, "H100-80GB", false, ""},
		{"NVIDIA H100 80GB HBM3", 81559, "H100-80GB", false, ""},
		{"H100-SXM5-80GB", 81559, "H100-80GB", false, ""},
		{"h100 nvl", 95830, "H100-94GB", false, ""},
		{"Tesla T4", 15360, "T4", false, ""},
		{"NVIDIA GeForce RTX 4090", 24564, "RTX-4090", false, ""},
		{"A100", 81920, "A100-80GB", false, ""}, // a family: the memory says which
		{"A100", 40536, "A100-40GB", false, ""},
		{"A100", 24000, "", false, "fits none of the A100 classes"},
		{"H200", 143771, "H200", false, ""},
		{"H100-80GB", 1024, "", false, "does not fit an H100-80GB"},
		{"H100-80GB", 3_623_963, "", false, "does not fit an H100-80GB"},
		{"H100-80GB-SXM", 81559, "H100-80GB-SXM", true, ""}, // not a spelling the table knows
		{"ACME X1", 16384, "ACME-X1", true, ""},
		{"ACME X1", 3_623_963, "", false, "unlisted"},
		{"UNKNOWN", 0, "UNKNOWN", true, ""},
		{"", 1024, "", false, "without a model"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			c, err := Resolve(tc.model, tc.mem)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Resolve(%q, %d) = %+v, %v; want an error with %q", tc.model, tc.mem, c, err, tc.err)
				}
				return
			}
			if err != nil || c.Model != tc.want || c.Unlisted != tc.unliste {
				t.Fatalf("Resolve(%q, %d) = %q unlisted=%v, %v; want %q unlisted=%v", tc.model, tc.mem, c.Model, c.Unlisted, err, tc.want, tc.unliste)
			}
			if c.Unlisted && c.Multiplier != ClassOf(UnknownModel).Multiplier {
				t.Fatalf("an unlisted model is priced as %d", c.Multiplier)
			}
		})
	}
	// Every class the worker reports resolves to itself with the memory of a real card.
	for _, m := range hwinfo.KnownModels() {
		c := ClassOf(m)
		if got, err := Resolve(m, (c.MinMemMiB+c.MaxMemMiB)/2); err != nil || got.Model != m {
			t.Errorf("Resolve(%q) = %q, %v", m, got.Model, err)
		}
		if c.MinMemMiB <= 0 || c.MaxMemMiB <= c.MinMemMiB {
			t.Errorf("%q has no memory range", m)
		}
	}
	for a, m := range aliases {
		if _, ok := listed(m); !ok {
			t.Errorf("alias %q names %q, which is not in the table", a, m)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"H100-80GB", "H100-80GB", true},
		{"H100-80GB", "h100-80gb", true},
		{"H100-94GB", "H100", true},
		{"A100-40GB", "A100", true},
		{"H100-80GB-SXM", "H100-80GB", false},
		{"H100-80GB-SXM", "H100", false},
		{"H100-80GB-SXM", "H100-80GB-SXM", true},
		{"RTX-4080-SUPER", "RTX-4080", false},
		{"A100-80GB", "A10", false},
		{"", "", false},
	} {
		if got := Matches(tc.have, tc.want); got != tc.ok {
			t.Errorf("Matches(%q, %q) = %v", tc.have, tc.want, got)
		}
	}
}
