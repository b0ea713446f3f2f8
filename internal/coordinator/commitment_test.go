package coordinator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestCommitmentEndedEarlyCostsAtLeastHourly: 2 h of a daily commitment then terminate costs
// no less than 2 h hourly on the same device; get and list show the same money; the
// supplier's earnings are its settlements, and the renter's refunds are not among them.
func TestCommitmentEndedEarlyCostsAtLeastHourly(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	e.fund(t, e.renterID, 10_000*iog.Unit)

	// spent runs a 24 h cluster of the commitment for 2 h 10 s, terminates it, and returns what
	// its escrow paid out to the supplier (subtotal - refund).
	spent := func(commit string) (iog.Amount, api.Cluster) {
		c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 24, Commitment: commit, Command: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Nodes {
			if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
				t.Fatal(err)
			}
		}
		e.clk.Add(time.Hour)
		e.heartbeatAll(t)
		if err := e.c.Testing().Settle(ctx); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Hour + 10*time.Second)
		e.heartbeatAll(t)
		got, err := e.renter.Cluster(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		list, err := e.renter.Clusters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range list {
			if l.ID == c.ID && (l.Money == nil || *l.Money != *got.Money) {
				t.Fatalf("list money %+v, get money %+v", l.Money, got.Money)
			}
		}
		before := e.bal(t, iog.AccWallet(e.renterID))
		end, err := e.renter.TerminateCluster(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		refund := e.bal(t, iog.AccWallet(e.renterID)) - before
		if refund != amt(t, got.Money.RefundableNow) {
			t.Fatalf("%s: refundable now said %s, terminate refunded %s", commit, got.Money.RefundableNow, refund)
		}
		e.verify(t)
		return amt(t, c.Quote.Subtotal) - refund, end
	}
	hourly, _ := spent("hourly")
	daily, end := spent("daily")
	if daily < hourly {
		t.Fatalf("2 h of a daily commitment cost %s, less than 2 h hourly %s", daily, hourly)
	}
	q := end.Quote
	per := amt(t, q.Devices[0].PerHour)
	undisc := (per*1000 + 949) / 950
	if want := undisc * 2; daily != want {
		t.Fatalf("2 h of a daily commitment at %s/h discounted cost %s, want 2 h at the undiscounted %s/h = %s", per, daily, undisc, want)
	}

	// The supplier's earnings are exactly its settlements (net of fees), in the ledger.
	earn, err := e.supplier.Earnings(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := amt(t, earn.Leases["IO"]), e.bal(t, iog.AccWallet(e.supID)); got != want {
		t.Fatalf("earnings %s, supplier wallet %s", got, want)
	}
}

// TestEarningsOfAnAccountThatRentsItsOwnDevice: an account that is both renter and supplier
// earns its settlements, never its own refunds.
func TestEarningsOfAnAccountThatRentsItsOwnDevice(t *testing.T) {
	e := startMoney(t, 0)
	ctx := t.Context()
	r, err := e.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "both", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	both := api.NewClient(e.c.URL(), r.APIKey)
	e.supplier, e.supID = both, r.Account.ID
	e.renter, e.renterID = both, r.Account.ID
	e.workers = append(e.workers, e.join(t, both, "hostz"))
	e.fund(t, e.renterID, 1000*iog.Unit)
	c, err := both.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 4, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.worker(c.Nodes[0].DeviceID).LeaseStatus(ctx, c.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(60*time.Minute + 10*time.Second)
	e.heartbeatAll(t)
	if _, err := both.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	earn, err := both.Earnings(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	per := amt(t, c.Quote.Devices[0].PerHour)
	fee := (per*2500 + 999_999) / 1_000_000
	if got := amt(t, earn.Leases["IO"]); got != per-fee {
		t.Fatalf("earnings %s; one hour at %s/h less the 0.25%% fee is %s (the refund of 3 h must not count)", got, per, per-fee)
	}
	e.verify(t)
}

// join registers a CPU device of owner and says hello, as startMoney's devices do.
func (e *moneyEnv) join(t *testing.T, owner *api.Client, host string) *api.Client {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jt, err := owner.CreateJoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w := &api.Client{Base: e.c.URL(), Key: priv, Now: e.clk.Now}
	inv := cpuInventory(host)
	r, err := w.Register(t.Context(), api.RegisterRequest{JoinToken: jt.Token, Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	w.DeviceID = r.DeviceID
	h, err := w.Hello(t.Context(), api.HelloRequest{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	e.nonces[w.DeviceID] = h.Nonce
	return w
}
