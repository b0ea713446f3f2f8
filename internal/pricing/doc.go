// Package pricing turns suppliers' asks into the quote a renter pays: the per-device asks
// converted to the quote currency, a demand factor from how busy the GPU class is, a commitment
// discount, and the booking and currency fees, each shown as its own line.
//
// It is pure: no clock, no randomness, no I/O. Every amount is an iog.Amount in micro-units and
// every step is integer arithmetic with the rounding stated where it happens; products that may
// not fit in 64 bits are taken in 128 bits (math/bits) and an overflowing result is an EINVALID
// error, never a wrapped number or a panic.
//
// Rates are in per-mille (1000 = 1.0) for multipliers, demand and discounts, and in parts per
// million (ppm, 1_000_000 = 100%) for fees, so that 0.25% is the integer 2500.
package pricing
