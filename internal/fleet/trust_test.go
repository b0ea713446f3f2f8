package fleet

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/proof"
	"github.com/iognet/iog/internal/store"
)

func tinyParams(bool, int64) proof.Params {
	return proof.Params{MemoryBytes: 256 << 10, LaneWords: 64, Walkers: 16, Steps: 64, Checkpoint: 16, Groups: 64, MatN: 128, MatK: 64, MatM: 64}
}

func newFleet(t *testing.T) (*Fleet, *iogtest.Clock, iog.Account) {
	t.Helper()
	db, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := iogtest.NewClock(time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC))
	tr := DefaultTrust()
	tr.Params, tr.Probation = tinyParams, time.Hour
	f := New(Config{Store: db, Now: clk.Now, Trust: tr})
	acct := iog.Account{ID: "acc_s", Name: "s", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: clk.Now()}
	if err := db.CreateAccount(t.Context(), acct, "h", "p"); err != nil {
		t.Fatal(err)
	}
	return f, clk, acct
}

func join(t *testing.T, f *Fleet, acct iog.Account, key string, inv api.Inventory) iog.Device {
	t.Helper()
	jt, err := f.CreateJoinToken(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Register(t.Context(), key, api.RegisterRequest{JoinToken: jt.Token, Inventory: inv}, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func host(id string) api.Inventory {
	return api.Inventory{Hostname: id, MachineID: id, OS: "linux", Arch: "amd64", CPUModel: "x", CPUCores: 1, CPUThreads: 1, MemoryMiB: 4096}
}

// answer solves d's open challenge with the CPU solver, as a worker would.
func answer(t *testing.T, f *Fleet, d iog.Device, corrupt bool) api.ProofResult {
	t.Helper()
	ch := f.ProofFor(d)
	if ch == nil {
		t.Fatalf("no challenge for %s", d.ID)
	}
	st, err := f.StartProof(t.Context(), d, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	nonce, _ := hex.DecodeString(st.Nonce)
	seed := proof.UnitSeed(proof.NewSeed(nonce, d.ID, d.PublicKey, ch.Epoch), "cpu")
	p := proof.Params{MemoryBytes: ch.Params.MemoryBytes, LaneWords: ch.Params.LaneWords, Walkers: ch.Params.Walkers, Steps: ch.Params.Steps,
		Checkpoint: ch.Params.Checkpoint, Groups: ch.Params.Groups, MatN: ch.Params.MatN, MatK: ch.Params.MatK, MatM: ch.Params.MatM}
	r, _ := proof.CPUSolver{}.Prepare(context.Background(), p, "cpu")
	a, err := r.Solve(context.Background(), seed)
	if err != nil {
		t.Fatal(err)
	}
	if corrupt {
		for i := range a.Rows {
			a.Rows[i]++
		}
	}
	res, err := f.AnswerProof(t.Context(), d, ch.ID, api.ProofAnswer{Units: []api.ProofUnitAnswer{{Unit: "cpu",
		Walks: proof.EncodeWords(a.Walks), Groups: proof.EncodeWords(a.Groups), Rows: proof.EncodeWords(a.Rows)}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func status(t *testing.T, f *Fleet, id string) iog.Device {
	t.Helper()
	d, err := f.db.Device(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLifecycle(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	var frauds []string
	f.cfg.OnFraud = func(_ context.Context, id, _ string) { frauds = append(frauds, id) }

	d := join(t, f, acct, "key-a", host("m-a"))
	if d.Status != iog.DevicePending {
		t.Fatalf("joined as %s", d.Status)
	}
	// Neither has proved the host yet: both are challenged, the first to prove keeps it.
	clone := join(t, f, acct, "key-clone", host("m-a"))
	if clone.Status != iog.DevicePending {
		t.Fatalf("clone: %s %s", clone.Status, clone.StatusReason)
	}
	big := host("m-big")
	for i := range 17 {
		big.GPUs = append(big.GPUs, api.GPU{UUID: "GPU-" + string(rune('a'+i)), Model: "RTX-4090", MemoryMiB: 24564})
	}
	if b := join(t, f, acct, "key-big", big); b.Status != iog.DeviceBlocked || !strings.Contains(b.StatusReason, "limit") {
		t.Fatalf("17 GPUs: %s %s", b.Status, b.StatusReason)
	}

	if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Minute)
	f.seen[d.ID] = clk.Now() // heartbeats meanwhile
	f.trustTick(ctx)
	if res := answer(t, f, status(t, f, d.ID), false); res.Result != "passed" {
		t.Fatalf("honest answer: %+v", res)
	}
	if d = status(t, f, d.ID); d.Status != iog.DevicePending || !strings.Contains(d.StatusReason, "probation") {
		t.Fatalf("after a pass: %s %s", d.Status, d.StatusReason)
	}
	if c := status(t, f, clone.ID); c.Status != iog.DeviceBlocked || !strings.Contains(c.StatusReason, "proved it first") {
		t.Fatalf("clone after the original proved: %s %s", c.Status, c.StatusReason)
	}
	clk.Add(time.Hour)
	f.trustTick(ctx)
	if d = status(t, f, d.ID); d.Status != iog.DeviceReady {
		t.Fatalf("after probation: %s %s", d.Status, d.StatusReason)
	}
	if at, ok, err := f.LastPassedProof(ctx, d.ID); err != nil || !ok || at.IsZero() {
		t.Fatalf("last passed proof %v %v %v", at, ok, err)
	}

	// New hardware after verification: back to pending.
	more := host("m-a")
	more.MemoryMiB *= 2
	if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: more}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if d = status(t, f, d.ID); d.Status != iog.DevicePending || !strings.Contains(d.StatusReason, "hardware changed") {
		t.Fatalf("after a hardware change: %s %s", d.Status, d.StatusReason)
	}

	// A wrong answer is fraud: blocked, and the hook fires.
	clk.Add(20 * time.Minute)
	f.seen[d.ID] = clk.Now()
	f.trustTick(ctx)
	if res := answer(t, f, status(t, f, d.ID), true); res.Result != "fraud" {
		t.Fatalf("wrong answer: %+v", res)
	}
	if d = status(t, f, d.ID); d.Status != iog.DeviceBlocked || !strings.Contains(d.StatusReason, "fraud") || len(frauds) != 1 {
		t.Fatalf("after fraud: %s %s, hook %v", d.Status, d.StatusReason, frauds)
	}
}

func TestIdlePolicy(t *testing.T) {
	f, clk, acct := newFleet(t)
	f.cfg.SkipProofs = true // ready at join: this is about telemetry
	ctx := t.Context()
	d := join(t, f, acct, "key-a", host("m-a"))
	d.Status = iog.DeviceReady
	if _, err := f.db.SetDeviceStatus(ctx, d.ID, iog.DeviceReady, "test", clk.Now()); err != nil {
		t.Fatal(err)
	}
	h, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	nonce := h.Nonce
	beat := func(cpu float64) {
		r, err := f.Heartbeat(ctx, status(t, f, d.ID), api.HeartbeatRequest{Nonce: nonce, Telemetry: api.Telemetry{CPUPercent: cpu}})
		if err != nil {
			t.Fatal(err)
		}
		nonce = r.Nonce
		clk.Add(10 * time.Minute)
	}
	for range 4 {
		beat(95)
	}
	tr, _ := f.db.DeviceTrust(ctx, d.ID)
	if tr.IdleWarnedAt.IsZero() || !tr.IdleFlaggedAt.IsZero() {
		t.Fatalf("after 40 busy minutes: %+v", tr)
	}
	// A coordinator restart keeps the warning: the new one starts from the stored record (read
	// by the hello's trust check, fleet.primeIdle), so the flag comes when it would have.
	f = New(Config{Store: f.db, Now: clk.Now, Trust: f.cfg.Trust})
	if h, err = f.Hello(ctx, status(t, f, d.ID), api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	nonce = h.Nonce
	for range 7 {
		beat(95)
	}
	if flagged, why, _ := f.rec.IdleFlagged(ctx, d.ID); !flagged || !strings.Contains(why, "busy while not hired") {
		t.Fatalf("after 110 busy minutes: %v %q", flagged, why)
	}
	for range 150 {
		beat(3)
	}
	if flagged, _, _ := f.rec.IdleFlagged(ctx, d.ID); flagged {
		t.Fatal("still flagged after a day idle")
	}
}
