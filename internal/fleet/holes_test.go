package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/proof"
)

// online says hello for d and counts it as heard from now.
func online(t *testing.T, f *Fleet, d iog.Device, inv api.Inventory) {
	t.Helper()
	if _, err := f.Hello(t.Context(), d, api.HelloRequest{Inventory: inv}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

// TestProofClassIsTheResolvedClass: a device claiming a vendor spelling of the H100 is
// challenged with the H100's deadlines, not the lenient ones of an unknown GPU.
func TestProofClassIsTheResolvedClass(t *testing.T) {
	f, clk, acct := newFleet(t)
	inv := host("m-h100")
	inv.GPUs = []api.GPU{{UUID: "GPU-h100", Name: "NVIDIA H100 80GB HBM3", Model: "H100-80GB-SXM", MemoryMiB: 81559}}
	d := join(t, f, acct, "key-h100", inv)
	online(t, f, d, inv)
	clk.Add(6 * time.Minute)
	f.seen[d.ID] = clk.Now()
	f.trustTick(t.Context())
	ch := f.ProofFor(status(t, f, d.ID))
	if ch == nil {
		t.Fatal("no challenge")
	}
	if ch.Class != "H100-80GB" {
		t.Fatalf("challenged as class %q", ch.Class)
	}
	want := f.cfg.Trust.Table.Window(f.cfg.Trust.Table.Class("H100-80GB"), tinyParams(true, 0).Work(), 1)
	if ch.DeadlineMS != want.Deadline.Milliseconds() {
		t.Fatalf("deadline %d ms, want the H100's %d ms", ch.DeadlineMS, want.Deadline.Milliseconds())
	}
}

// TestBadDeviceFailsAlone: a device whose inventory cannot be challenged (64 TiB of RAM passes
// the join checks, but no proof can be sized for it) fails its own proof; the other devices of
// its group are challenged all the same.
func TestBadDeviceFailsAlone(t *testing.T) {
	f, clk, acct := newFleet(t)
	f.cfg.Trust.Params = proof.ParamsFor // production sizes: they refuse what cannot be challenged
	good := join(t, f, acct, "key-good", host("m-good"))
	absurd := host("m-absurd")
	absurd.MemoryMiB = 64 << 20
	bad := join(t, f, acct, "key-bad", absurd)
	online(t, f, good, host("m-good"))
	online(t, f, bad, absurd)
	for range 3 {
		clk.Add(6 * time.Minute)
		f.seen[good.ID], f.seen[bad.ID] = clk.Now(), clk.Now()
		f.trustTick(t.Context())
		if f.ProofFor(status(t, f, good.ID)) != nil {
			break
		}
	}
	if f.ProofFor(status(t, f, good.ID)) == nil {
		t.Fatal("the good device of the group was never challenged")
	}
	if f.ProofFor(status(t, f, bad.ID)) != nil {
		t.Fatal("the absurd device got a challenge")
	}
	b := status(t, f, bad.ID)
	ps, err := f.db.DeviceProofs(t.Context(), bad.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != iog.DevicePending || len(ps) == 0 || ps[len(ps)-1].Result != iog.ProofFailed || !strings.Contains(ps[len(ps)-1].Reason, "memory") {
		t.Fatalf("absurd device: %s %q, proofs %+v", b.Status, b.StatusReason, ps)
	}
}

// TestEveryClassHasProofRates: a listed class is never proven with the lenient rates of an
// unknown GPU.
func TestEveryClassHasProofRates(t *testing.T) {
	tab := proof.DefaultTable()
	for _, c := range pricing.Classes() {
		if c.Model == "" || c.Model == pricing.UnknownModel {
			continue
		}
		if got := tab.Class(c.Model); got.Name != c.Model || strings.HasPrefix(got.Source, "unknown model") {
			t.Errorf("class %s has no proof rates of its own (%s)", c.Model, got.Source)
		}
	}
}
