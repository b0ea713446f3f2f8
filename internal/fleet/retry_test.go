package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
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
	f.seen[d.ID] = clk.Now()
	f.trustTick(ctx)
	ch := f.ProofFor(status(t, f, d.ID))
	if ch == nil {
		t.Fatal("no challenge")
	}
	if _, err := f.StartProof(ctx, d, ch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AnswerProof(ctx, d, ch.ID, api.ProofAnswer{Error: "not enough memory"}); err != nil {
		t.Fatal(err)
	}
	d = status(t, f, d.ID)
	f.tr.mu.Lock()
	due := f.tr.due[d.ID]
	f.tr.mu.Unlock()
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
