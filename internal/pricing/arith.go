package pricing

import (
	"math"
	"math/bits"

	"github.com/iognet/iog/internal/iog"
)

// rounding says which way mulDiv resolves a remainder.
type rounding int

const (
	down   rounding = iota // toward zero: what the payer owes never grows by rounding
	up                     // away from zero: fees, so that the fee is never under the rate
	halfUp                 // to the nearest micro-unit, halves up: prices and conversions
)

// mulDiv returns a*b/d rounded as r, for a, b >= 0 and d > 0, computing a*b in 128 bits.
// ok is false for negative a or b, d <= 0, or a result above math.MaxInt64.
func mulDiv(a, b, d int64, r rounding) (int64, bool) {
	if a < 0 || b < 0 || d <= 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(d) { // the quotient would not fit in 64 bits (and Div64 would panic)
		return 0, false
	}
	q, rem := bits.Div64(hi, lo, uint64(d))
	if q > math.MaxInt64 {
		return 0, false
	}
	switch {
	case r == up && rem > 0, r == halfUp && rem >= uint64(d)-rem: // 2*rem >= d without overflow
		q++
		if q > math.MaxInt64 {
			return 0, false
		}
	}
	return int64(q), true
}

// overflow is the error for a computation whose result does not fit in an Amount.
func overflow(what string) error {
	return iog.Errorf(iog.EINVALID, "%s is too large to compute", what)
}

// add sums amounts with overflow checking.
func add(what string, xs ...iog.Amount) (iog.Amount, error) {
	var s iog.Amount
	for _, x := range xs {
		var err error
		if s, err = s.Add(x); err != nil {
			return 0, overflow(what)
		}
	}
	return s, nil
}
