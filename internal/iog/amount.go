package iog

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is money in micro-units (1 IO = 1_000_000). There are no floats anywhere in money.
type Amount int64

// Unit is one whole token in micro-units.
const Unit Amount = 1_000_000

// Add returns a+b or an error on overflow.
func (a Amount) Add(b Amount) (Amount, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, Errorf(EINVALID, "amount overflow: %d + %d", a, b)
	}
	return a + b, nil
}

// Mul returns a*n or an error on overflow.
func (a Amount) Mul(n int64) (Amount, error) {
	if a == 0 || n == 0 {
		return 0, nil
	}
	r := int64(a) * n
	if r/n != int64(a) || (a == -1 && n == math.MinInt64) || (n == -1 && a == math.MinInt64) {
		return 0, Errorf(EINVALID, "amount overflow: %d * %d", a, n)
	}
	return Amount(r), nil
}

// String formats the amount with six decimals, e.g. "1.500000".
func (a Amount) String() string {
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign = "-"
		u = uint64(-(a + 1)) + 1
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/1_000_000, u%1_000_000)
}

// ParseAmount parses a decimal like "2", "2.5" or "0.000001" into micro-units.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	bad := Errorf(EINVALID, "invalid amount %q: want a decimal with at most 6 places", s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 || strings.ContainsAny(whole+frac, "+- ") {
		return 0, bad
	}
	if whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, bad
	}
	f := int64(0)
	if frac != "" {
		f, err = strconv.ParseInt((frac + "000000")[:6], 10, 64)
		if err != nil {
			return 0, bad
		}
	}
	a, err := Amount(w).Mul(int64(Unit))
	if err != nil {
		return 0, bad
	}
	if a, err = a.Add(Amount(f)); err != nil {
		return 0, bad
	}
	if neg {
		a = -a
	}
	return a, nil
}
