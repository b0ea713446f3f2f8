package overlay_test

import (
	"testing"

	"github.com/iognet/iog/internal/overlay"
)

func TestAddressing(t *testing.T) {
	for _, c := range []struct {
		idx  int
		want string
	}{{0, "100.64.0.0/24"}, {1, "100.64.1.0/24"}, {256, "100.65.0.0/24"}, {16383, "100.127.255.0/24"}} {
		if got := overlay.Network(c.idx).String(); got != c.want {
			t.Errorf("Network(%d) = %s, want %s", c.idx, got, c.want)
		}
		if !overlay.Space.Contains(overlay.Network(c.idx).Addr()) {
			t.Errorf("Network(%d) outside %s", c.idx, overlay.Space)
		}
	}
	if got := overlay.Host(overlay.Network(3), 1).String(); got != "100.64.3.1" {
		t.Errorf("node 0 of network 3 = %s", got)
	}
	if n := overlay.IfaceName("cl_abc"); len(n) != 11 || n[:3] != "iog" {
		t.Errorf("iface name %q", n)
	}
}

func TestCheckKey(t *testing.T) {
	if err := overlay.CheckKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err != nil {
		t.Errorf("32 zero bytes: %v", err)
	}
	for _, bad := range []string{"", "short", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "!!!"} {
		if overlay.CheckKey(bad) == nil {
			t.Errorf("CheckKey(%q) accepted", bad)
		}
	}
}
