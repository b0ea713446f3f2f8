package coordinator_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// scenario plays a random but seeded sequence of money operations against a coordinator on a
// fake clock — deposits, quotes and deploys, extends, nodes that start, exit, fail and get
// lost, early terminations, billing passes, blocks, stakes, withdrawals and slashes — and
// checks `ledger verify`, and `ledger verify --from` an export against the database, after
// every step. Some steps extend one cluster from several
// goroutines at once (the expiry must move by every extend that succeeded); with racy, a
// terminate races them, so the postings depend on the interleaving (no replay). It returns the
// postings it caused.
func scenario(t *testing.T, seed uint64, steps int, racy bool) []iog.Posting {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e := startMoney(t, 4)
	ctx := t.Context()
	e.fund(t, e.renterID, 500*iog.Unit)
	e.fund(t, e.supID, 5000*iog.Unit)
	if _, err := e.supplier.SetPayoutAddress(ctx, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"); err != nil {
		t.Fatal(err)
	}
	var clusters []api.Cluster
	dead := map[string]bool{}
	all := append([]*api.Client(nil), e.workers...)
	for step := 0; step < steps; step++ {
		op := rng.IntN(13)
		switch op {
		case 0: // deploy
			cur := []string{"IO", "USDC"}[rng.IntN(2)]
			if cur == "USDC" {
				p := iog.Transfer(fmt.Sprintf("fund-usdc:%d", step), "deposit:"+e.renterID, iog.USDC, e.clk.Now(), iog.AccExternal, iog.AccWallet(e.renterID), 50*iog.Unit, "test")
				if _, err := e.c.Testing().Store().Post(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1 + rng.IntN(2), Hours: 1 + rng.IntN(4),
				Currency: cur, Command: []string{"x"}})
			if err == nil {
				clusters = append(clusters, c)
			} else if c := iog.ErrorCode(apiErr(err)); c != iog.EUNAVAILABLE && c != iog.EINSUFFICIENTFUNDS {
				t.Fatalf("step %d: create: %v", step, err)
			}
		case 1, 2: // nodes report running
			for _, c := range clusters {
				for _, n := range c.Nodes {
					if w := e.worker(n.DeviceID); w != nil && !dead[n.DeviceID] {
						_ = w.LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"})
					}
				}
			}
		case 3: // a node exits
			if len(clusters) > 0 {
				c := clusters[rng.IntN(len(clusters))]
				n := c.Nodes[rng.IntN(len(c.Nodes))]
				code := rng.IntN(2)
				if w := e.worker(n.DeviceID); w != nil && !dead[n.DeviceID] {
					_ = w.LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "exited", ExitCode: &code})
				}
			}
		case 4: // terminate early
			if len(clusters) > 0 {
				_, _ = e.renter.TerminateCluster(ctx, clusters[rng.IntN(len(clusters))].ID)
			}
		case 5: // extend
			if len(clusters) > 0 {
				_, _ = e.renter.ExtendCluster(ctx, clusters[rng.IntN(len(clusters))].ID, 1+rng.IntN(2))
			}
		case 6: // time passes, the living heartbeat
			e.clk.Add(time.Duration(1+rng.IntN(90)) * time.Minute)
			e.heartbeatAll(t)
		case 7: // billing and liveness
			if err := e.c.Testing().Settle(ctx); err != nil {
				t.Fatalf("step %d: settle: %v", step, err)
			}
			if err := e.c.Testing().Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			e.c.Testing().CheckLiveness(ctx)
		case 8: // a node's device dies (the device of some cluster's node, so replays pick alike)
			if len(clusters) > 0 {
				c := clusters[rng.IntN(len(clusters))]
				id := c.Nodes[len(c.Nodes)-1].DeviceID
				dead[id] = true
				e.workers = removeWorker(e.workers, id)
			}
		case 9: // blocks and the other singleton work
			if err := e.c.Testing().BankTick(ctx); err != nil {
				t.Fatalf("step %d: tick: %v", step, err)
			}
		case 10: // stake or withdraw on the device of the first cluster's head (or the first device)
			dev := all[0].DeviceID
			if len(clusters) > 0 {
				dev = clusters[0].Nodes[0].DeviceID
			}
			if rng.IntN(3) == 0 {
				_, _ = e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "10"})
			} else {
				_, _ = e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: fmt.Sprint(100 + rng.IntN(200))})
			}
		case 11:
			if rng.IntN(4) == 0 && len(clusters) > 0 {
				if err := e.c.Testing().Slash(ctx, clusters[0].Nodes[0].DeviceID, "test fraud"); err != nil {
					t.Fatal(err)
				}
			}
		case 12: // concurrent extends of one cluster (and, when racy, its terminate)
			if len(clusters) > 0 {
				concurrentExtends(t, e, clusters[rng.IntN(len(clusters))].ID, 2+rng.IntN(4), 1+rng.IntN(2), racy && rng.IntN(2) == 0)
			}
		}
		r, err := e.c.Testing().VerifyNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK {
			t.Fatalf("seed %d step %d (op %d): ledger verify: %v", seed, step, op, r.Problems)
		}
		// And anyone's check of the export agrees with the database (export_test.go).
		checkExport(t, e, fmt.Sprintf("seed %d step %d (op %d)", seed, step, op))
	}
	ps, err := e.c.Testing().Store().Postings(ctx, store.PostingFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func apiErr(err error) error {
	var ae *api.Error
	if errorsAs(err, &ae) {
		return &iog.Error{Code: ae.Code, Message: ae.Message}
	}
	return err
}

// canonical renders postings as text in a stable order, so two runs can be compared exactly
// (the coordinator's ids come from a deterministic generator in these tests).
func canonical(ps []iog.Posting) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		var b strings.Builder
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s", p.At.UTC().Format(time.RFC3339Nano), p.Key, p.Cause, p.Currency, p.Memo)
		es := slices.Clone(p.Entries)
		slices.SortFunc(es, func(a, b iog.Entry) int { return strings.Compare(a.Account, b.Account) })
		for _, e := range es {
			fmt.Fprintf(&b, "|%s=%d", e.Account, e.Amount)
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out
}

func TestRandomMoneyScenariosKeepInvariantsAndReplay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 7777} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			a := canonical(scenario(t, seed, 120, false))
			b := canonical(scenario(t, seed, 120, false))
			if len(a) < 10 {
				t.Fatalf("only %d postings: the scenario did too little", len(a))
			}
			if !slices.Equal(a, b) {
				for i := range min(len(a), len(b)) {
					if a[i] != b[i] {
						t.Fatalf("replay differs at %d:\n%s\n%s", i, a[i], b[i])
					}
				}
				t.Fatalf("replay gave %d postings, first run %d", len(b), len(a))
			}
		})
	}
}

func FuzzMoneyScenario(f *testing.F) {
	for _, s := range []uint64{5, 11, 99} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		scenario(t, seed, 60, true)
	})
}

// concurrentExtends extends cluster id n times by hours at once (with terminate, while it is
// terminated) and checks that its expiry moved by exactly the extends that succeeded.
func concurrentExtends(t *testing.T, e *moneyEnv, id string, n, hours int, terminate bool) {
	t.Helper()
	ctx := t.Context()
	before, err := e.renter.Cluster(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.renter.ExtendCluster(ctx, id, hours)
			switch c := iog.ErrorCode(apiErr(err)); {
			case err == nil:
				ok.Add(1)
			case c != iog.ECONFLICT && c != iog.EINSUFFICIENTFUNDS && c != iog.EINVALID:
				t.Errorf("extend: %v", err)
			}
		})
	}
	if terminate {
		wg.Go(func() { _, _ = e.renter.TerminateCluster(ctx, id) })
	}
	wg.Wait()
	after, err := e.renter.Cluster(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := before.ExpiresAt.Add(time.Duration(ok.Load()*int64(hours)) * time.Hour); !after.ExpiresAt.Equal(want) {
		t.Fatalf("%d of %d extends by %d h succeeded; expiry moved from %v to %v", ok.Load(), n, hours, before.ExpiresAt, after.ExpiresAt)
	}
}
