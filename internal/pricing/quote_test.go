package pricing

import (
	"math"
	"math/big"
	"math/rand"
	"reflect"
	"strconv"
	"testing"

	"github.com/iognet/iog/internal/iog"
)

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   QuoteInput
		want Quote
	}{
		{
			// 2 devices, a day, half-busy class, paid in USDC.
			//   dev_a 2.000000 x 24 = 48_000_000; dev_b 0.350000 x 24 = 8_400_000; sum 56_400_000
			//   demand 1.125: 63_450_000, +7_050_000
			//   daily 5%: 63_450_000 x 0.05 = 3_172_500 off; subtotal 60_277_500
			//   booking 0.25%: 150_693.75 -> up 150_694; USDC 2%: 1_205_550; fees 1_356_244
			//   total 61_633_744
			//   shares: 60_277_500 x 48/56.4 = 51_300_000 and x 8.4/56.4 = 8_977_500 (exact)
			//   per hour: 51_300_000/24 = 2_137_500; 8_977_500/24 = 374_062.5 -> 374_062
			name: "USDC daily half-busy",
			in: QuoteInput{
				Devices: []DeviceAsk{
					{DeviceID: "dev_a", Model: "H100-80GB", GPUs: 1, AskPerHour: 2_000_000},
					{DeviceID: "dev_b", Model: "RTX-4090", GPUs: 1, AskPerHour: 350_000},
				},
				Hours: 24, Currency: USDC, Commitment: Daily, UtilPermille: 500,
			},
			want: Quote{
				Currency: USDC, Hours: 24, Commitment: Daily,
				Lines: []Line{
					{"dev_a: 2.000000/h x 24 h", "dev_a", 48_000_000},
					{"dev_b: 0.350000/h x 24 h", "dev_b", 8_400_000},
					{"demand factor 1.125 (GPU class 50% utilised)", "", 7_050_000},
					{"daily commitment discount 5%", "", -3_172_500},
					{"booking fee 0.25%", "", 150_694},
					{"USDC fee 2%", "", 1_205_550},
				},
				Subtotal: 60_277_500, Fees: 1_356_244, Total: 61_633_744,
				PerDevice: []DevicePrice{
					{"dev_a", 2_137_500, 51_300_000},
					{"dev_b", 374_062, 8_977_500},
				},
				DemandPermille: 1125, DiscountPermille: 50,
			},
		},
		{
			// 1 device, a week, idle class, paid in IO at 1.5 USDC.
			//   1.000000 USDC = 666_666.67 -> 666_667 micro-IO; x 168 = 112_000_056
			//   demand 1.000: +0
			//   weekly 10%: 11_200_005.6 -> 11_200_006 off; subtotal 100_800_050
			//   booking 0.25%: 252_000.125 -> up 252_001; no USDC fee; total 101_052_051
			//   per hour: 100_800_050/168 = 600_000.3 -> 600_000
			name: "IO weekly idle",
			in: QuoteInput{
				Devices: []DeviceAsk{{DeviceID: "dev_x", AskPerHour: 1_000_000}},
				Hours:   168, Currency: IO, Commitment: Weekly, IOPriceUSDC: 1_500_000,
			},
			want: Quote{
				Currency: IO, Hours: 168, Commitment: Weekly,
				Lines: []Line{
					{"dev_x: 0.666667/h x 168 h", "dev_x", 112_000_056},
					{"demand factor 1.000 (GPU class 0% utilised)", "", 0},
					{"weekly commitment discount 10%", "", -11_200_006},
					{"booking fee 0.25%", "", 252_001},
				},
				Subtotal: 100_800_050, Fees: 252_001, Total: 101_052_051,
				PerDevice:      []DevicePrice{{"dev_x", 600_000, 100_800_050}},
				DemandPermille: 1000, DiscountPermille: 100,
			},
		},
		{
			// Three 1-micro asks for an hour in a full class, no commitment given.
			//   sum 3; demand 1.5: 4.5 -> 5, +2; subtotal 5
			//   booking 0.0125 -> 1; USDC 0.1 -> 1; total 7
			//   shares floor(5/3) = 1 each, the remainder 2 to the first: 3, 1, 1
			name: "rounding remainder to the first device",
			in: QuoteInput{
				Devices: []DeviceAsk{{DeviceID: "d1", AskPerHour: 1}, {DeviceID: "d2", AskPerHour: 1}, {DeviceID: "d3", AskPerHour: 1}},
				Hours:   1, Currency: USDC, UtilPermille: 1000,
			},
			want: Quote{
				Currency: USDC, Hours: 1, Commitment: Hourly,
				Lines: []Line{
					{"d1: 0.000001/h x 1 h", "d1", 1},
					{"d2: 0.000001/h x 1 h", "d2", 1},
					{"d3: 0.000001/h x 1 h", "d3", 1},
					{"demand factor 1.500 (GPU class 100% utilised)", "", 2},
					{"booking fee 0.25%", "", 1},
					{"USDC fee 2%", "", 1},
				},
				Subtotal: 5, Fees: 2, Total: 7,
				PerDevice:      []DevicePrice{{"d1", 3, 3}, {"d2", 1, 1}, {"d3", 1, 1}},
				DemandPermille: 1500,
			},
		},
		{
			// Free devices still get a quote: every amount zero.
			name: "zero asks",
			in: QuoteInput{
				Devices: []DeviceAsk{{DeviceID: "d1"}, {DeviceID: "d2"}},
				Hours:   2, Currency: IO, Commitment: Hourly, UtilPermille: 505, IOPriceUSDC: 1,
			},
			want: Quote{
				Currency: IO, Hours: 2, Commitment: Hourly,
				Lines: []Line{
					{"d1: 0.000000/h x 2 h", "d1", 0},
					{"d2: 0.000000/h x 2 h", "d2", 0},
					{"demand factor 1.127 (GPU class 50.5% utilised)", "", 0},
					{"booking fee 0.25%", "", 0},
				},
				PerDevice:      []DevicePrice{{"d1", 0, 0}, {"d2", 0, 0}},
				DemandPermille: 1127,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compute(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Compute =\n%+v\nwant\n%+v", got, tc.want)
			}
			checkQuote(t, tc.in, got)
		})
	}
}

func TestComputeRejects(t *testing.T) {
	one := []DeviceAsk{{DeviceID: "d", AskPerHour: 1_000_000}}
	for _, tc := range []struct {
		name string
		in   QuoteInput
	}{
		{"no devices", QuoteInput{Hours: 1, Currency: USDC}},
		{"zero hours", QuoteInput{Devices: one, Hours: 0, Currency: USDC}},
		{"over a year", QuoteInput{Devices: one, Hours: 8761, Currency: USDC}},
		{"no currency", QuoteInput{Devices: one, Hours: 1}},
		{"unknown currency", QuoteInput{Devices: one, Hours: 1, Currency: "EUR"}},
		{"IO without a price", QuoteInput{Devices: one, Hours: 1, Currency: IO}},
		{"negative utilisation", QuoteInput{Devices: one, Hours: 1, Currency: USDC, UtilPermille: -1}},
		{"utilisation above 100%", QuoteInput{Devices: one, Hours: 1, Currency: USDC, UtilPermille: 1001}},
		{"daily too short", QuoteInput{Devices: one, Hours: 23, Currency: USDC, Commitment: Daily}},
		{"weekly too short", QuoteInput{Devices: one, Hours: 100, Currency: USDC, Commitment: Weekly}},
		{"unknown commitment", QuoteInput{Devices: one, Hours: 1, Currency: USDC, Commitment: "monthly"}},
		{"negative ask", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d", AskPerHour: -1}}, Hours: 1, Currency: USDC}},
		{"no device ID", QuoteInput{Devices: []DeviceAsk{{AskPerHour: 1}}, Hours: 1, Currency: USDC}},
		{"device twice", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d"}, {DeviceID: "d"}}, Hours: 1, Currency: USDC}},
		{"overflow: ask x hours", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d", AskPerHour: math.MaxInt64 / 2}}, Hours: 3, Currency: USDC}},
		{"overflow: sum of devices", QuoteInput{Devices: []DeviceAsk{{DeviceID: "a", AskPerHour: math.MaxInt64 / 2}, {DeviceID: "b", AskPerHour: math.MaxInt64 / 2}, {DeviceID: "c", AskPerHour: 2}}, Hours: 1, Currency: USDC}},
		{"overflow: demand", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d", AskPerHour: math.MaxInt64}}, Hours: 1, Currency: USDC, UtilPermille: 1000}},
		{"overflow: fees", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d", AskPerHour: math.MaxInt64}}, Hours: 1, Currency: USDC}},
		{"overflow: conversion to IO", QuoteInput{Devices: []DeviceAsk{{DeviceID: "d", AskPerHour: math.MaxInt64}}, Hours: 1, Currency: IO, IOPriceUSDC: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Compute(tc.in)
			wantErr(t, err, true)
			if !reflect.DeepEqual(q, Quote{}) {
				t.Fatalf("a failed quote must be empty, got %+v", q)
			}
		})
	}
}

// checkQuote asserts what holds of every quote, recomputing the money in big integers.
func checkQuote(t *testing.T, in QuoteInput, q Quote) {
	t.Helper()
	var lines, prepaid iog.Amount
	for i, l := range q.Lines {
		if l.Amount < 0 && !(q.DiscountPermille > 0 && i == len(in.Devices)+1) {
			t.Fatalf("line %d %q is negative", i, l.Label)
		}
		lines += l.Amount
	}
	if lines != q.Total {
		t.Fatalf("lines sum to %d, total %d", lines, q.Total)
	}
	if q.Subtotal+q.Fees != q.Total || q.Subtotal < 0 || q.Fees < 0 {
		t.Fatalf("subtotal %d + fees %d != total %d", q.Subtotal, q.Fees, q.Total)
	}
	b, c, err := RenterFee(q.Subtotal, in.Currency)
	if err != nil || b+c != q.Fees {
		t.Fatalf("fees %d, RenterFee says %d + %d (%v)", q.Fees, b, c, err)
	}
	if len(q.PerDevice) != len(in.Devices) {
		t.Fatalf("%d device prices for %d devices", len(q.PerDevice), len(in.Devices))
	}
	for i, d := range q.PerDevice {
		if d.DeviceID != in.Devices[i].DeviceID || d.Prepaid < 0 || d.PerHour < 0 {
			t.Fatalf("device %d: %+v", i, d)
		}
		accrued := d.PerHour * iog.Amount(q.Hours)
		if accrued > d.Prepaid || d.Prepaid-accrued >= iog.Amount(q.Hours) {
			t.Fatalf("device %s: %d/h x %d h against %d prepaid", d.DeviceID, d.PerHour, q.Hours, d.Prepaid)
		}
		prepaid += d.Prepaid
	}
	if prepaid != q.Subtotal {
		t.Fatalf("prepaid sums to %d, subtotal %d", prepaid, q.Subtotal)
	}

	// The subtotal again, as a reference in big integers, rounding halves up by hand.
	roundHalfUp := func(n, d *big.Int) *big.Int {
		q, r := new(big.Int).QuoRem(n, d, new(big.Int))
		if new(big.Int).Mul(r, big.NewInt(2)).Cmp(d) >= 0 {
			q.Add(q, big.NewInt(1))
		}
		return q
	}
	sum := new(big.Int)
	for _, d := range in.Devices {
		rate := big.NewInt(int64(d.AskPerHour))
		if in.Currency == IO {
			rate = roundHalfUp(new(big.Int).Mul(rate, big.NewInt(1_000_000)), big.NewInt(int64(in.IOPriceUSDC)))
		}
		sum.Add(sum, rate.Mul(rate, big.NewInt(int64(in.Hours))))
	}
	demanded := roundHalfUp(new(big.Int).Mul(sum, big.NewInt(DemandFactor(in.UtilPermille))), big.NewInt(1000))
	off := roundHalfUp(new(big.Int).Mul(demanded, big.NewInt(q.DiscountPermille)), big.NewInt(1000))
	if want := demanded.Sub(demanded, off); want.Cmp(big.NewInt(int64(q.Subtotal))) != 0 {
		t.Fatalf("subtotal %d, reference %s", q.Subtotal, want)
	}
}

// TestComputeRandom checks the invariants on many seeded random quotes.
func TestComputeRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	commits := []Commitment{"", Hourly, Daily, Weekly}
	ok := 0
	for range 20_000 {
		in := QuoteInput{
			Hours:        1 + rng.Intn(MaxHours),
			Currency:     []Currency{IO, USDC}[rng.Intn(2)],
			Commitment:   commits[rng.Intn(len(commits))],
			UtilPermille: rng.Int63n(1001),
			IOPriceUSDC:  1 + iog.Amount(rng.Int63n(10_000_000)),
		}
		for i := range 1 + rng.Intn(8) {
			ask := iog.Amount(rng.Int63n(5_000_000))
			if rng.Intn(10) == 0 {
				ask = iog.Amount(rng.Int63n(math.MaxInt64 / 10_000))
			}
			in.Devices = append(in.Devices, DeviceAsk{DeviceID: "dev_" + strconv.Itoa(i), AskPerHour: ask})
		}
		q, err := Compute(in)
		if err != nil {
			if iog.ErrorCode(err) != iog.EINVALID {
				t.Fatalf("%+v: %v", in, err)
			}
			continue
		}
		ok++
		checkQuote(t, in, q)
	}
	if ok < 10_000 {
		t.Fatalf("only %d of 20000 random quotes were valid; the generator is off", ok)
	}
}

func FuzzCompute(f *testing.F) {
	f.Add(int64(2_000_000), int64(350_000), int64(0), uint8(2), 24, true, uint8(2), int64(500), int64(0))
	f.Add(int64(1_000_000), int64(0), int64(0), uint8(1), 168, false, uint8(3), int64(0), int64(1_500_000))
	f.Add(int64(1), int64(1), int64(1), uint8(3), 1, true, uint8(0), int64(1000), int64(0))
	f.Add(int64(math.MaxInt64), int64(-1), int64(7), uint8(3), 8760, false, uint8(9), int64(-3), int64(1))
	f.Fuzz(func(t *testing.T, a, b, c int64, n uint8, hours int, usdc bool, commit uint8, util, price int64) {
		in := QuoteInput{
			Hours: hours, Currency: IO, UtilPermille: util, IOPriceUSDC: iog.Amount(price),
			Commitment: []Commitment{"", Hourly, Daily, Weekly, "monthly"}[int(commit)%5],
		}
		if usdc {
			in.Currency = USDC
		}
		for i, ask := range []int64{a, b, c}[:int(n)%4] {
			in.Devices = append(in.Devices, DeviceAsk{DeviceID: "dev_" + strconv.Itoa(i), AskPerHour: iog.Amount(ask)})
		}
		q, err := Compute(in)
		if err != nil {
			if iog.ErrorCode(err) != iog.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		checkQuote(t, in, q)
	})
}
