package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
)

// tellTo hands what one coordinator tells straight to another (the bus's part, over
// PostgreSQL in TestSharedProofRoundsOverTheBus, internal/coordinator).
type tellTo struct {
	to  *Fleet
	off bool // lost: nothing is told
}

func (t *tellTo) TellProof(device, id string) {
	if !t.off {
		t.to.RemoteProof(context.Background(), device, id)
	}
}

func (t *tellTo) TellSchedule(device string, at time.Time) {
	if !t.off {
		t.to.RemoteSchedule(device, at)
	}
}

// roundOf is the round and instant of device id's latest proof, from the store.
func roundOf(t *testing.T, f *Fleet, id string) (string, time.Time, iog.ProofResult) {
	t.Helper()
	ps, err := f.db.DeviceProofs(t.Context(), id, 1)
	if err != nil || len(ps) != 1 {
		t.Fatalf("proofs of %s: %v %v", id, ps, err)
	}
	return ps[0].RoundID, ps[0].IssuedAt, ps[0].Result
}

// pair is two coordinators' fleets on one store, telling each other directly, with one
// owner's device d1 held by fa and d2 held by fb.
type pair struct {
	fa, fb   *Fleet
	clk      *iogtest.Clock
	d1, d2   iog.Device
	toA, toB *tellTo
	beat     func() // both devices beat now, and their last-seen times reach the store
}

func sharedPair(t *testing.T) *pair {
	fa, clk, acct := newFleet(t)
	ctx := t.Context()
	fb := New(Config{Store: fa.db, Now: clk.Now, Trust: fa.cfg.Trust})
	p := &pair{fa: fa, fb: fb, clk: clk, toB: &tellTo{to: fb}, toA: &tellTo{to: fa}}
	fa.Share(p.toB)
	fb.Share(p.toA)
	p.d1 = join(t, fa, acct, "key-1", host("m-1"))
	p.d2 = join(t, fa, acct, "key-2", host("m-2"))
	online(t, fa, p.d1, host("m-1"))
	online(t, fb, p.d2, host("m-2"))
	p.beat = func() {
		fa.mu.Lock()
		fa.seen[p.d1.ID], fa.dirty[p.d1.ID] = clk.Now(), clk.Now()
		fa.mu.Unlock()
		fb.mu.Lock()
		fb.seen[p.d2.ID], fb.dirty[p.d2.ID] = clk.Now(), clk.Now()
		fb.mu.Unlock()
		fa.flush(ctx)
		fb.flush(ctx)
	}
	return p
}

// TestSharedProofStartedElsewhere: a coordinator whose memory says a proof was not started
// does not call it missed when the store says another coordinator started it (its device moved
// there, and both took the proof up): it times it from that start.
func TestSharedProofStartedElsewhere(t *testing.T) {
	p := sharedPair(t)
	ctx := t.Context()
	p.clk.Add(10 * time.Minute)
	p.beat()
	p.fa.tr.mu.Lock()
	p.fa.tr.due[p.d1.ID] = p.clk.Now()
	p.fa.tr.mu.Unlock()
	p.fa.trustTick(ctx)
	ch := p.fb.ProofFor(p.d2)
	if ch == nil {
		t.Fatal("B does not serve d2's challenge")
	}
	if ok, err := p.fa.db.StartProof(ctx, ch.ID, p.clk.Now()); err != nil || !ok {
		t.Fatalf("start elsewhere: %v %v", ok, err)
	}
	p.clk.Add(p.fa.cfg.Trust.StartWindow + time.Second)
	p.beat()
	p.fb.trustTick(ctx)
	if _, _, res := roundOf(t, p.fa, p.d2.ID); res != iog.ProofStarted {
		t.Fatalf("d2's proof, started elsewhere, is %s after the start window", res)
	}
	p.clk.Add(time.Duration(ch.DeadlineMS)*time.Millisecond + time.Second)
	p.beat()
	p.fb.trustTick(ctx)
	if _, _, res := roundOf(t, p.fa, p.d2.ID); res != iog.ProofMissed {
		t.Fatalf("d2's proof past its deadline is %s, want missed", res)
	}
}

// TestSharedRoundsSpanCoordinators: one owner's two devices, held by two coordinators on one
// store, are challenged in one round at one instant by the coordinator where one fell due; the
// other serves its member's challenge. A pass on one side does not verify its device while the
// other missed, whichever side closes the round; with both passed, both are verified. A proof
// nobody serves is voided after its window, and its round closes.
func TestSharedRoundsSpanCoordinators(t *testing.T) {
	p := sharedPair(t)
	fa, fb, clk, d1, d2, beat, toB := p.fa, p.fb, p.clk, p.d1, p.d2, p.beat, p.toB
	ctx := t.Context()
	dueOn := func(f *Fleet, id string) {
		f.tr.mu.Lock()
		for k := range f.tr.due {
			f.tr.due[k] = clk.Now().Add(time.Hour)
		}
		f.tr.due[id] = clk.Now()
		f.tr.mu.Unlock()
	}
	clk.Add(10 * time.Minute)
	beat()
	dueOn(fb, d2.ID)
	fb.tr.mu.Lock()
	fb.tr.due[d2.ID] = clk.Now().Add(time.Hour)
	fb.tr.mu.Unlock()
	dueOn(fa, d1.ID)

	// Round 1: d1 falls due on A; d2, on B, is in the same round, served by B only.
	fa.trustTick(ctx)
	r1, at1, _ := roundOf(t, fa, d1.ID)
	r2, at2, _ := roundOf(t, fa, d2.ID)
	if r1 != r2 || !at1.Equal(at2) {
		t.Fatalf("d1 in round %s at %v, d2 in %s at %v: want one round at one instant", r1, at1, r2, at2)
	}
	if fb.ProofFor(d2) == nil || fa.ProofFor(d2) != nil || fa.ProofFor(d1) == nil {
		t.Fatal("each device's challenge is served by the coordinator that holds it")
	}
	// A second round over d2 at once, from anywhere, is refused by the store.
	fb.tr.mu.Lock()
	fb.tr.byDevice = map[string]*openProof{}
	fb.tr.mu.Unlock()
	if err := fb.issueRound(ctx, []iog.Device{status(t, fb, d2.ID)}, nil, clk.Now()); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a second open proof for d2: %v, want ECONFLICT", err)
	}
	fb.tr.mu.Lock()
	for _, op := range fb.tr.open {
		fb.tr.byDevice[op.p.DeviceID] = op
	}
	fb.tr.mu.Unlock()

	// d1 passes; d2 never starts: B times it out and closes the round, dirty.
	if res := answer(t, fa, d1, false); res.Result != string(iog.ProofPassed) {
		t.Fatalf("d1's answer: %+v", res)
	}
	if d := status(t, fa, d1.ID); d.Status != iog.DevicePending {
		t.Fatalf("d1 is %s before its round closed", d.Status)
	}
	clk.Add(fa.cfg.Trust.StartWindow + time.Second)
	beat()
	fb.trustTick(ctx)
	if _, _, res := roundOf(t, fa, d2.ID); res != iog.ProofMissed {
		t.Fatalf("d2's proof is %s, want missed", res)
	}
	d := status(t, fa, d1.ID)
	if d.Status != iog.DevicePending || !strings.Contains(d.StatusReason, "1 of the 2 devices challenged with it at the same instant") {
		t.Fatalf("d1 after a dirty shared round: %s %q", d.Status, d.StatusReason)
	}
	// B closed the round; A, which holds d1, was told when to try again.
	fa.tr.mu.Lock()
	retry, ok := fa.tr.due[d1.ID]
	fa.tr.mu.Unlock()
	if !ok || !retry.After(clk.Now()) || retry.After(clk.Now().Add(2*fa.cfg.Trust.RetryPending)) {
		t.Fatalf("d1's next challenge on A: %v %v (now %v)", retry, ok, clk.Now())
	}
	if again, err := fa.db.ClaimRound(ctx, r1, clk.Now()); err != nil || again {
		t.Fatalf("round %s counted again: %v %v", r1, again, err)
	}

	// Round 2: both pass, each on its own coordinator; both are verified.
	clk.Add(time.Hour)
	beat()
	dueOn(fb, d2.ID)
	fa.tr.mu.Lock()
	fa.tr.due[d1.ID] = clk.Now().Add(time.Hour)
	fa.tr.mu.Unlock()
	fb.trustTick(ctx)
	if r1, _, _ := roundOf(t, fa, d1.ID); r1 == "" || fa.ProofFor(d1) == nil {
		t.Fatal("d1 was not challenged with d2")
	}
	for _, x := range []struct {
		f *Fleet
		d iog.Device
	}{{fb, d2}, {fa, d1}} {
		if res := answer(t, x.f, x.d, false); res.Result != string(iog.ProofPassed) {
			t.Fatalf("%s's answer: %+v", x.d.ID, res)
		}
	}
	for _, id := range []string{d1.ID, d2.ID} {
		if d := status(t, fa, id); !strings.Contains(d.StatusReason, "passed its proof of GPU") {
			t.Fatalf("%s after a clean shared round: %s %q", id, d.Status, d.StatusReason)
		}
	}

	// Round 3: A's word about d2 is lost. Nobody serves d2's proof; after its window and the
	// grace, a coordinator voids it and the round closes (void counts neither way).
	clk.Add(7 * time.Hour)
	beat()
	toB.off = true
	dueOn(fa, d1.ID)
	fb.tr.mu.Lock()
	fb.tr.due[d2.ID] = clk.Now().Add(time.Hour)
	fb.tr.mu.Unlock()
	fa.trustTick(ctx)
	r3, _, _ := roundOf(t, fa, d2.ID)
	if fb.ProofFor(d2) != nil {
		t.Fatal("B serves a proof it was never told of")
	}
	if res := answer(t, fa, d1, false); res.Result != string(iog.ProofPassed) {
		t.Fatalf("d1's answer: %+v", res)
	}
	clk.Add(fa.cfg.Trust.StartWindow + staleGrace + staleEvery + time.Second)
	beat()
	fa.trustTick(ctx)
	if r, _, res := roundOf(t, fa, d2.ID); r != r3 || res != iog.ProofVoid {
		t.Fatalf("d2's unserved proof: round %s (want %s), %s", r, r3, res)
	}
	if ok, err := fa.db.ClaimRound(ctx, r3, clk.Now()); err != nil || ok {
		t.Fatalf("round %s was not closed: %v %v", r3, ok, err)
	}
}
