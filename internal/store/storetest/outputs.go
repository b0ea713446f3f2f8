package storetest

import (
	"testing"
	"time"

	"github.com/iognet/iog/internal/store"
)

// outputs: one record per node, replaced by a later upload, forgotten after the retention.
func outputs(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "olga")
	register(t, db, owner, "od1")
	register(t, db, owner, "od2")
	c := cluster("cl_out", owner, 2)
	if err := db.CreateCluster(ctx, c, leases(c, "od1", "od2")); err != nil {
		t.Fatal(err)
	}
	for _, o := range []store.Output{
		{ClusterID: c.ID, Rank: 1, Hash: "h1", Size: 10, CreatedAt: t0},
		{ClusterID: c.ID, Rank: 0, Hash: "h0", Size: 5, CreatedAt: t0},
		{ClusterID: c.ID, Rank: 1, Hash: "h1b", Size: 11, CreatedAt: t0.Add(time.Hour)},
	} {
		if err := db.PutOutput(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Outputs(ctx, c.ID)
	if err != nil || len(got) != 2 || got[0].Hash != "h0" || got[1].Hash != "h1b" || got[1].Size != 11 || !got[1].CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("outputs %+v, %v", got, err)
	}
	if n, err := db.DeleteOutputsBefore(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if got, _ := db.Outputs(ctx, c.ID); len(got) != 1 || got[0].Rank != 1 {
		t.Fatalf("after the sweep: %+v", got)
	}
}
