package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/proof"
)

func TestRetryNote(t *testing.T) {
	now := time.Date(2026, 11, 21, 13, 50, 0, 0, time.UTC)
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{15 * time.Minute, "retry at 14:05 UTC, in 15 min"},
		{14*time.Minute + 31*time.Second, "retry at 14:04 UTC, in 15 min"},
		{1500 * time.Millisecond, "retry at 13:50:01 UTC, in 2 s"},
		{2*time.Hour + 5*time.Minute, "retry at 15:55 UTC, in 2 h 5 min"},
		{11 * time.Hour, "retry at Nov 22 00:50 UTC, in 11 h 0 min"},
	} {
		if got := retryNote(now.Add(c.in), now); got != c.want {
			t.Errorf("retryNote(+%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestFailedProofStatesItsRetry: a device whose proof failed says when it is challenged again,
// and that is when it is.
func TestFailedProofStatesItsRetry(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	d := join(t, f, acct, "key-a", host("m-a"))
	if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Minute)
	ch, due := failProof(t, f, clk, d, "not enough memory")
	d = status(t, f, d.ID)
	want := retryNote(due, clk.Now())
	if d.Status != iog.DevicePending || !strings.HasSuffix(d.StatusReason, "; "+want) {
		t.Fatalf("after a failed proof: %s %q, want it to end %q", d.Status, d.StatusReason, want)
	}
	if in := due.Sub(clk.Now()); in < 7*time.Minute+30*time.Second || in >= 22*time.Minute+30*time.Second {
		t.Fatalf("retry in %s, want 15 min ± half", in)
	}
	var hh, mm, mins int
	if _, err := fmt.Sscanf(want, "retry at %d:%d UTC, in %d min", &hh, &mm, &mins); err != nil {
		t.Fatalf("%q: %v", want, err)
	}
	// Not due a second before the stated time; due at it.
	clk.Add(due.Sub(clk.Now()) - time.Second)
	f.seen[d.ID] = clk.Now()
	f.trustTick(ctx)
	if ch2 := f.ProofFor(status(t, f, d.ID)); ch2 != nil && ch2.ID != ch.ID {
		t.Fatal("challenged again before the stated time")
	}
	clk.Add(time.Second)
	f.seen[d.ID] = clk.Now()
	f.trustTick(ctx)
	if ch2 := f.ProofFor(status(t, f, d.ID)); ch2 == nil || ch2.ID == ch.ID {
		t.Fatal("not challenged again at the stated time")
	}
}

// TestCPUProofSizedWithinTheWorkersBound: a CPU device's challenge never asks for more RAM
// than the bound its worker reported; without one it takes half the claimed memory.
func TestCPUProofSizedWithinTheWorkersBound(t *testing.T) {
	for _, c := range []struct {
		bound, wantMax, wantMin int64 // MiB
	}{
		{0, 2048, 2000},
		{512, 512, 500},
		{8192, 2048, 2000}, // a bound above half the memory changes nothing
	} {
		f, clk, acct := newFleet(t)
		f.cfg.Trust.Params = proof.ParamsFor
		inv := host("m-a")
		inv.ProofMemoryMiB = c.bound
		d := join(t, f, acct, "key-a", inv)
		if _, err := f.Hello(t.Context(), d, api.HelloRequest{Inventory: inv}, "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
		clk.Add(6 * time.Minute)
		f.seen[d.ID] = clk.Now()
		f.trustTick(t.Context())
		ch := f.ProofFor(status(t, f, d.ID))
		if ch == nil {
			t.Fatalf("bound %d: no challenge", c.bound)
		}
		if mib := ch.Params.MemoryBytes >> 20; mib > c.wantMax || mib < c.wantMin {
			t.Errorf("bound %d MiB: challenge takes %d MiB, want %d..%d", c.bound, mib, c.wantMin, c.wantMax)
		}
	}
}

// TestReputationAtUsesTheProofStateThen: a block's inputs are the device's proof state at the
// block's end: a pass before it counts even when a later proof failed, and a later pass does
// not hide an earlier one.
func TestReputationAtUsesTheProofStateThen(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	d := join(t, f, acct, "key-a", host("m-a"))
	if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	prove := func(pass bool) time.Time {
		t.Helper()
		f.tr.mu.Lock()
		f.tr.due[d.ID] = clk.Now()
		f.tr.mu.Unlock()
		f.seen[d.ID] = clk.Now()
		f.trustTick(ctx)
		if pass {
			if res := answer(t, f, status(t, f, d.ID), false); res.Result != "passed" {
				t.Fatalf("honest answer: %+v", res)
			}
		} else {
			ch := f.ProofFor(status(t, f, d.ID))
			if ch == nil {
				t.Fatal("no challenge")
			}
			if _, err := f.StartProof(ctx, d, ch.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.AnswerProof(ctx, d, ch.ID, api.ProofAnswer{Error: "gave up"}); err != nil {
				t.Fatal(err)
			}
		}
		return clk.Now()
	}
	clk.Add(6 * time.Minute)
	passed := prove(true)
	clk.Add(30 * time.Minute)
	blockEnd := clk.Now()
	clk.Add(30 * time.Minute)
	prove(false)
	clk.Add(time.Minute)

	then, err := f.rec.ReputationAt(ctx, d.ID, blockEnd)
	if err != nil {
		t.Fatal(err)
	}
	now, err := f.rec.ReputationAt(ctx, d.ID, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if then == 0 || now != 0 {
		t.Fatalf("reputation at the block's end %d (passed then), now %d (failed since)", then, now)
	}
	within := func(at time.Time) bool {
		t.Helper()
		ok, err := f.rec.ProofPassedWithin(ctx, d.ID, at, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !within(blockEnd) || within(passed.Add(-time.Second)) {
		t.Fatal("a pass is counted by the time it happened")
	}
	clk.Add(time.Hour)
	prove(true) // a later pass must not hide the earlier one from the earlier block
	if !within(blockEnd) {
		t.Fatal("a later pass hid the pass before the block's end")
	}
}

// TestRetriesBackOff: each proof in a row that a device does not pass doubles the mean delay
// before its next one, up to MaxRetryBackoff times RetryPending; a pass starts over.
func TestRetriesBackOff(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	d := join(t, f, acct, "key-a", host("m-a"))
	if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-a")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Minute)
	mean := f.cfg.Trust.RetryPending
	fail := func() time.Duration {
		t.Helper()
		_, due := failProof(t, f, clk, d, "gave up")
		in := due.Sub(clk.Now())
		clk.Add(in)
		return in
	}
	for i, mult := range []time.Duration{1, 2, 4, 8, 16, 16, 16} {
		in := fail()
		if in < mult*mean/2 || in >= mult*mean*3/2 {
			t.Fatalf("failure %d: retry in %s, want %d x %s ± half", i+1, in, mult, mean)
		}
	}
	// A pass forgets the failures.
	f.passed(d.ID)
	if in := fail(); in >= mean*3/2 {
		t.Fatalf("after a pass, the next failure's retry is in %s, want about %s", in, mean)
	}
}

// failProof runs the trust loop now with d seen, takes the challenge it issues d, starts it and
// answers it with the solver's error why; it returns the challenge and when d is due again.
func failProof(t *testing.T, f *Fleet, clk *iogtest.Clock, d iog.Device, why string) (*api.ProofChallenge, time.Time) {
	t.Helper()
	ctx := t.Context()
	f.seen[d.ID] = clk.Now()
	f.trustTick(ctx)
	ch := f.ProofFor(status(t, f, d.ID))
	if ch == nil {
		t.Fatal("no challenge when due")
	}
	if _, err := f.StartProof(ctx, d, ch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AnswerProof(ctx, d, ch.ID, api.ProofAnswer{Error: why}); err != nil {
		t.Fatal(err)
	}
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	return ch, f.tr.due[d.ID]
}

// TestRoundsChallengeWholeGroups: one due device brings its whole group into one round, at one
// instant: the devices of its owner, those behind the same address, and theirs in turn (owner
// A's device shares an address with owner B's, so B's device at another address comes too);
// a device of another group, and one of the group that is not beating here, are left alone.
func TestRoundsChallengeWholeGroups(t *testing.T) {
	f, clk, a := newFleet(t)
	ctx := t.Context()
	if !f.cfg.Trust.GroupByAddr {
		t.Fatal("the default trust groups by address")
	}
	owner := func(id string) iog.Account {
		acct := iog.Account{ID: id, Name: id, Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: clk.Now()}
		if err := f.db.CreateAccount(ctx, acct, "h-"+id, "p-"+id); err != nil {
			t.Fatal(err)
		}
		return acct
	}
	b, c := owner("acc_b"), owner("acc_c")
	devs := map[string]iog.Device{}
	for _, x := range []struct {
		name string
		acct iog.Account
		addr string
		live bool
	}{
		{"a1", a, "10.0.0.1", true}, {"a2", a, "10.0.0.2", true},
		{"b1", b, "10.0.0.2", true}, {"b2", b, "10.0.0.3", true}, {"b3", b, "10.0.0.4", false},
		{"c1", c, "10.0.0.5", true},
	} {
		d := join(t, f, x.acct, "key-"+x.name, host("m-"+x.name))
		if x.live {
			if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host("m-" + x.name)}, x.addr); err != nil {
				t.Fatal(err)
			}
		}
		devs[x.name] = d
	}
	// Only a1 is due.
	f.tr.mu.Lock()
	for name, d := range devs {
		f.tr.due[d.ID] = clk.Now().Add(time.Hour)
		if name == "a1" {
			f.tr.due[d.ID] = clk.Now()
		}
	}
	f.tr.mu.Unlock()
	f.trustTick(ctx)
	round := func(name string) (string, time.Time) {
		f.tr.mu.Lock()
		defer f.tr.mu.Unlock()
		if op := f.tr.byDevice[devs[name].ID]; op != nil {
			return op.p.RoundID, op.p.IssuedAt
		}
		return "", time.Time{}
	}
	r, at := round("a1")
	if r == "" {
		t.Fatal("the due device was not challenged")
	}
	for _, name := range []string{"a2", "b1", "b2"} {
		if got, gotAt := round(name); got != r || !gotAt.Equal(at) {
			t.Errorf("%s: round %q at %v, want a1's %q at %v", name, got, gotAt, r, at)
		}
	}
	for _, name := range []string{"b3", "c1"} {
		if got, _ := round(name); got != "" {
			t.Errorf("%s was challenged (round %q): it is not in a1's group here", name, got)
		}
	}
}
