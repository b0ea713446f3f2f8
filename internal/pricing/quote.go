package pricing

import (
	"fmt"

	"github.com/iognet/iog/internal/iog"
)

// MaxHours is the longest a single quote may run: one year.
const MaxHours = 8760

// DeviceAsk is one device offered to a quote.
type DeviceAsk struct {
	DeviceID   string
	Model      string
	GPUs       int
	AskPerHour iog.Amount // the whole device for one hour, in USDC micro-units
}

// QuoteInput is everything a quote depends on; the same input always gives the same quote.
type QuoteInput struct {
	Devices      []DeviceAsk
	Hours        int
	Currency     Currency
	Commitment   Commitment // "" is Hourly
	UtilPermille int64      // utilisation of the GPU class, 0..1000
	IOPriceUSDC  iog.Amount // micro-USDC per IO; needed only when Currency is IO
}

// Line is one line of a quote, in the quote currency. A quote's lines sum to its Total exactly.
type Line struct {
	Label    string
	DeviceID string `json:",omitempty"`
	Amount   iog.Amount
}

// DevicePrice is one device's part of a quote, for escrow and per-minute settlement.
type DevicePrice struct {
	DeviceID string
	// PerHour is the device's effective rate after demand and discount, floor(Prepaid / Hours), so
	// that accruing PerHour for every hour of the term never exceeds Prepaid. The rest, fewer than
	// Hours micro-units, stays in escrow for settlement to pay out or return at the end.
	PerHour iog.Amount
	// Prepaid is the device's share of the quote's Subtotal; the shares sum to Subtotal exactly.
	Prepaid iog.Amount
}

// Quote is the price of a cluster, line by line.
type Quote struct {
	Currency   Currency
	Hours      int
	Commitment Commitment
	// Lines, in order: one per device (ask x hours), the demand increase, the commitment discount
	// (negative; only when there is one), the booking fee, the USDC fee (only in USDC).
	Lines                            []Line
	Subtotal                         iog.Amount // after demand and discount, before fees
	Fees                             iog.Amount
	Total                            iog.Amount // Subtotal + Fees = the sum of Lines
	PerDevice                        []DevicePrice
	DemandPermille, DiscountPermille int64
}

// Compute prices a cluster. In order:
//
//  1. each device's ask is converted to the quote currency (ToCurrency: halves up) and multiplied
//     by the hours: one line per device, in the order given;
//  2. the demand factor D = DemandFactor(UtilPermille) raises their sum B to round(B x D / 1000)
//     (halves up); the line is the increase;
//  3. the commitment discount P takes round(A x P / 1000) (halves up) off that amount A; the line
//     is negative; what is left is the Subtotal;
//  4. the renter's fees (RenterFee: each rounded up) are added to give the Total.
//
// The Subtotal is split across devices in proportion to their lines, each share floored and the
// remainder given to the first device. Any result that does not fit in an Amount is an EINVALID
// error.
func Compute(in QuoteInput) (Quote, error) {
	if len(in.Devices) == 0 {
		return Quote{}, iog.Errorf(iog.EINVALID, "a quote needs at least one device")
	}
	if in.Hours < 1 || in.Hours > MaxHours {
		return Quote{}, iog.Errorf(iog.EINVALID, "hours must be 1 to %d, got %d", MaxHours, in.Hours)
	}
	if !in.Currency.valid() {
		return Quote{}, iog.Errorf(iog.EINVALID, "unknown currency %q: want IO or USDC", string(in.Currency))
	}
	if in.Currency == IO && in.IOPriceUSDC <= 0 {
		return Quote{}, iog.Errorf(iog.EINVALID, "the IO price must be above zero to quote in IO, got %s USDC", in.IOPriceUSDC)
	}
	if in.UtilPermille < 0 || in.UtilPermille > 1000 {
		return Quote{}, iog.Errorf(iog.EINVALID, "utilisation must be 0 to 1000 per mille, got %d", in.UtilPermille)
	}
	commit := in.Commitment
	if commit == "" {
		commit = Hourly
	}
	disc, err := Discount(commit, in.Hours)
	if err != nil {
		return Quote{}, err
	}
	q := Quote{
		Currency: in.Currency, Hours: in.Hours, Commitment: commit,
		DemandPermille: DemandFactor(in.UtilPermille), DiscountPermille: disc,
	}

	seen := make(map[string]bool, len(in.Devices))
	base := make([]iog.Amount, len(in.Devices))
	var sum iog.Amount
	for i, d := range in.Devices {
		if d.DeviceID == "" {
			return Quote{}, iog.Errorf(iog.EINVALID, "device %d has no ID", i+1)
		}
		if seen[d.DeviceID] {
			return Quote{}, iog.Errorf(iog.EINVALID, "device %s is in the quote twice", d.DeviceID)
		}
		seen[d.DeviceID] = true
		if d.AskPerHour < 0 {
			return Quote{}, iog.Errorf(iog.EINVALID, "device %s asks a negative price %s", d.DeviceID, d.AskPerHour)
		}
		rate, err := ToCurrency(d.AskPerHour, in.Currency, in.IOPriceUSDC)
		if err != nil {
			return Quote{}, err
		}
		if base[i], err = rate.Mul(int64(in.Hours)); err != nil {
			return Quote{}, overflow("device " + d.DeviceID + "'s price")
		}
		if sum, err = add("the quote", sum, base[i]); err != nil {
			return Quote{}, err
		}
		q.Lines = append(q.Lines, Line{
			Label:    fmt.Sprintf("%s: %s/h x %d h", d.DeviceID, rate, in.Hours),
			DeviceID: d.DeviceID, Amount: base[i],
		})
	}

	demanded, ok := mulDiv(int64(sum), q.DemandPermille, 1000, halfUp)
	if !ok {
		return Quote{}, overflow("the quote")
	}
	q.Lines = append(q.Lines, Line{
		Label:  fmt.Sprintf("demand factor %d.%03d (GPU class %s utilised)", q.DemandPermille/1000, q.DemandPermille%1000, permillePercent(in.UtilPermille)),
		Amount: iog.Amount(demanded) - sum,
	})
	off, _ := mulDiv(demanded, disc, 1000, halfUp) // disc <= 1000, so it fits
	if disc > 0 {
		q.Lines = append(q.Lines, Line{
			Label:  fmt.Sprintf("%s commitment discount %s", commit, permillePercent(disc)),
			Amount: -iog.Amount(off),
		})
	}
	q.Subtotal = iog.Amount(demanded - off)

	booking, currencyFee, err := RenterFee(q.Subtotal, in.Currency)
	if err != nil {
		return Quote{}, err
	}
	q.Lines = append(q.Lines, Line{Label: "booking fee " + ppmPercent(BookingFeePPM), Amount: booking})
	if in.Currency == USDC {
		q.Lines = append(q.Lines, Line{Label: "USDC fee " + ppmPercent(USDCFeePPM), Amount: currencyFee})
	}
	if q.Fees, err = add("the fees", booking, currencyFee); err != nil {
		return Quote{}, err
	}
	if q.Total, err = add("the quote's total", q.Subtotal, q.Fees); err != nil {
		return Quote{}, err
	}

	q.PerDevice = make([]DevicePrice, len(in.Devices))
	var shared iog.Amount
	for i, d := range in.Devices {
		var share int64
		if sum > 0 {
			share, _ = mulDiv(int64(q.Subtotal), int64(base[i]), int64(sum), down) // base[i] <= sum: fits
		}
		q.PerDevice[i] = DevicePrice{DeviceID: d.DeviceID, Prepaid: iog.Amount(share)}
		shared += iog.Amount(share) // <= Subtotal
	}
	q.PerDevice[0].Prepaid += q.Subtotal - shared
	for i := range q.PerDevice {
		q.PerDevice[i].PerHour = q.PerDevice[i].Prepaid / iog.Amount(in.Hours)
	}
	return q, nil
}

// PerMinute is what the minute with this 0-based index of a cluster's life costs at perHour:
// floor(perHour*(i+1)/60) - floor(perHour*i/60). Every run of 60 minutes starting at a multiple
// of 60 sums to perHour exactly, and no minute differs from another by more than one micro-unit.
// It is computed without overflow for any index; a negative rate or index costs nothing.
func PerMinute(perHour iog.Amount, minuteIndex int64) iog.Amount {
	if perHour <= 0 || minuteIndex < 0 {
		return 0
	}
	// With perHour = 60a + b and i = 60q + r, the difference is a + floor(b(r+1)/60) - floor(br/60):
	// the whole-hour parts cancel, and b(r+1) < 3600 cannot overflow.
	a, b := int64(perHour)/60, int64(perHour)%60
	r := minuteIndex % 60
	return iog.Amount(a + b*(r+1)/60 - b*r/60)
}
