package pricing

import (
	"fmt"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Fees in parts per million of the amount they are charged on (docs/DESIGN.md §5). Fee revenue goes to
// the treasury, which buys back and burns IO.
const (
	BookingFeePPM = 2_500  // 0.25%, charged to the renter and, separately, to the supplier
	USDCFeePPM    = 20_000 // 2%, on top, when paying or being paid in USDC; 0 in IO
)

// Commitment discounts in per-mille and the hours each needs.
const (
	DailyDiscount  = 50  // 5%
	WeeklyDiscount = 100 // 10%
	DailyHours     = 24
	WeeklyHours    = 168
)

// DemandFactor is the price factor in per-mille for a GPU class whose utilisation (hired over
// ready plus hired) is utilPermille: 1000 + u*u/2000, floored, with u clamped to 0..1000. An idle
// class is 1000 (1.0), half busy 1125 (1.125), fully busy 1500 (1.5): the price climbs slowly
// while there is slack and fast as the class fills.
func DemandFactor(utilPermille int64) int64 {
	u := min(max(utilPermille, 0), 1000)
	return 1000 + u*u/2000
}

// Discount is the commitment discount in per-mille for a cluster booked for hours.
func Discount(c Commitment, hours int) (int64, error) {
	switch c {
	case Hourly:
		return 0, nil
	case Daily:
		if hours < DailyHours {
			return 0, iog.Errorf(iog.EINVALID, "a daily commitment needs at least %d hours", DailyHours)
		}
		return DailyDiscount, nil
	case Weekly:
		if hours < WeeklyHours {
			return 0, iog.Errorf(iog.EINVALID, "a weekly commitment needs at least %d hours", WeeklyHours)
		}
		return WeeklyDiscount, nil
	}
	return 0, iog.Errorf(iog.EINVALID, "unknown commitment %q: want hourly, daily or weekly", string(c))
}

// RenterFee is what the renter pays on top of a quote's subtotal: the booking fee and, in USDC,
// the currency fee. Each is rounded up to the micro-unit, so a fee is never below its rate.
func RenterFee(subtotal iog.Amount, c Currency) (booking, currencyFee iog.Amount, err error) {
	return fees(subtotal, c)
}

// SupplierFee is what is kept from a supplier's gross earnings: the booking fee and, when paid in
// USDC, the currency fee, each rounded up to the micro-unit. The supplier is paid
// gross - booking - currencyFee. Rounding two fees up could take more than a gross of one
// micro-unit, so the currency fee is cut to what the booking fee leaves: the net is never negative.
func SupplierFee(gross iog.Amount, c Currency) (booking, currencyFee iog.Amount, err error) {
	if booking, currencyFee, err = fees(gross, c); err != nil {
		return 0, 0, err
	}
	return booking, min(currencyFee, gross-booking), nil
}

// SupplierFeeStep is the supplier's fee on one settlement of a lease: the fee on everything
// settled so far (before + amount) less the fee on what was settled before, at the combined
// published rate (0.25%, 2.25% in USDC), each rounded up. Over a lease the fees therefore add
// up to its total gross at the published rate, rounded up once, however it was cut into
// settlements; and one step never takes more than its amount.
func SupplierFeeStep(before, amount iog.Amount, c Currency) (iog.Amount, error) {
	if before < 0 || amount < 0 {
		return 0, iog.Errorf(iog.EINVALID, "fees on a negative amount")
	}
	after, err := add("the settled total", before, amount)
	if err != nil {
		return 0, err
	}
	to, err := SupplierFeeOn(after, c)
	if err != nil {
		return 0, err
	}
	from, err := SupplierFeeOn(before, c)
	if err != nil {
		return 0, err
	}
	return to - from, nil
}

// SupplierFeeOn is the supplier's fee on a lease's gross total at the combined published rate
// (BookingFeePPM, plus USDCFeePPM in USDC), rounded up.
func SupplierFeeOn(gross iog.Amount, c Currency) (iog.Amount, error) {
	if !c.valid() {
		return 0, iog.Errorf(iog.EINVALID, "unknown currency %q: want IO or USDC", string(c))
	}
	ppm := int64(BookingFeePPM)
	if c == USDC {
		ppm += USDCFeePPM
	}
	f, ok := mulDiv(int64(gross), ppm, 1_000_000, up)
	if !ok {
		return 0, overflow("the supplier's fee")
	}
	return iog.Amount(f), nil
}

func fees(amount iog.Amount, c Currency) (booking, currencyFee iog.Amount, err error) {
	if amount < 0 {
		return 0, 0, iog.Errorf(iog.EINVALID, "fees on a negative amount %s", amount)
	}
	if !c.valid() {
		return 0, 0, iog.Errorf(iog.EINVALID, "unknown currency %q: want IO or USDC", string(c))
	}
	b, ok := mulDiv(int64(amount), BookingFeePPM, 1_000_000, up)
	if !ok {
		return 0, 0, overflow("the booking fee")
	}
	if c == USDC {
		f, ok := mulDiv(int64(amount), USDCFeePPM, 1_000_000, up)
		if !ok {
			return 0, 0, overflow("the USDC fee")
		}
		currencyFee = iog.Amount(f)
	}
	return iog.Amount(b), currencyFee, nil
}

// ppmPercent writes parts per million as a percentage without trailing zeros: 2500 is "0.25%".
func ppmPercent(ppm int64) string {
	s := fmt.Sprintf("%d", ppm/10_000)
	if f := strings.TrimRight(fmt.Sprintf("%04d", ppm%10_000), "0"); f != "" {
		s += "." + f
	}
	return s + "%"
}

// permillePercent writes per-mille as a percentage: 50 is "5%", 505 is "50.5%".
func permillePercent(p int64) string {
	return ppmPercent(p * 1000)
}
