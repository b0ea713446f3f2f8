// Package reputation scores a device from its record:
//
//	gate x uptime x job success^2 x proof pass rate^2 x exp(-0.7 x upheld disputes)
//
// where the gate is 1 only while the device's last proof passed, and each rate is a lower bound
// (Wilson, 95%) over a decayed record with a prior, so that one lucky job never beats a long
// record. A device on probation is capped at ProbationCap.
//
// The score is an integer per mille (0..1000), computed with integer arithmetic only, so that
// rewards can use it and anyone can recompute it exactly from the inputs. The package is pure:
// the time is an argument, and there is no randomness and no I/O.
package reputation

import (
	"math/big"
	"time"
)

// Tunables of the score; they are part of what a supplier recomputes, so they change only with
// a new Version.
const (
	Version = 1
	// HalfLife is how fast old proofs and jobs stop counting: an outcome this old weighs half.
	HalfLife = 30 * 24 * time.Hour
	// ProbationCap is the highest score (per mille) of a device on probation.
	ProbationCap = 500
	// Prior counts every record as starting with PriorOK good outcomes out of PriorN, so that an
	// empty record is neither perfect nor worthless.
	PriorOK, PriorN = 4, 5
)

// Outcome is one proof or one job.
type Outcome struct {
	At time.Time
	OK bool
}

// Inputs are what a score is computed from; `iog device get` shows them.
type Inputs struct {
	// LastProofPassed is the gate: false while the device has no passed proof or failed its
	// last one.
	LastProofPassed bool `json:"last_proof_passed"`
	// Proofs are completed proofs (passed, or failed / missed).
	Proofs []Outcome `json:"-"`
	// Jobs are ended leases: OK when the workload ran to its end or the renter stopped it,
	// not OK when the device lost it.
	Jobs []Outcome `json:"-"`
	// UptimeMS of ObservedMS: time not down over the observation window.
	UptimeMS   int64 `json:"uptime_ms"`
	ObservedMS int64 `json:"observed_ms"`
	// UpheldDisputes are renters' disputes decided against the device.
	UpheldDisputes int `json:"upheld_disputes"`
	// ProbationEnds is when the device leaves probation; zero means it never passed.
	ProbationEnds time.Time `json:"probation_ends,omitzero"`
}

// Result is a score with its factors.
type Result struct {
	Version  int  `json:"version"`
	PerMille int  `json:"per_mille"` // 0..1000
	Gate     bool `json:"gate"`
	// Factors in parts per million: the lower bounds used.
	UptimePPM   int64 `json:"uptime_ppm"`
	JobsPPM     int64 `json:"jobs_ppm"`
	ProofsPPM   int64 `json:"proofs_ppm"`
	DisputesPPM int64 `json:"disputes_ppm"`
	Capped      bool  `json:"capped,omitempty"` // on probation
	// Decayed counts in millionths of an outcome (what the bounds were computed from).
	JobsOK, JobsN, ProofsOK, ProofsN int64 `json:"-"`
}

const f = 1_000_000 // fixed-point unit: parts per million

// expPPM[d] is exp(-0.7 d) in parts per million.
var expPPM = [...]int64{1000000, 496585, 246597, 122456, 60810, 30197, 14996, 7447, 3698, 1836, 912, 453, 225, 112, 55, 28, 14, 7, 3, 2, 1}

// Score computes the reputation of a device at now.
func Score(in Inputs, now time.Time) Result {
	r := Result{Version: Version, Gate: in.LastProofPassed}
	r.JobsOK, r.JobsN = decayed(in.Jobs, now)
	r.ProofsOK, r.ProofsN = decayed(in.Proofs, now)
	r.JobsPPM = wilson(r.JobsOK+PriorOK*f, r.JobsN+PriorN*f)
	r.ProofsPPM = wilson(r.ProofsOK+PriorOK*f, r.ProofsN+PriorN*f)
	// Uptime counts hours as trials.
	hour := time.Hour.Milliseconds()
	up, obs := max(0, in.UptimeMS), max(0, in.ObservedMS)
	up = min(up, obs)
	r.UptimePPM = wilson(mulDiv(up, f, hour)+PriorOK*f, mulDiv(obs, f, hour)+PriorN*f)
	d := max(0, in.UpheldDisputes)
	if d < len(expPPM) {
		r.DisputesPPM = expPPM[d]
	}
	if !r.Gate {
		return r
	}
	p := big.NewInt(r.UptimePPM)
	for _, x := range []int64{r.JobsPPM, r.JobsPPM, r.ProofsPPM, r.ProofsPPM, r.DisputesPPM} {
		p.Mul(p, big.NewInt(x))
	}
	// p is in f^6; per mille is p / f^6 * 1000.
	den := new(big.Int).Exp(big.NewInt(f), big.NewInt(6), nil)
	p.Mul(p, big.NewInt(1000))
	p.Quo(p, den)
	r.PerMille = int(p.Int64())
	if in.ProbationEnds.IsZero() || now.Before(in.ProbationEnds) {
		if r.PerMille > ProbationCap {
			r.PerMille = ProbationCap
		}
		r.Capped = true
	}
	return r
}

// decayed sums outcomes weighted by age (a piecewise-linear halving every HalfLife), in
// millionths: (ok, total).
func decayed(os []Outcome, now time.Time) (ok, n int64) {
	h := HalfLife.Milliseconds()
	for _, o := range os {
		age := max(0, now.Sub(o.At).Milliseconds())
		k := age / h
		if k >= 40 {
			continue
		}
		w := (int64(f) >> k) * (2*h - age%h) / (2 * h)
		n += w
		if o.OK {
			ok += w
		}
	}
	return ok, n
}

func mulDiv(a, b, c int64) int64 {
	x := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	return x.Quo(x, big.NewInt(c)).Int64()
}

// wilson is the lower bound of the 95% Wilson interval of s successes in n trials, both in
// millionths, returned in parts per million:
//
//	(s + z²/2 - z·sqrt(s(n-s)/n + z²/4)) / (n + z²)
func wilson(s, n int64) int64 {
	if n <= 0 {
		return 0
	}
	s = min(max(0, s), n)
	const z, z2 = 1_960_000, 3_841_600 // 1.96 and 1.96² in millionths
	S, N, F := big.NewInt(s), big.NewInt(n), big.NewInt(f)
	// inner = s(n-s)/n + z²/4, in millionths.
	inner := new(big.Int).Mul(S, new(big.Int).Sub(N, S))
	inner.Quo(inner, N)
	inner.Add(inner, big.NewInt(z2/4))
	// root = sqrt(inner) in millionths = sqrt(inner * f).
	root := new(big.Int).Sqrt(new(big.Int).Mul(inner, F))
	zr := new(big.Int).Mul(big.NewInt(z), root)
	zr.Quo(zr, F)
	num := new(big.Int).Add(S, big.NewInt(z2/2))
	num.Sub(num, zr)
	if num.Sign() < 0 {
		return 0
	}
	num.Mul(num, F)
	num.Quo(num, new(big.Int).Add(N, big.NewInt(z2)))
	return min(num.Int64(), f)
}
