package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/iognet/iog/api"
)

// signedMicro reads an amount from the coordinator (possibly negative) as micro-units.
func signedMicro(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	n, ok := parseMicro(strings.TrimPrefix(s, "-"))
	if neg {
		n = -n
	}
	return n, ok
}

// amountOf is an amount from the coordinator as the CLI prints it: no trailing zeros, with
// its currency; "-" when absent or unreadable.
func amountOf(s, currency string) string {
	n, ok := signedMicro(s)
	if !ok {
		return "-"
	}
	return withCurrency(formatMicro(n), currency)
}

// moneyDiff is after - before, for what an extend or terminate moved; ok is false when either
// is unreadable.
func moneyDiff(before, after string) (int64, bool) {
	b, ok1 := signedMicro(before)
	a, ok2 := signedMicro(after)
	return a - b, ok1 && ok2
}

// moneyRows are a cluster's money in `cluster get`: what was paid (extensions and
// replacements included), spent so far, refunded, refundable now and the current rate.
func moneyRows(tw *tabwriter.Writer, cl api.Cluster) {
	m := cl.Money
	if m == nil {
		if cl.Quote != nil {
			row(tw, "Paid:", withCurrency(cl.Quote.Total, clusterCurrency(cl))+" into escrow ("+orDefault(cl.Quote.Commitment, "hourly")+" commitment)")
		}
		return
	}
	cur := m.Currency
	commit := "hourly"
	if cl.Quote != nil {
		commit = orDefault(cl.Quote.Commitment, "hourly")
	}
	row(tw, "Paid:", fmt.Sprintf("%s (%s commitment; extensions and replacements included; fees %s)", amountOf(m.Paid, cur), commit, amountOf(m.Fees, cur)))
	row(tw, "Spent so far:", amountOf(m.Spent, cur))
	row(tw, "Refunded:", amountOf(m.Refunded, cur))
	row(tw, "Refundable now:", amountOf(m.RefundableNow, cur)+" (what terminating now returns)")
	row(tw, "Rate:", amountOf(m.RatePerHour, cur)+"/h")
}

// moneyCells are the money columns of `cluster list`.
func moneyCells(cl api.Cluster) []string {
	m := cl.Money
	if m == nil {
		return []string{"-", "-", "-", "-"}
	}
	return []string{amountOf(m.Paid, m.Currency), amountOf(m.Spent, m.Currency), amountOf(m.RefundableNow, m.Currency), amountOf(m.RatePerHour, m.Currency) + "/h"}
}

// terminated says what a terminate moved: the refund (the cluster's refunded total before and
// after it) and the cluster's money in all.
func terminated(w io.Writer, before, after api.Cluster) {
	m := after.Money
	if m == nil {
		return
	}
	refund := amountOf(m.Refunded, m.Currency)
	if before.Money != nil {
		if d, ok := moneyDiff(before.Money.Refunded, m.Refunded); ok {
			refund = withCurrency(formatMicro(d), m.Currency)
		}
	}
	fmt.Fprintf(w, "refunded to your wallet now: %s; in all: paid %s, spent %s, refunded %s\n", refund,
		amountOf(m.Paid, m.Currency), amountOf(m.Spent, m.Currency), amountOf(m.Refunded, m.Currency))
}

// extended says what an extend charged: the cluster's paid total before and after it.
func extended(w io.Writer, before, after api.Cluster) {
	m := after.Money
	if m == nil || before.Money == nil {
		return
	}
	if d, ok := moneyDiff(before.Money.Paid, m.Paid); ok {
		fmt.Fprintf(w, "charged to your wallet: %s (fees included); paid in all %s; rate now %s/h\n",
			withCurrency(formatMicro(d), m.Currency), amountOf(m.Paid, m.Currency), amountOf(m.RatePerHour, m.Currency))
	}
}
