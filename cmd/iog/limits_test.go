package main

import (
	"reflect"
	"testing"

	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/coordinator"
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
