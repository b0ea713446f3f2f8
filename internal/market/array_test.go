package market

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// drain has the node at rank pull and run tasks until none is left, ending each with
// code(index, attempt); it returns what it ran.
func (e *outEnv) drain(t *testing.T, c api.Cluster, rank int, code func(index, attempt int) int) []int {
	t.Helper()
	n := c.Nodes[rank]
	dev := e.device(t, n.DeviceID)
	var ran []int
	for range 100 {
		next, err := e.m.NextTask(t.Context(), dev, n.LeaseID)
		if err != nil {
			t.Fatal(err)
		}
		if next.None {
			return ran
		}
		if next.Tasks != c.Spec.Tasks {
			t.Fatalf("next task says %d tasks, want %d", next.Tasks, c.Spec.Tasks)
		}
		ran = append(ran, next.Index)
		if err := e.m.ReportTask(t.Context(), dev, n.LeaseID, next.Index, api.TaskReport{Attempt: next.Attempt, ExitCode: code(next.Index, next.Attempt)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the node never ran out of tasks")
	return nil
}

func TestArrayRetriesAndCompletes(t *testing.T) {
	e := newOutEnv(t, 2)
	c := e.create(t, api.CreateClusterRequest{Type: "array", Nodes: 2, Tasks: 6, Retries: 1}, true)
	// Task 3 fails its first attempt only; task 5 fails every attempt.
	code := func(i, attempt int) int {
		switch {
		case i == 3 && attempt == 0:
			return 3
		case i == 5:
			return 7
		}
		return 0
	}
	ran := e.drain(t, c, 0, code)
	if len(ran) != 8 { // 6 tasks, task 3 and task 5 twice each
		t.Fatalf("node 0 ran %v, want 8 attempts", ran)
	}
	if got := e.cluster(t, c.ID); got.State != string(iog.ClusterRunning) {
		t.Fatalf("a failed task changed the cluster: %s (%s)", got.State, got.Reason)
	}
	if ran := e.drain(t, c, 1, code); len(ran) != 0 {
		t.Fatalf("node 1 ran %v after all had ended", ran)
	}
	for rank := range 2 {
		e.report(t, t.Context(), c, rank, exit(0))
	}
	got := e.cluster(t, c.ID)
	if got.State != string(iog.ClusterCompleted) || !strings.Contains(got.Reason, "5 succeeded, 1 failed (5)") {
		t.Fatalf("cluster %s: %q", got.State, got.Reason)
	}
	if len(got.Tasks) != 6 {
		t.Fatalf("tasks %+v", got.Tasks)
	}
	for _, tk := range got.Tasks {
		wantState, wantAttempts := "succeeded", 1
		switch tk.Index {
		case 3:
			wantAttempts = 2
		case 5:
			wantState, wantAttempts = "failed", 2
		}
		if tk.State != wantState || tk.Attempts != wantAttempts || tk.ExitCode == nil || tk.Rank != 0 {
			t.Errorf("task %d: %+v, want %s after %d attempts on node 0", tk.Index, tk, wantState, wantAttempts)
		}
	}
	if *got.Tasks[5].ExitCode != 7 {
		t.Errorf("task 5 exit code %d, want 7", *got.Tasks[5].ExitCode)
	}
	e.verify(t)
}

// A lost node's running task goes back to pending and another node runs it; node 0 of an
// array is no head, so losing it does not fail the cluster.
func TestArrayLostNodeReturnsItsTask(t *testing.T) {
	e := newOutEnv(t, 2)
	c := e.create(t, api.CreateClusterRequest{Type: "array", Nodes: 2, Tasks: 3}, true)
	n0 := c.Nodes[0]
	next, err := e.m.NextTask(t.Context(), e.device(t, n0.DeviceID), n0.LeaseID)
	if err != nil || next.None || next.Index != 0 {
		t.Fatalf("pull: %+v %v", next, err)
	}
	e.m.DeviceDown(t.Context(), n0.DeviceID, "no heartbeat")
	got := e.cluster(t, c.ID)
	if got.State != string(iog.ClusterRunning) || got.Tasks[0].State != "pending" || got.Tasks[0].Attempts != 1 {
		t.Fatalf("after node 0 was lost: %s %q, task 0 %+v", got.State, got.Reason, got.Tasks[0])
	}
	// The lost node's late report is stale.
	if err := e.m.ReportTask(t.Context(), e.device(t, n0.DeviceID), n0.LeaseID, 0, api.TaskReport{Attempt: 0}); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a lost node's report: %v, want ECONFLICT", err)
	}
	if ran := e.drain(t, c, 1, func(int, int) int { return 0 }); len(ran) != 3 {
		t.Fatalf("node 1 ran %v, want all 3 tasks", ran)
	}
	e.report(t, t.Context(), c, 1, exit(0))
	got = e.cluster(t, c.ID)
	if got.State != string(iog.ClusterCompleted) || got.Tasks[0].Attempts != 2 || got.Tasks[0].Rank != 1 {
		t.Fatalf("cluster %s %q, task 0 %+v", got.State, got.Reason, got.Tasks[0])
	}
	e.verify(t)
}

// When every node has ended with tasks never run, the array failed, naming them.
func TestArrayFailsWhenTasksNeverRan(t *testing.T) {
	e := newOutEnv(t, 1)
	c := e.create(t, api.CreateClusterRequest{Type: "array", Nodes: 1, Tasks: 2}, true)
	e.m.DeviceDown(t.Context(), c.Nodes[0].DeviceID, "no heartbeat")
	got := e.cluster(t, c.ID)
	if got.State != string(iog.ClusterFailed) || !strings.Contains(got.Reason, "2 of 2 tasks not run (0,1)") {
		t.Fatalf("cluster %s %q", got.State, got.Reason)
	}
}

func TestArrayRefusesBadInput(t *testing.T) {
	e := newOutEnv(t, 2)
	for _, tc := range []struct {
		r    api.CreateClusterRequest
		want string
	}{
		{api.CreateClusterRequest{Type: "process", Nodes: 1, Tasks: 4}, "tasks: only for type array"},
		{api.CreateClusterRequest{Type: "process", Nodes: 1, Retries: 1}, "retries: only for type array"},
		{api.CreateClusterRequest{Type: "array", Nodes: 2, Tasks: 1}, "leave nodes idle"},
		{api.CreateClusterRequest{Type: "array", Nodes: 1, Tasks: MaxTasks + 1}, "tasks must be between"},
		{api.CreateClusterRequest{Type: "array", Nodes: 1, Retries: MaxRetries + 1}, "retries must be between"},
		{api.CreateClusterRequest{Type: "array", Nodes: 1, Command: []string{}}, "needs a command"},
	} {
		if tc.r.Command == nil {
			tc.r.Command = []string{"x"}
		}
		_, err := e.m.Create(t.Context(), e.renter, tc.r)
		if iog.ErrorCode(err) != iog.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want EINVALID with %q", tc.r, err, tc.want)
		}
	}
	// A node of another type has no tasks; another device cannot pull for a node.
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1}, true)
	if _, err := e.m.NextTask(t.Context(), e.device(t, c.Nodes[0].DeviceID), c.Nodes[0].LeaseID); iog.ErrorCode(err) != iog.EINVALID {
		t.Errorf("pull for a process node: %v, want EINVALID", err)
	}
	a := e.create(t, api.CreateClusterRequest{Type: "array", Nodes: 1}, true)
	if a.Spec.Tasks != 1 {
		t.Errorf("tasks defaulted to %d, want one per node", a.Spec.Tasks)
	}
	if _, err := e.m.NextTask(t.Context(), e.device(t, c.Nodes[0].DeviceID), a.Nodes[0].LeaseID); iog.ErrorCode(err) != iog.EFORBIDDEN {
		t.Errorf("pull for another device's node: %v, want EFORBIDDEN", err)
	}
}
