package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/store"
)

// refund is a Closer that pays nothing more and refunds what the lease still holds.
func refund(wallet string) store.Closer {
	return func(l iog.Lease, c iog.Cluster) (store.Settlement, error) {
		st := store.Settlement{Minutes: l.SettledMinutes, Amount: l.Settled}
		if rest := l.Prepaid - l.Settled; rest > 0 {
			st.Postings = append(st.Postings, iog.Transfer("refund:"+l.ID, "lease:"+l.ID, iog.IO, t0, iog.AccEscrow(c.ID), wallet, rest, "refund"))
		}
		return st, nil
	}
}

// paidCluster stores a running cluster whose leases (one per device) each prepaid 1000 at
// 1000 an hour, paid from wallet into its escrow.
func paidCluster(t *testing.T, db *store.DB, id, owner, wallet string, devs ...string) iog.Cluster {
	t.Helper()
	ctx := t.Context()
	fund := iog.Transfer("fund:"+id, "deposit:x", iog.IO, t0, iog.AccExternal, wallet, 100*iog.Unit, "fund")
	if _, err := db.Post(ctx, fund); err != nil {
		t.Fatal(err)
	}
	c := cluster(id, owner, len(devs))
	c.Currency = iog.IO
	ls := leases(c, devs...)
	for i := range ls {
		ls[i].PricePerHour, ls[i].Prepaid, ls[i].SupplierID = 1000, 1000, owner
	}
	esc := iog.Transfer("escrow:"+id, "cluster:"+id, iog.IO, t0, wallet, iog.AccEscrow(id), iog.Amount(1000*len(devs)), "escrow")
	if err := db.CreateCluster(ctx, c, ls, esc); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if ok, err := db.StartLease(ctx, l.ID, t0); err != nil || !ok {
			t.Fatalf("start %s: %v %v", l.ID, ok, err)
		}
	}
	got, err := db.Cluster(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func verifyLedger(t *testing.T, db *store.DB) {
	t.Helper()
	f, err := db.LedgerFacts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := ledger.Verify(f); !r.OK {
		t.Fatalf("ledger verify: %v", r.Problems)
	}
}

func compareAndSet(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "cas")
	for _, d := range []string{"cas1", "cas2", "cas3", "cas4"} {
		register(t, db, owner, d)
	}
	wallet := iog.AccWallet(owner)
	c := paidCluster(t, db, "cl_cas", owner, wallet, "cas1", "cas2")
	if c.Rev != 2 {
		t.Fatalf("rev %d after two lease starts, want 2", c.Rev)
	}
	// A decision taken at an older revision is not written.
	if ok, err := db.SetClusterRunning(ctx, c.ID, c.Rev-1, t0); err != nil || ok {
		t.Fatalf("running at a stale rev: %v %v", ok, err)
	}
	if _, ok, err := db.EndCluster(ctx, c.ID, store.ClusterEnd{State: iog.ClusterCompleted, At: t0, Rev: c.Rev - 1, Lease: iog.LeaseStopped}); err != nil || ok {
		t.Fatalf("end at a stale rev: %v %v", ok, err)
	}
	if ok, err := db.AddLease(ctx, c.ID, c.Rev-1, "cl_cas-l1", "x", iog.Lease{ID: "cl_cas-r", ClusterID: c.ID, DeviceID: "cas3", Rank: 1, State: iog.LeaseAssigned, CreatedAt: t0}); err != nil || ok {
		t.Fatalf("replacement at a stale rev: %v %v", ok, err)
	}
	if d, _ := db.Device(ctx, "cas3"); d.Status != iog.DeviceReady {
		t.Fatalf("a refused replacement hired its device: %s", d.Status)
	}
	if ok, err := db.SetClusterRunning(ctx, c.ID, c.Rev, t0); err != nil || !ok {
		t.Fatalf("running: %v %v", ok, err)
	}

	// A lease's end, a second end of it, and its cluster's end race: each lease ends once,
	// the cluster once, and every lease's money is closed exactly once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 6; i++ {
		wg.Go(func() {
			var ok bool
			var err error
			if i%2 == 0 {
				code := i
				ok, err = db.EndLease(ctx, "cl_cas-l0", store.LeaseEnd{State: iog.LeaseExited, Reason: "exit", ExitCode: &code, At: t0.Add(time.Minute)}, refund(wallet))
			} else {
				_, ok, err = db.EndCluster(ctx, c.ID, store.ClusterEnd{State: iog.ClusterTerminated, Reason: fmt.Sprint("end ", i), At: t0.Add(time.Minute),
					Rev: store.AnyRev, Lease: iog.LeaseStopped, Close: refund(wallet)})
			}
			if err != nil {
				t.Errorf("party %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got, _ := db.Cluster(ctx, c.ID)
	ls, _ := db.Leases(ctx, c.ID)
	if got.State != iog.ClusterTerminated || wins < 1 || wins > 2 {
		t.Fatalf("cluster %s after %d winning changes", got.State, wins)
	}
	for _, l := range ls {
		if l.State.Active() || !l.Closed {
			t.Fatalf("lease %s %s closed=%v after its cluster ended", l.ID, l.State, l.Closed)
		}
	}
	if wins == 2 && ls[0].State != iog.LeaseExited || wins == 1 && ls[0].State != iog.LeaseStopped {
		t.Fatalf("%d changes won but lease 0 is %s", wins, ls[0].State)
	}
	for _, d := range []string{"cas1", "cas2"} {
		if dv, _ := db.Device(ctx, d); dv.Status != iog.DeviceReady {
			t.Fatalf("device %s is %s", d, dv.Status)
		}
	}
	if b, _ := db.Balance(ctx, iog.AccEscrow(c.ID), iog.IO); b != 0 {
		t.Fatalf("escrow %s after the end", b)
	}
	verifyLedger(t, db)
	if ok, err := db.StartLease(ctx, "cl_cas-l1", t0); err != nil || ok {
		t.Fatalf("a lease of an ended cluster started: %v %v", ok, err)
	}
	if stray, err := db.StrayLeases(ctx); err != nil || len(stray) != 0 {
		t.Fatalf("stray leases %v %v", stray, err)
	}

	// A lost node's answer marks it handled with the cluster's reason.
	c2 := paidCluster(t, db, "cl_cas2", owner, wallet, "cas3", "cas4")
	if ok, err := db.EndLease(ctx, "cl_cas2-l1", store.LeaseEnd{State: iog.LeaseLost, Reason: "gone", At: t0}, refund(wallet)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	c2, _ = db.Cluster(ctx, c2.ID)
	if ok, err := db.DegradeCluster(ctx, c2.ID, c2.Rev, "cl_cas2-l1", "node 1 lost"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	c2, _ = db.Cluster(ctx, c2.ID)
	l1, _ := db.Lease(ctx, "cl_cas2-l1")
	if !c2.Degraded || c2.Reason != "node 1 lost" || !l1.Handled || !l1.Closed {
		t.Fatalf("degraded %v %q, lease handled %v closed %v", c2.Degraded, c2.Reason, l1.Handled, l1.Closed)
	}
	verifyLedger(t, db)
}

// payAndRefund is a Closer that pays the supplier (and the treasury) for one minute and refunds
// the rest, as the market's closer does; with refundFirst, node 0 has nothing left to pay, so
// its refund (the renter's wallet) comes before the next node's payment (the treasury).
func payAndRefund(wallet string, refundFirst bool) store.Closer {
	return func(l iog.Lease, c iog.Cluster) (store.Settlement, error) {
		if refundFirst && l.Rank == 0 {
			return store.Settlement{Minutes: l.SettledMinutes, Amount: l.Settled,
				Postings: []iog.Posting{iog.Transfer("refund:"+l.ID, "lease:"+l.ID, iog.IO, t0, iog.AccEscrow(c.ID), wallet, l.Prepaid-l.Settled, "refund")}}, nil
		}
		st := store.Settlement{Minutes: l.SettledMinutes + 1, Amount: l.Settled + 10}
		st.Postings = []iog.Posting{{Key: "settle:" + l.ID, Cause: "lease:" + l.ID, Currency: iog.IO, At: t0, Memo: "minute",
			Entries: []iog.Entry{{Account: iog.AccEscrow(c.ID), Amount: -10}, {Account: iog.AccWallet(l.SupplierID), Amount: 9}, {Account: iog.AccTreasury, Amount: 1}}},
			iog.Transfer("refund:"+l.ID, "lease:"+l.ID, iog.IO, t0, iog.AccEscrow(c.ID), wallet, l.Prepaid-st.Amount, "refund")}
		return st, nil
	}
}

// concurrentEnds ends many clusters of one renter at once, each with several leases whose
// closing pays the same supplier and treasury and refunds the same wallet: none may fail (on
// PostgreSQL, balances locked in different orders would deadlock).
func concurrentEnds(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "ends")
	wallet := iog.AccWallet("acc_ends_renter")
	var ids []string
	for i := 0; i < 12; i++ {
		var devs []string
		for n := 0; n < 3; n++ {
			d := fmt.Sprintf("end%d_%d", i, n)
			register(t, db, owner, d)
			devs = append(devs, d)
		}
		c := paidCluster(t, db, fmt.Sprintf("cl_end%d", i), owner, wallet, devs...)
		ids = append(ids, c.ID)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			if _, ok, err := db.EndCluster(ctx, id, store.ClusterEnd{State: iog.ClusterTerminated, At: t0, Rev: store.AnyRev, Lease: iog.LeaseStopped, Close: payAndRefund(wallet, i%2 == 0)}); err != nil || !ok {
				t.Errorf("end %s: %v %v", id, ok, err)
			}
		})
	}
	wg.Wait()
	verifyLedger(t, db)
}

func concurrentExtends(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "ext")
	register(t, db, owner, "ext1")
	wallet := iog.AccWallet(owner)
	c := paidCluster(t, db, "cl_ext", owner, wallet, "ext1")
	x := func(by time.Duration, key string) store.Extension {
		return store.Extension{By: by, Max: 8760 * time.Hour,
			Share: func(l iog.Lease) (iog.Amount, error) { return l.PricePerHour.Mul(int64(by / time.Hour)) },
			Postings: func(c iog.Cluster, sub iog.Amount) ([]iog.Posting, error) {
				return []iog.Posting{iog.Transfer(key, "cluster:"+c.ID, iog.IO, t0, wallet, iog.AccEscrow(c.ID), sub, "extend")}, nil
			}}
	}
	const n = 12
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() {
			if _, err := db.ExtendCluster(ctx, c.ID, x(time.Hour, fmt.Sprint("extend:", i))); err != nil {
				t.Errorf("extend %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, _ := db.Cluster(ctx, c.ID)
	l, _ := db.Lease(ctx, "cl_ext-l0")
	if !got.ExpiresAt.Equal(c.ExpiresAt.Add(n*time.Hour)) || l.Prepaid != 1000*(n+1) {
		t.Fatalf("after %d extends: expires %v (was %v), prepaid %s", n, got.ExpiresAt, c.ExpiresAt, l.Prepaid)
	}
	verifyLedger(t, db)
	left := 8760*time.Hour - got.ExpiresAt.Sub(got.CreatedAt)
	_, err := db.ExtendCluster(ctx, c.ID, x(left+time.Hour, "extend:over"))
	code(t, err, iog.EINVALID)
	if _, err := db.ExtendCluster(ctx, c.ID, x(left, "extend:max")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.EndCluster(ctx, c.ID, store.ClusterEnd{State: iog.ClusterTerminated, At: t0, Rev: store.AnyRev, Lease: iog.LeaseStopped, Close: refund(wallet)}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	_, err = db.ExtendCluster(ctx, c.ID, x(time.Hour, "extend:late"))
	code(t, err, iog.ECONFLICT)
	verifyLedger(t, db)
}
