//go:build integration

package coordinator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/proof"
	"github.com/iognet/iog/internal/store/storetest"
	"github.com/iognet/iog/internal/worker"
)

// TestSharedProofRoundsOverTheBus: two coordinators on one PostgreSQL database, their trust
// loops running. Each of two owners has one device whose worker is on A and one on B. Each
// owner's devices are challenged in one round, at one instant, whichever coordinator issued
// it; each device gets its challenge from the coordinator that holds its worker, and not from
// the other. One owner's device on B never answers: its pass on A verifies nothing (one real
// device answering for two in turn looks just like this). The other owner's devices both
// answer, each on its own coordinator, and both become ready.
func TestSharedProofRoundsOverTheBus(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	tr := fleet.DefaultTrust()
	tr.Params = func(bool, int64) proof.Params {
		return proof.Params{MemoryBytes: 256 << 10, LaneWords: 64, Walkers: 16, Steps: 64, Checkpoint: 16, Groups: 64, MatN: 128, MatK: 64, MatM: 64}
	}
	// Both devices of an owner say hello at once; each is due 4 s later, on its own
	// coordinator. The other's last-seen reaches the store within a second of its hello
	// (fleet.runFlush), so the first due sees it beat elsewhere.
	tr.JoinDelayMin, tr.JoinDelayMax = 4*time.Second, 4*time.Second
	tr.StartWindow, tr.Tick, tr.Probation = 3*time.Second, 50*time.Millisecond, 0
	tr.RetryPending, tr.Reprove, tr.GroupByAddr = time.Hour, time.Hour, false
	e := startWith(t, func(c *coordinator.Config) { c.DB, c.Name, c.SkipProofs, c.Trust = dsn, "ca", false, &tr })
	b, _ := runWith(t, coordinator.Config{DB: dsn, Listen: "127.0.0.1:0", DataDir: t.TempDir(), HeartbeatInterval: time.Hour,
		Trust: &tr, Name: "cb"})
	iogtest.Poll(t, 20*time.Second, "both coordinators listening", func() error {
		if !e.c.Testing().Listening() || !b.Testing().Listening() {
			return fmt.Errorf("listening: a %v, b %v", e.c.Testing().Listening(), b.Testing().Listening())
		}
		return nil
	})
	ctx := t.Context()
	db := e.c.Testing().Store()
	// join registers a device of owner through A, without a hello: its worker says hello to
	// the coordinator at base.
	join := func(owner *api.Client, host, base string) *api.Client {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		jt, err := owner.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: e.c.URL(), Key: priv}
		r, err := w.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Inventory: cpuInventory(host)})
		if err != nil {
			t.Fatal(err)
		}
		w.DeviceID, w.Base = r.DeviceID, base
		return w
	}
	d1, d2 := join(e.user, "u-on-a", e.c.URL()), join(e.user, "u-on-b", b.URL())
	d3, d4 := join(e.other, "o-on-a", e.c.URL()), join(e.other, "o-on-b", b.URL())
	all := []*api.Client{d1, d2, d3, d4}
	var wg sync.WaitGroup
	for _, w := range all {
		wg.Go(func() {
			if _, err := w.Hello(ctx, api.HelloRequest{Inventory: cpuInventory(w.DeviceID)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	// Every device gets a challenge from its own coordinator.
	challenges := map[string]api.ProofChallenge{}
	for _, w := range all {
		iogtest.Poll(t, 30*time.Second, "a challenge for "+w.DeviceID, func() error {
			a, err := w.Assignments(ctx, -1, 0)
			if err != nil {
				return err
			}
			if a.Proof == nil {
				return fmt.Errorf("no challenge yet")
			}
			challenges[w.DeviceID] = *a.Proof
			return nil
		})
	}
	// The coordinator that does not hold a device's worker does not serve its challenge.
	for _, w := range []*api.Client{d2, d4} {
		other := *w
		other.Base = e.c.URL()
		if a, err := other.Assignments(ctx, -1, 0); err != nil || a.Proof != nil {
			t.Fatalf("A serves %s's challenge (its worker is on B): %+v %v", w.DeviceID, a.Proof, err)
		}
	}
	// One round per owner, at one instant.
	for _, pair := range [][2]*api.Client{{d1, d2}, {d3, d4}} {
		var rounds []string
		var at []time.Time
		for _, w := range pair {
			ps, err := db.DeviceProofs(ctx, w.DeviceID, 10)
			if err != nil || len(ps) != 1 {
				t.Fatalf("proofs of %s: %+v %v (want one)", w.DeviceID, ps, err)
			}
			rounds, at = append(rounds, ps[0].RoundID), append(at, ps[0].IssuedAt)
		}
		if rounds[0] != rounds[1] || !at[0].Equal(at[1]) {
			t.Fatalf("one owner's devices on A and B: rounds %v at %v, want one round at one instant", rounds, at)
		}
	}

	// d1, d3 and d4 answer, each through the coordinator that holds it; d2 stays silent.
	for _, w := range []*api.Client{d1, d3, d4} {
		res, err := worker.Prove(ctx, w, challenges[w.DeviceID], nil)
		if err != nil || res.Result != string(iog.ProofPassed) {
			t.Fatalf("%s's answer: %+v %v", w.DeviceID, res, err)
		}
	}
	status := func(w *api.Client) api.Device {
		d, err := e.admin.Device(ctx, w.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	iogtest.Poll(t, 30*time.Second, "the silent device's round closed", func() error {
		if d := status(d1); !strings.Contains(d.StatusReason, "1 of the 2 devices challenged with it at the same instant") {
			return fmt.Errorf("d1 is %s: %q", d.Status, d.StatusReason)
		}
		return nil
	})
	if d := status(d1); d.Status != "pending" {
		t.Fatalf("d1 passed while its owner's other device missed: %s %q", d.Status, d.StatusReason)
	}
	iogtest.Poll(t, 30*time.Second, "both of the other owner's devices ready", func() error {
		for _, w := range []*api.Client{d3, d4} {
			if d := status(w); d.Status != "ready" {
				return fmt.Errorf("%s is %s: %q", w.DeviceID, d.Status, d.StatusReason)
			}
		}
		return nil
	})
}
