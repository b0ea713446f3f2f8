package pricing

import (
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Currency is what a quote is paid in.
type Currency string

// The currencies of the network: its own token and the dollar stablecoin.
const (
	IO   Currency = "IO"
	USDC Currency = "USDC"
)

// ParseCurrency reads "io" or "usdc" in any case.
func ParseCurrency(s string) (Currency, error) {
	switch c := Currency(strings.ToUpper(strings.TrimSpace(s))); c {
	case IO, USDC:
		return c, nil
	}
	return "", iog.Errorf(iog.EINVALID, "unknown currency %q: want IO or USDC", s)
}

func (c Currency) valid() bool { return c == IO || c == USDC }

// Commitment is how long a renter promises to keep a cluster; longer promises earn a discount.
type Commitment string

// The commitments on offer.
const (
	Hourly Commitment = "hourly"
	Daily  Commitment = "daily"
	Weekly Commitment = "weekly"
)

// ParseCommitment reads "hourly", "daily" or "weekly" in any case.
func ParseCommitment(s string) (Commitment, error) {
	switch c := Commitment(strings.ToLower(strings.TrimSpace(s))); c {
	case Hourly, Daily, Weekly:
		return c, nil
	}
	return "", iog.Errorf(iog.EINVALID, "unknown commitment %q: want hourly, daily or weekly", s)
}

// ToCurrency converts an amount kept in USDC micro-units to c. ioPriceUSDC is the price of one
// IO in micro-USDC (2_000_000 means 1 IO = 2 USDC); it is read only for IO. USDC passes through;
// IO is usdc * 1_000_000 / ioPriceUSDC, rounded to the nearest micro-IO with halves up.
func ToCurrency(usdc iog.Amount, c Currency, ioPriceUSDC iog.Amount) (iog.Amount, error) {
	if usdc < 0 {
		return 0, iog.Errorf(iog.EINVALID, "cannot convert a negative amount %s", usdc)
	}
	switch c {
	case USDC:
		return usdc, nil
	case IO:
		if ioPriceUSDC <= 0 {
			return 0, iog.Errorf(iog.EINVALID, "the IO price must be above zero to quote in IO, got %s USDC", ioPriceUSDC)
		}
		v, ok := mulDiv(int64(usdc), int64(iog.Unit), int64(ioPriceUSDC), halfUp)
		if !ok {
			return 0, overflow("the amount in IO")
		}
		return iog.Amount(v), nil
	}
	return 0, iog.Errorf(iog.EINVALID, "unknown currency %q: want IO or USDC", string(c))
}
