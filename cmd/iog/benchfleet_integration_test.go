//go:build integration

package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/iognet/iog/internal/fleetbench"
	"github.com/iognet/iog/internal/store/storetest"
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

// TestBenchFleetSeveral runs `iog bench fleet --coordinators 3` small: three coordinator
// processes on one PostgreSQL behind Debian's HAProxy, 300 devices seeded and saying hello
// through it (each with a connection of its own), then the busiest coordinator killed. What is
// checked is what the run says it measured: every device back and beating, the killed
// coordinator's devices all said hello again elsewhere, and none was marked down.
func TestBenchFleetSeveral(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("needs haproxy (apt-get install haproxy)")
	}
	t.Setenv("IOG_TEST_MAIN", "1")
	r, err := fleetbench.Run(t.Context(), fleetbench.Options{Bin: os.Args[0], Devices: 300, Interval: 5 * time.Second, Duration: 10 * time.Second,
		Silent: 2, Seed: true, Coordinators: 3, ConnPerDevice: true, Channel: true, DB: storetest.PostgresDSN(t), Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v %+v %+v", r, r.Restart, r.Kill)
	if r.Coordinators != 3 || r.Restart == nil || r.Restart.Errors != 0 || r.Restart.FalseDown != 0 {
		t.Fatalf("restart: %+v", r.Restart)
	}
	if r.Beats < 300 || r.Errors != 0 || r.Down != 2 {
		t.Fatalf("beats %d, errors %d (%v), %d of 2 silent devices down", r.Beats, r.Errors, r.ErrorKinds, r.Down)
	}
	k := r.Kill
	// The silent devices may be among the killed coordinator's sessions: they never beat, so
	// never move.
	if k == nil || k.Sessions < 50 || k.Moved < int64(k.Sessions-2) || k.FalseDown != 0 || k.MoveS <= 0 || k.MoveS > k.GoalS {
		t.Fatalf("kill: %+v", k)
	}
}
