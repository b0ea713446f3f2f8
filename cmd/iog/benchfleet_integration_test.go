//go:build integration

package main

import (
	"os"
	"testing"
	"time"

	"github.com/iognet/iog/internal/fleetbench"
)

// TestBenchFleet runs `iog bench fleet` small: a coordinator process of this binary, 200
// devices joined through the real protocol, heartbeats at 1 s, two silenced. The figures are
// printed, not judged (they are the machine's); what is checked is that the run measured what
// it says: every device beat, none was refused, and both silent devices were seen down.
func TestBenchFleet(t *testing.T) {
	t.Setenv("IOG_TEST_MAIN", "1") // the coordinator child runs this test binary as iog
	r, err := fleetbench.Run(t.Context(), fleetbench.Options{Bin: os.Args[0], Devices: 200, Interval: time.Second, Duration: 4 * time.Second, Silent: 2,
		Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Beats < 200 || r.Errors != 0 || r.P50MS <= 0 || r.TargetPerS != 200 {
		t.Fatalf("beats %d, errors %d (%v), p50 %.1f ms, target %.0f/s", r.Beats, r.Errors, r.ErrorKinds, r.P50MS, r.TargetPerS)
	}
	if r.Down != 2 || r.LivenessLagS <= 0 {
		t.Fatalf("%d of 2 silent devices seen down (lag %.1f s)", r.Down, r.LivenessLagS)
	}
	if r.CoordinatorCores <= 0 || r.RSSMiB <= 0 {
		t.Fatalf("no coordinator CPU or memory read: %+v", r)
	}
}
