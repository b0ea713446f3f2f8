package cli

import (
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// Money on the wire is a decimal string with at most six places; the CLI checks amounts the
// user types with integer arithmetic only and never rounds them through a float.

// amountPlaces is how many decimal places an amount may have (micro-units).
const amountPlaces = 6

// maxAmountDigits bounds the whole part so that micro-units fit in an int64.
const maxAmountDigits = 12

// currencies are the currencies an account can hold and pay in.
func currencies() []string { return []string{"IO", "USDC"} }

// commitments are the lengths of commitment a quote can be discounted for.
func commitments() []string { return []string{"hourly", "daily", "weekly"} }

// parseMicro reads a positive decimal with at most six places ("12.5", "0.000001") as
// micro-units; ok is false for anything else.
func parseMicro(s string) (n int64, ok bool) {
	whole, frac, dot := strings.Cut(s, ".")
	if !isDigits(whole) || len(whole) > maxAmountDigits || (dot && (!isDigits(frac) || len(frac) > amountPlaces)) {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", amountPlaces-len(frac)), 10, 64)
	}
	return w*1_000_000 + f, true
}

// formatMicro is micro-units as a decimal without trailing zeros ("12.5", "3").
func formatMicro(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := fmt.Sprintf("%s%d.%06d", sign, n/1_000_000, n%1_000_000)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// amountFlag checks an amount given as flag (or argument) name: a decimal above zero with at
// most six places. It returns the amount as typed, which the API reads exactly.
func amountFlag(name, s string) (string, error) {
	n, ok := parseMicro(s)
	if !ok {
		return "", usageErrorf("%s %q: want a decimal amount like 12.5, with at most %d decimal places", name, s, amountPlaces)
	}
	if n <= 0 {
		return "", usageErrorf("%s must be more than 0", name)
	}
	return s, nil
}

// currencyFlag normalises --currency; "" stays "" (the coordinator's default, IO).
func currencyFlag(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if c != "" && !slices.Contains(currencies(), c) {
		return "", usageErrorf("--currency %q: want %s", s, strings.Join(currencies(), " or "))
	}
	return c, nil
}

// commitFlag normalises --commit; "" is hourly on the coordinator.
func commitFlag(s string) (string, error) {
	c := strings.ToLower(strings.TrimSpace(s))
	if c != "" && !slices.Contains(commitments(), c) {
		return "", usageErrorf("--commit %q: want %s", s, strings.Join(commitments(), ", "))
	}
	return c, nil
}

// base58Alphabet is Bitcoin's, which Solana uses for addresses.
const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// isSolanaAddress reports whether s is base58 for exactly 32 bytes, the shape of a Solana
// address (an ed25519 public key). The coordinator checks the rest.
func isSolanaAddress(s string) bool {
	if len(s) < 32 || len(s) > 44 {
		return false
	}
	n := new(big.Int)
	radix := big.NewInt(58)
	zeros := 0
	for i, r := range s {
		d := strings.IndexRune(base58Alphabet, r)
		if d < 0 {
			return false
		}
		if d == 0 && i == zeros {
			zeros++ // each leading '1' is a leading zero byte
		}
		n.Mul(n, radix)
		n.Add(n, big.NewInt(int64(d)))
	}
	return zeros+len(n.Bytes()) == 32
}

// sortedKeys are the currencies of some per-currency maps, the known ones first.
func sortedKeys(always []string, ms ...map[string]string) []string {
	keys := slices.Clone(always)
	var extra []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) && !slices.Contains(extra, k) {
				extra = append(extra, k)
			}
		}
	}
	slices.Sort(extra)
	return append(keys, extra...)
}

// amountOr is m[k], or zero when absent.
func amountOr(m map[string]string, k string) string {
	if v, ok := m[k]; ok && v != "" {
		return v
	}
	return "0"
}

// withCurrency is "12.5 IO", or "-" for an empty amount.
func withCurrency(amount, currency string) string {
	if amount == "" {
		return "-"
	}
	if currency == "" {
		return amount
	}
	return amount + " " + currency
}

// permille renders a per-mille factor exactly: 1250 is "1.250".
func permille(p int64) string {
	sign := ""
	if p < 0 {
		sign, p = "-", -p
	}
	return fmt.Sprintf("%s%d.%03d", sign, p/1000, p%1000)
}

// yesNo is a table cell for a flag.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// perCurrency prints a per-currency table with one column per map.
func perCurrency(w io.Writer, header []string, always []string, ms ...map[string]string) error {
	tw := table(w)
	row(tw, append([]string{"CURRENCY"}, header...)...)
	for _, k := range sortedKeys(always, ms...) {
		cols := []string{k}
		for _, m := range ms {
			cols = append(cols, amountOr(m, k))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}
