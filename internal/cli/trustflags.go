package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// TrustOptions are the coordinator's proof-of-GPU settings a flag changed (docs/TRUST.md);
// nil keeps the mode's default (production, or the devnet's with --dev).
type TrustOptions struct {
	Probation        *time.Duration // a device that passed its first proof stays pending this long
	ProofRetry       *time.Duration // mean delay before a device whose proof did not pass is challenged again
	Reprove          *time.Duration // mean delay between proofs of a verified device
	ProofStartWindow *time.Duration // how long a device has to start a challenge
	ProofAllowance   *time.Duration // added to every proof deadline for the round trip
	ProofSlack       *float64       // deadline = allowance + slack x the class's expected time
	FirstProofDelay  *time.Duration // a joined device's first challenge comes between a fifth of it and it after its hello
	SweepEvery       *time.Duration // how often the leader refreshes reputations and retires long-down devices
}

// DefaultTrustOptions are the production values the flags show (cmd/iog checks they are the
// coordinator's).
func DefaultTrustOptions() (probation, retry, reprove, startWindow, allowance time.Duration, slack float64) {
	return 24 * time.Hour, 15 * time.Minute, 6 * time.Hour, 30 * time.Second, 2 * time.Second, 4
}

// trustFlags declares the flags of TrustOptions; the returned func fills o from the ones the
// user set, checking their bounds.
func trustFlags(cmd *cobra.Command, o *TrustOptions) func() error {
	probation, retry, reprove, start, allowance, slack := DefaultTrustOptions()
	f := cmd.Flags()
	f.DurationVar(&probation, "probation", probation, "how long a device that passed its first proof stays pending before it is rentable (--dev: 0)")
	f.DurationVar(&retry, "proof-retry", retry, "mean delay before a device whose proof failed or missed is challenged again, uniform in half to 1.5 times it (--dev: 1s)")
	f.DurationVar(&reprove, "reprove", reprove, "mean delay between proofs of a verified device, uniform in half to 1.5 times it (--dev: 10m)")
	f.DurationVar(&start, "proof-start-window", start, "how long a device has to start a challenge after it is issued (--dev: 5s)")
	f.DurationVar(&allowance, "proof-allowance", allowance, "time added to every proof deadline for the network round trip (--dev: 50ms)")
	f.Float64Var(&slack, "proof-slack", slack, "a proof's deadline is the allowance plus this many times its class's expected time (--dev: 10)")
	first := 5 * time.Minute
	f.DurationVar(&first, "first-proof-delay", first, "a joined device's first challenge comes at a random time between a fifth of this and this after its first hello (--dev: 1.5s to 2.5s)")
	sweep := 10 * time.Minute
	f.DurationVar(&sweep, "sweep-every", sweep, "how often the leader refreshes every device's reputation and retires devices down for 5 days (the reputation sweep)")
	return func() error {
		durs := []struct {
			name     string
			v        time.Duration
			min, max time.Duration
			into     **time.Duration
		}{
			{"probation", probation, 0, 90 * 24 * time.Hour, &o.Probation},
			{"proof-retry", retry, time.Second, 7 * 24 * time.Hour, &o.ProofRetry},
			{"reprove", reprove, time.Minute, 30 * 24 * time.Hour, &o.Reprove},
			{"proof-start-window", start, time.Second, 10 * time.Minute, &o.ProofStartWindow},
			{"proof-allowance", allowance, 0, time.Minute, &o.ProofAllowance},
			{"first-proof-delay", first, time.Second, time.Hour, &o.FirstProofDelay},
			{"sweep-every", sweep, 10 * time.Second, 24 * time.Hour, &o.SweepEvery},
		}
		for _, d := range durs {
			if !f.Changed(d.name) {
				continue
			}
			if d.v < d.min || d.v > d.max {
				return usageErrorf("--%s %s: want %s to %s", d.name, d.v, d.min, d.max)
			}
			v := d.v
			*d.into = &v
		}
		if f.Changed("proof-slack") {
			if !(slack >= 1 && slack <= 100) {
				return usageErrorf("--proof-slack %s: want 1 to 100", fmt.Sprint(slack))
			}
			v := slack
			o.ProofSlack = &v
		}
		return nil
	}
}
