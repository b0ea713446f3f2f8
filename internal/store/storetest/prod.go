package storetest

import (
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// exportAndBlocks: a ledger export holds what was posted (all of it, or what touches the
// accounts asked for), the leases with their clusters and the blocks; a recorded block moves
// its nominated devices' last nominated block forward only; the network's compute seconds
// scan on every engine.
func exportAndBlocks(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "exp")
	d := register(t, db, owner, "dev_exp")
	wallet := iog.AccWallet(owner)
	c := paidCluster(t, db, "cl_exp", owner, wallet, d.ID)
	other := iog.Transfer("other", "deposit:y", iog.IO, t0, iog.AccExternal, iog.AccWallet("acc_other"), 5, "other")
	if _, err := db.Post(ctx, other); err != nil {
		t.Fatal(err)
	}

	all, err := db.LedgerExport(ctx, time.Time{}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Postings) != 3 || len(all.Leases) != 1 || all.Leases[0].Cluster.ID != c.ID || all.Leases[0].Lease.Prepaid != 1000 {
		t.Fatalf("full export: %d postings, leases %+v", len(all.Postings), all.Leases)
	}
	for _, p := range all.Postings {
		var sum iog.Amount
		for _, e := range p.Entries {
			sum += e.Amount
		}
		if len(p.Entries) < 2 || sum != 0 {
			t.Fatalf("posting %s exported with entries %+v", p.Key, p.Entries)
		}
	}
	own, err := db.LedgerExport(ctx, time.Time{}, []string{wallet, iog.AccEscrow(c.ID)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Postings) != 2 || own.Leases != nil || own.Blocks != nil || len(own.Balances) != 2 {
		t.Fatalf("scoped export: %d postings, %d balances, leases %v", len(own.Postings), len(own.Balances), own.Leases)
	}
	later, err := db.LedgerExport(ctx, t0.Add(time.Hour), nil, false)
	if err != nil || len(later.Postings) != 0 {
		t.Fatalf("export since later: %v %d postings", err, len(later.Postings))
	}

	if n, err := db.LastNominatedBlock(ctx, d.ID); err != nil || n != -1 {
		t.Fatalf("never nominated: %d %v", n, err)
	}
	for _, n := range []int64{5, 3} { // caught up out of order: the latest stays
		if _, err := db.RecordBlock(ctx, store.BlockRow{Number: n, Start: t0, End: t0.Add(time.Hour), Detail: []byte("{}"), CreatedAt: t0, Nominated: []string{d.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.LastNominatedBlock(ctx, d.ID); err != nil || n != 5 {
		t.Fatalf("last nominated block %d %v, want 5", n, err)
	}
	if x, err := db.LedgerExport(ctx, time.Time{}, nil, true); err != nil || len(x.Blocks) != 2 || x.Blocks[0].Number != 3 {
		t.Fatalf("blocks in the export: %v %+v", err, x.Blocks)
	}
	counts, err := db.NetworkCounts(ctx, t0.Add(90*time.Second))
	if err != nil || counts.ComputeSeconds != 90 {
		t.Fatalf("compute seconds %d %v, want 90", counts.ComputeSeconds, err)
	}
}
