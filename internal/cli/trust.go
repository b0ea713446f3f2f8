package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/iognet/iog/api"
)

// deviceTrust prints a device's reputation with its inputs and its proof-of-GPU history.
func deviceTrust(w io.Writer, d api.Device) {
	if r := d.Reputation; r != nil {
		fmt.Fprintln(w, "\nReputation:")
		tw := table(w)
		score := fmt.Sprintf("%d / 1000", r.PerMille)
		if r.Capped {
			score += " (capped: on probation)"
		}
		if !r.Gate {
			score += " (0: last proof of GPU did not pass)"
		}
		row(tw, "  Score:", score)
		row(tw, "  Uptime:", fmt.Sprintf("%s of %s observed -> %s", time.Duration(r.UptimeMS)*time.Millisecond/time.Second*time.Second,
			time.Duration(r.ObservedMS)*time.Millisecond/time.Second*time.Second, ppm(r.UptimePPM)))
		row(tw, "  Jobs:", fmt.Sprintf("%d of %d ended well -> %s (squared)", r.JobsOK, r.JobsTotal, ppm(r.JobsPPM)))
		row(tw, "  Proofs:", fmt.Sprintf("%d of %d passed -> %s (squared)", r.ProofsPassed, r.ProofsTotal, ppm(r.ProofsPPM)))
		row(tw, "  Disputes:", fmt.Sprintf("%d upheld -> %s", r.UpheldDisputes, ppm(r.DisputesPPM)))
		if !r.VerifiedAt.IsZero() {
			row(tw, "  Verified:", formatTime(r.VerifiedAt))
		}
		if !r.ProbationEnds.IsZero() {
			row(tw, "  Probation ends:", formatTime(r.ProbationEnds))
		}
		if !r.LastPassedProof.IsZero() {
			row(tw, "  Last passed proof:", formatTime(r.LastPassedProof))
		}
		if r.IdleWarning != "" {
			row(tw, "  Idle use:", r.IdleWarning)
		}
		if r.NotNominable != "" {
			row(tw, "  Rewards:", r.NotNominable)
		}
		_ = tw.Flush()
	}
	if len(d.Proofs) > 0 {
		fmt.Fprintln(w, "\nProofs of GPU:")
		tw := table(w)
		row(tw, "  ISSUED", "ID", "CLASS", "RESULT", "TOOK", "DEADLINE", "REASON")
		for _, p := range d.Proofs {
			took := "-"
			if p.ElapsedMS > 0 {
				took = fmt.Sprintf("%d ms", p.ElapsedMS)
			}
			row(tw, "  "+formatTime(p.IssuedAt), p.ID, fmt.Sprintf("%s x%d", p.Class, p.Units), p.Result, took,
				fmt.Sprintf("%d ms", p.DeadlineMS), orDash(p.Reason))
		}
		_ = tw.Flush()
	}
}

func ppm(v int64) string { return fmt.Sprintf("%.3f", float64(v)/1e6) }
