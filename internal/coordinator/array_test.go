package coordinator_test

import (
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestArrayOverTheWire: a job array's nodes pull and report tasks over the signed worker
// routes; a node that runs out of tasks ends like a node whose command exited, paying its
// minutes and refunding the rest; the escrow ends empty and the ledger balances.
func TestArrayOverTheWire(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.renterID, 1000*iog.Unit)
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "array", Nodes: 2, Tasks: 3, Retries: 1, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Tasks != 3 || c.Spec.Retries != 1 || c.Spec.Type != "array" {
		t.Fatalf("spec %+v", c.Spec)
	}
	for _, n := range c.Nodes {
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(10 * time.Minute)
	n0 := c.Nodes[0]
	w0 := e.worker(n0.DeviceID)
	seen := map[int]int{}
	for {
		next, err := w0.NextTask(ctx, n0.LeaseID)
		if err != nil {
			t.Fatal(err)
		}
		if next.None {
			break
		}
		if again, err := w0.NextTask(ctx, n0.LeaseID); err != nil || again != next {
			t.Fatalf("a retried pull: %+v %v, want %+v", again, err, next)
		}
		seen[next.Index]++
		code := 0
		if next.Index == 1 && next.Attempt == 0 {
			code = 3
		}
		r := api.TaskReport{Attempt: next.Attempt, ExitCode: code, Message: "line\x1bone"}
		for range 2 { // a retried report is accepted
			if err := w0.ReportTask(ctx, n0.LeaseID, next.Index, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != 3 || seen[1] != 2 {
		t.Fatalf("node 0 ran %v, want each of 3 tasks, task 1 twice", seen)
	}
	// Node 1 found nothing to do; both nodes end as their workers would.
	for _, n := range c.Nodes {
		zero := 0
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "exited", ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.renter.Cluster(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "completed" || len(got.Tasks) != 3 || got.Tasks[1].Attempts != 2 || got.Tasks[1].State != "succeeded" {
		t.Fatalf("cluster %s %q tasks %+v", got.State, got.Reason, got.Tasks)
	}
	if b := e.bal(t, iog.AccEscrow(c.ID)); b != 0 {
		t.Errorf("escrow holds %s after the array ended", b)
	}
	e.verify(t)
}
