package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/fleet"
)

// TestLimitFlagDefaults: the defaults `iog coordinator --help` shows are the coordinator's.
func TestLimitFlagDefaults(t *testing.T) {
	got, want := limits(cli.DefaultLimitOptions(), false), coordinator.DefaultLimits()
	if got.HTTP.Exempt != nil {
		t.Fatal("a production coordinator exempts addresses")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("flag defaults\n%+v\nare not the coordinator's\n%+v", got, want)
	}
	dev := limits(cli.DefaultLimitOptions(), true)
	if dev.HTTP.Exempt == nil || !dev.HTTP.Exempt("127.0.0.1") || dev.HTTP.Exempt("203.0.113.1") {
		t.Fatal("--dev does not exempt loopback, or exempts more")
	}
}

// TestTrustFlagDefaults: the defaults `iog coordinator --help` shows are the production
// coordinator's, no flag keeps the mode's settings, and a flag changes only its setting.
func TestTrustFlagDefaults(t *testing.T) {
	probation, retry, reprove, start, allowance, slack := cli.DefaultTrustOptions()
	d := fleet.DefaultTrust()
	if d.Probation != probation || d.RetryPending != retry || d.Reprove != reprove || d.StartWindow != start ||
		d.Table.AllowanceMS != allowance.Milliseconds() || d.Table.Slack != slack || d.JoinDelayMin != time.Minute || d.JoinDelayMax != 5*time.Minute {
		t.Fatalf("flag defaults %v %v %v %v %v %v are not the coordinator's %+v", probation, retry, reprove, start, allowance, slack, d)
	}
	prod, dev := trust(cli.TrustOptions{}, false), trust(cli.TrustOptions{}, true)
	if prod.Probation != d.Probation || dev.Probation != fleet.DevTrust().Probation || dev.StartWindow != fleet.DevTrust().StartWindow {
		t.Fatal("no flag changed the mode's settings")
	}
	p, s, fd, sw := 2*time.Hour, 6.0, 10*time.Second, 30*time.Second
	got := trust(cli.TrustOptions{Probation: &p, ProofSlack: &s, FirstProofDelay: &fd, SweepEvery: &sw}, false)
	if got.Probation != p || got.Table.Slack != s || got.RetryPending != d.RetryPending || got.StartWindow != d.StartWindow ||
		got.JoinDelayMin != 2*time.Second || got.JoinDelayMax != fd || got.SweepEvery != sw || d.SweepEvery != 0 {
		t.Fatalf("flags gave %+v", got)
	}
}
