package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
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

// account makes another supplier account.
func account(t *testing.T, f *Fleet, id string) iog.Account {
	t.Helper()
	a := iog.Account{ID: id, Name: id, Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: f.cfg.Now()}
	if err := f.db.CreateAccount(t.Context(), a, "h-"+id, "p-"+id); err != nil {
		t.Fatal(err)
	}
	return a
}

// challenge moves the clock past the join delay and runs the trust loop until d has a
// challenge, with its group heard from meanwhile.
func challenge(t *testing.T, f *Fleet, clk *iogtest.Clock, d iog.Device, group ...iog.Device) {
	t.Helper()
	for range 5 {
		clk.Add(6 * time.Minute)
		for _, g := range append(group, d) {
			f.seen[g.ID] = clk.Now()
		}
		f.trustTick(t.Context())
		if f.ProofFor(status(t, f, d.ID)) != nil {
			return
		}
	}
	t.Fatalf("%s was never challenged", d.ID)
}

// TestFraudHardwareStaysBlocked: deleting a device blocked for fraud and joining its hardware
// again does not launder it: blocked for its owner, flagged for review for anyone else.
func TestFraudHardwareStaysBlocked(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	d := join(t, f, acct, "key-fraud", host("m-fraud"))
	online(t, f, d, host("m-fraud"))
	challenge(t, f, clk, d)
	if res := answer(t, f, status(t, f, d.ID), true); res.Result != "fraud" {
		t.Fatalf("wrong answer: %+v", res)
	}
	if err := f.Delete(ctx, acct, d.ID); err != nil {
		t.Fatal(err)
	}
	again := join(t, f, acct, "key-again", host("m-fraud"))
	if again.Status != iog.DeviceBlocked || !strings.Contains(again.StatusReason, "fraud") {
		t.Fatalf("the same owner's new device on the fraud's hardware: %s %q", again.Status, again.StatusReason)
	}
	other := account(t, f, "acc_buyer")
	bought := join(t, f, other, "key-bought", host("m-fraud"))
	if bought.Status == iog.DeviceBlocked {
		t.Fatalf("another owner's device on the fraud's hardware is blocked: %q", bought.StatusReason)
	}
	v, err := f.Get(ctx, other, bought.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Review, "fraud") || !strings.Contains(v.Review, d.ID) {
		t.Fatalf("not flagged for review: %q", v.Review)
	}
}

// TestHardwareClaimBindsOnProof: the first to register a machine id does not hold it until it
// proves; a squatter that never proves does not block the real owner, who keeps it by proving.
func TestHardwareClaimBindsOnProof(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	squatter := account(t, f, "acc_squat")
	sq := join(t, f, squatter, "key-squat", host("m-real"))
	if _, err := f.Hello(ctx, sq, api.HelloRequest{Inventory: host("m-real")}, "10.9.9.9"); err != nil {
		t.Fatal(err)
	}
	real := join(t, f, acct, "key-real", host("m-real"))
	if real.Status == iog.DeviceBlocked {
		t.Fatalf("the real owner is blocked by an unproven claim: %q", real.StatusReason)
	}
	online(t, f, real, host("m-real"))
	challenge(t, f, clk, real, sq)
	if f.ProofFor(status(t, f, sq.ID)) == nil {
		t.Fatal("the squatter's claim was not challenged")
	}
	if res := answer(t, f, status(t, f, real.ID), false); res.Result != "passed" {
		t.Fatalf("honest answer: %+v", res)
	}
	if r := status(t, f, real.ID); r.Status == iog.DeviceBlocked {
		t.Fatalf("the device that proved: %s %q", r.Status, r.StatusReason)
	}
	if s := status(t, f, sq.ID); s.Status != iog.DeviceBlocked || !strings.Contains(s.StatusReason, real.ID) {
		t.Fatalf("the squatter after the real device proved: %s %q", s.Status, s.StatusReason)
	}
	// Now the claim binds: a third device with that machine id is refused at once.
	if late := join(t, f, squatter, "key-late", host("m-real")); late.Status != iog.DeviceBlocked || !strings.Contains(late.StatusReason, "already registered") {
		t.Fatalf("a claim on proven hardware: %s %q", late.Status, late.StatusReason)
	}
}
