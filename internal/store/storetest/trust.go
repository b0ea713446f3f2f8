package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Trust runs the trust conformance cases (proofs, hardware identities, trust records).
func Trust(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("hardware identities are unique", func(t *testing.T) { hardware(t, open(t)) })
	t.Run("proofs close exactly once", func(t *testing.T) { proofs(t, open(t)) })
	t.Run("trust records and outcomes", func(t *testing.T) { trustRecord(t, open(t)) })
}

func hardware(t *testing.T, db *store.DB) {
	ctx := t.Context()
	a, b := supplier(t, db, "alice"), supplier(t, db, "bob")
	d1, d2, d3 := register(t, db, a, "dev_1"), register(t, db, a, "dev_2"), register(t, db, b, "dev_3")
	claim := func(id, owner string, keys ...string) store.HardwareClaim {
		t.Helper()
		c, err := db.ClaimHardware(ctx, id, owner, keys, t0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := claim(d1.ID, a, "gpu:GPU-1", "gpu:GPU-2"); c.Key != "" {
		t.Fatalf("first claim: %+v", c)
	}
	// Unproven claims do not exclude each other.
	if c := claim(d3.ID, b, "gpu:GPU-2"); c.Key != "" {
		t.Fatalf("a second unproven claim: %+v", c)
	}
	// Proving binds: the other claimant lost; a bound key refuses new claims.
	key, holder, losers, err := db.BindHardware(ctx, d1.ID, []string{"gpu:GPU-1", "gpu:GPU-2"}, t0)
	if err != nil || key != "" || holder != "" || len(losers) != 1 || losers[d3.ID] != "gpu:GPU-2" {
		t.Fatalf("bind: %q %q %v %v", key, holder, losers, err)
	}
	if key, holder, _, _ := db.BindHardware(ctx, d3.ID, []string{"gpu:GPU-2"}, t0); key != "gpu:GPU-2" || holder != d1.ID {
		t.Fatalf("a second bind: %q %q", key, holder)
	}
	c := claim(d2.ID, a, "gpu:GPU-3", "gpu:GPU-2")
	if c.Key != "gpu:GPU-2" || c.Holder != d1.ID {
		t.Fatalf("clone of bound hardware: %+v", c)
	}
	// Nothing of a refused claim is kept: GPU-3 is d2's to claim again, nobody else's yet.
	if c := claim(d1.ID, a, "gpu:GPU-1", "gpu:GPU-2", "gpu:GPU-3"); c.Key != "" {
		t.Fatalf("GPU-3 was kept by the refused claim: %+v", c)
	}
	// A deleted device's bound hardware may join again.
	if err := db.DeleteDevice(ctx, d1.ID, t0); err != nil {
		t.Fatal(err)
	}
	if c := claim(d2.ID, a, "gpu:GPU-2"); c.Key != "" {
		t.Fatalf("after delete: %+v", c)
	}
	// Hardware blocked for fraud: refused to the owner, flagged for anyone else.
	if err := db.BlockHardware(ctx, d2.ID, a, []string{"gpu:GPU-2"}, "fraud: proof pf_1", t0); err != nil {
		t.Fatal(err)
	}
	d4 := register(t, db, a, "dev_4")
	if c := claim(d4.ID, a, "gpu:GPU-2"); c.Key != "gpu:GPU-2" || !strings.Contains(c.Fraud, "fraud") {
		t.Fatalf("the owner's new device on fraud hardware: %+v", c)
	}
	if c := claim(d3.ID, b, "gpu:GPU-2"); c.Key != "" || len(c.Review) != 1 {
		t.Fatalf("another owner's device on fraud hardware: %+v", c)
	}
	if why, err := db.HardwareReview(ctx, d3.ID); err != nil || !strings.Contains(why, d2.ID) {
		t.Fatalf("review: %q %v", why, err)
	}
	if why, _ := db.HardwareReview(ctx, d4.ID); why != "" {
		t.Fatalf("the refused claim left a review: %q", why)
	}
}

func proofs(t *testing.T, db *store.DB) {
	ctx := t.Context()
	a := supplier(t, db, "alice")
	d := register(t, db, a, "dev_1")
	if _, ok, err := db.LastPassedProof(ctx, d.ID); err != nil || ok {
		t.Fatalf("no proofs yet: %v %v", ok, err)
	}
	mk := func(id, round string, at time.Time) iog.Proof {
		return iog.Proof{ID: id, DeviceID: d.ID, RoundID: round, Class: "cpu", Units: []string{"cpu"}, Threads: 2,
			Params: []byte(`{"x":1}`), Nonce: "ab", Epoch: 3, IssuedAt: at, StartBy: at.Add(time.Second),
			ExpectedMS: 10, MinMS: 1, DeadlineMS: 100, Result: iog.ProofIssued}
	}
	// One open proof per device: a batch with two for one device records neither.
	code(t, db.CreateProofs(ctx, []iog.Proof{mk("pf_1", "rd_1", t0), mk("pf_2", "rd_2", t0.Add(time.Minute))}), iog.ECONFLICT)
	if open, err := db.OpenProofs(ctx); err != nil || len(open) != 0 {
		t.Fatalf("open after a refused batch: %d %v", len(open), err)
	}
	if err := db.CreateProofs(ctx, []iog.Proof{mk("pf_1", "rd_1", t0)}); err != nil {
		t.Fatal(err)
	}
	open, err := db.OpenProofs(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open: %d %v", len(open), err)
	}
	got, err := db.Proof(ctx, "pf_1")
	if err != nil || got.Threads != 2 || len(got.Units) != 1 || string(got.Params) != `{"x":1}` || !got.StartBy.Equal(t0.Add(time.Second)) {
		t.Fatalf("read back %+v %v", got, err)
	}
	if ok, err := db.StartProof(ctx, "pf_1", t0.Add(time.Millisecond)); err != nil || !ok {
		t.Fatalf("start: %v %v", ok, err)
	}
	if ok, _ := db.StartProof(ctx, "pf_1", t0); ok {
		t.Fatal("started twice")
	}
	p := got
	p.Result, p.Reason, p.AnsweredAt, p.ElapsedMS = iog.ProofPassed, "ok", t0.Add(50*time.Millisecond), 49
	if ok, err := db.FinishProof(ctx, p); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	p.Result = iog.ProofFraud
	if ok, _ := db.FinishProof(ctx, p); ok {
		t.Fatal("finished twice")
	}
	p.Result = iog.ProofStarted
	code(t, func() error { _, err := db.FinishProof(ctx, p); return err }(), iog.EINVALID)
	at, ok, err := db.LastPassedProof(ctx, d.ID)
	if err != nil || !ok || !at.Equal(t0.Add(50*time.Millisecond)) {
		t.Fatalf("last passed: %v %v %v", at, ok, err)
	}
	if err := db.CreateProofs(ctx, []iog.Proof{mk("pf_2", "rd_2", t0.Add(time.Minute))}); err != nil {
		t.Fatalf("a proof after the last one closed: %v", err)
	}
	miss, _ := db.Proof(ctx, "pf_2")
	miss.Result, miss.Reason = iog.ProofMissed, "late"
	if _, err := db.FinishProof(ctx, miss); err != nil {
		t.Fatal(err)
	}
	hist, err := db.DeviceProofs(ctx, d.ID, 10)
	if err != nil || len(hist) != 2 || hist[0].ID != "pf_1" || hist[1].Result != iog.ProofMissed {
		t.Fatalf("history %+v %v", hist, err)
	}
	round, err := db.RoundProofs(ctx, "rd_2")
	if err != nil || len(round) != 1 {
		t.Fatalf("round %v %v", round, err)
	}
	outs, err := db.ProofOutcomes(ctx, d.ID, t0.Add(-time.Hour))
	if err != nil || len(outs) != 2 {
		t.Fatalf("outcomes %v %v", outs, err)
	}
	if open, _ := db.OpenProofs(ctx); len(open) != 0 {
		t.Fatalf("still open: %d", len(open))
	}
	// A round's passes are counted once, whoever asks.
	for i, want := range []bool{true, false} {
		if ok, err := db.ClaimRound(ctx, "rd_2", t0); err != nil || ok != want {
			t.Fatalf("claim %d of rd_2: %v %v, want %v", i+1, ok, err, want)
		}
	}
}

func trustRecord(t *testing.T, db *store.DB) {
	ctx := t.Context()
	a := supplier(t, db, "alice")
	d := register(t, db, a, "dev_1")
	tr, err := db.DeviceTrust(ctx, d.ID)
	if err != nil || !tr.VerifiedAt.IsZero() || tr.DeviceID != d.ID {
		t.Fatalf("empty record %+v %v", tr, err)
	}
	tr.VerifiedHW, tr.VerifiedAt, tr.ProbationUntil, tr.IdleWarnedAt, tr.UpheldDisputes = "hw1", t0, t0.Add(time.Hour), t0, 2
	if err := db.SetDeviceTrust(ctx, tr); err != nil {
		t.Fatal(err)
	}
	tr.IdleFlaggedAt = t0.Add(time.Minute)
	if err := db.SetDeviceTrust(ctx, tr); err != nil {
		t.Fatal(err)
	}
	got, err := db.DeviceTrust(ctx, d.ID)
	if err != nil || got != tr {
		t.Fatalf("got %+v, want %+v (%v)", got, tr, err)
	}
	if _, err := db.SetDeviceStatus(ctx, d.ID, iog.DeviceDown, "missed", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetDeviceStatus(ctx, d.ID, iog.DeviceReady, "back", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	evs, err := db.DeviceEventsSince(ctx, d.ID, t0.Add(90*time.Minute))
	if err != nil || len(evs) != 2 || evs[0].Status != iog.DeviceDown || evs[1].Status != iog.DeviceReady {
		t.Fatalf("events since: %+v %v", evs, err)
	}
	jobs, err := db.JobOutcomes(ctx, d.ID, t0)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("jobs %v %v", jobs, err)
	}
}
