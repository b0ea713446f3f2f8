package storetest

import (
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// mesh checks overlay allocation and membership (issue 5).
func mesh(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "mia")
	for _, id := range []string{"m1", "m2", "m3"} {
		register(t, db, owner, id)
	}
	c1, c2 := cluster("cl_m1", owner, 2), cluster("cl_m2", owner, 1)
	if err := db.CreateCluster(ctx, c1, leases(c1, "m1", "m2")); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCluster(ctx, c2, leases(c2, "m3")); err != nil {
		t.Fatal(err)
	}
	n1, err := db.MeshNetwork(ctx, c1.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := db.MeshNetwork(ctx, c1.ID, t0)
	if err != nil || again != n1 {
		t.Fatalf("second allocation gave %d (%v), want %d", again, err, n1)
	}
	n2, err := db.MeshNetwork(ctx, c2.ID, t0)
	if err != nil || n2 == n1 {
		t.Fatalf("two open clusters share network %d (%v)", n2, err)
	}

	node := func(id, lease string, slot int, key string) iog.MeshMember {
		return iog.MeshMember{ID: id, ClusterID: c1.ID, LeaseID: lease, Kind: iog.MeshNode, Slot: slot, PublicKey: key,
			TokenHash: "tok-" + id, Endpoints: []string{"10.0.0.1:5000", "[fd00::1]:5000"}, CreatedAt: t0}
	}
	if err := db.JoinMesh(ctx, node("a1", "cl_m1-l0", 1, "ka")); err != nil {
		t.Fatal(err)
	}
	if err := db.JoinMesh(ctx, node("b1", "cl_m1-l1", 2, "kb")); err != nil {
		t.Fatal(err)
	}
	// The same node joining again (a new key after a restart) replaces its member.
	if err := db.JoinMesh(ctx, node("a2", "cl_m1-l0", 1, "ka2")); err != nil {
		t.Fatal(err)
	}
	renter := iog.MeshMember{ID: "r1", ClusterID: c1.ID, Kind: iog.MeshRenter, Slot: 254, PublicKey: "kb", TokenHash: "tok-r1", CreatedAt: t0}
	code(t, db.JoinMesh(ctx, renter), iog.ECONFLICT) // key already in the mesh
	renter.PublicKey = "kr"
	if err := db.JoinMesh(ctx, renter); err != nil {
		t.Fatal(err)
	}
	renter.ID, renter.PublicKey, renter.TokenHash = "r2", "kr2", "tok-r2"
	code(t, db.JoinMesh(ctx, renter), iog.ECONFLICT) // slot taken

	ms, err := db.MeshMembers(ctx, c1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].ID != "a2" || ms[1].ID != "b1" || ms[2].ID != "r1" || len(ms[0].Endpoints) != 2 || ms[0].Endpoints[1] != "[fd00::1]:5000" {
		t.Fatalf("members %+v", ms)
	}
	m, err := db.MeshMemberByToken(ctx, "tok-b1")
	if err != nil || m.ID != "b1" || m.Kind != iog.MeshNode || !m.CreatedAt.Equal(t0) {
		t.Fatalf("by token: %+v %v", m, err)
	}
	_, err = db.MeshMemberByToken(ctx, "tok-a1")
	code(t, err, iog.EUNAUTHORIZED)
	changed, err := db.SetMeshObserved(ctx, "b1", "198.51.100.7:4242")
	if err != nil || !changed {
		t.Fatalf("observed: %v %v", changed, err)
	}
	changed, err = db.SetMeshObserved(ctx, "b1", "198.51.100.7:4242")
	if err != nil || changed {
		t.Fatalf("same observed address changed something: %v %v", changed, err)
	}
	if m, _ := db.MeshMemberByToken(ctx, "tok-b1"); m.Observed != "198.51.100.7:4242" {
		t.Fatalf("observed not stored: %+v", m)
	}
	live, err := db.LiveMeshMembers(ctx)
	if err != nil || len(live) != 3 {
		t.Fatalf("live members of a running cluster: %+v %v", live, err)
	}
	if err := db.LeaveMesh(ctx, c1.ID, "r1"); err != nil {
		t.Fatal(err)
	}
	code(t, db.LeaveMesh(ctx, c1.ID, "r1"), iog.ENOTFOUND)
	code(t, db.LeaveMesh(ctx, c2.ID, "b1"), iog.ENOTFOUND)

	// Once a cluster has ended, its number and members are freed for the next one.
	if _, ok, err := db.EndCluster(ctx, c1.ID, store.ClusterEnd{State: iog.ClusterTerminated, At: t0.Add(time.Minute), Rev: store.AnyRev, Lease: iog.LeaseStopped}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if live, err := db.LiveMeshMembers(ctx); err != nil || len(live) != 0 {
		t.Fatalf("live members of an ended cluster: %+v %v", live, err)
	}
	register(t, db, owner, "m4")
	c3 := cluster("cl_m3", owner, 1)
	if err := db.CreateCluster(ctx, c3, leases(c3, "m4")); err != nil {
		t.Fatal(err)
	}
	n3, err := db.MeshNetwork(ctx, c3.ID, t0)
	if err != nil || n3 != n1 {
		t.Fatalf("freed network not reused: got %d (%v), want %d", n3, err, n1)
	}
	if ms, _ := db.MeshMembers(ctx, c1.ID); len(ms) != 0 {
		t.Fatalf("members of an ended cluster kept: %+v", ms)
	}
}
