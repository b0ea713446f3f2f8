package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// tasks: a job array's tasks are claimed once each, even by nodes pulling at once; a failed
// attempt with attempts left goes back to pending and one without fails; a retried report is
// accepted and a stale one refused; a lease that ends puts its running task back.
func tasks(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "tara")
	devs := []string{"ta1", "ta2", "ta3", "ta4"}
	for _, d := range devs {
		register(t, db, owner, d)
	}
	c := cluster("cl_arr", owner, 4)
	c.Spec.Type, c.Spec.Tasks, c.Spec.Retries = iog.TypeArray, 9, 1
	ls := leases(c, devs...)
	if err := db.CreateCluster(ctx, c, ls); err != nil {
		t.Fatal(err)
	}
	got, err := db.Tasks(ctx, c.ID)
	if err != nil || len(got) != 9 || got[8].Index != 8 || got[0].State != iog.TaskPending || got[0].Retries != 1 || got[0].Rank != -1 {
		t.Fatalf("tasks at create: %+v, %v", got, err)
	}

	// Four nodes pull at once, twice each (the second pull of a node that has not reported is
	// a retried pull: the same task): 4 distinct tasks, each on the node that got it.
	var mu sync.Mutex
	claimed := map[int]string{}
	var wg sync.WaitGroup
	for _, l := range ls {
		for range 2 {
			wg.Go(func() {
				tk, ok, err := db.ClaimTask(ctx, l.ID, t0)
				if err != nil || !ok {
					t.Errorf("claim for %s: %v %v", l.ID, ok, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := claimed[tk.Index]; dup && prev != l.ID {
					t.Errorf("task %d handed to %s and %s", tk.Index, prev, l.ID)
				}
				claimed[tk.Index] = l.ID
			})
		}
	}
	wg.Wait()
	if len(claimed) != 4 {
		t.Fatalf("claimed %v, want 4 distinct tasks", claimed)
	}
	byLease := map[string]int{}
	for i, l := range claimed {
		byLease[l] = i
	}

	// Node 0's task fails its first attempt: back to pending, attempt counted.
	l0 := ls[0].ID
	i0 := byLease[l0]
	r := store.TaskResult{LeaseID: l0, Index: i0, Attempt: 0, ExitCode: 3, At: t0.Add(time.Minute)}
	tk, changed, err := db.ReportTask(ctx, r)
	if err != nil || !changed || tk.State != iog.TaskPending || tk.Attempts != 1 || tk.ExitCode == nil || *tk.ExitCode != 3 {
		t.Fatalf("failed first attempt: %+v %v %v", tk, changed, err)
	}
	if _, changed, err := db.ReportTask(ctx, r); err != nil || changed {
		t.Fatalf("the same report again: changed %v, %v; want accepted, unchanged", changed, err)
	}
	r2 := r
	r2.ExitCode = 0
	if _, _, err := db.ReportTask(ctx, r2); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("another result for an ended attempt: %v, want ECONFLICT", err)
	}
	if _, _, err := db.ReportTask(ctx, store.TaskResult{LeaseID: ls[1].ID, Index: i0, Attempt: 0, ExitCode: 0}); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a report from a node that does not run the task: %v, want ECONFLICT", err)
	}
	if _, _, err := db.ReportTask(ctx, store.TaskResult{LeaseID: l0, Index: 99, Attempt: 0}); iog.ErrorCode(err) != iog.ENOTFOUND {
		t.Fatalf("a report for no task: %v, want ENOTFOUND", err)
	}
	// The lowest pending index comes next: the failed one.
	tk, ok, err := db.ClaimTask(ctx, l0, t0.Add(time.Minute))
	if err != nil || !ok || tk.Index != i0 || tk.Attempts != 2 || tk.State != iog.TaskRunning {
		t.Fatalf("retry claim: %+v %v %v", tk, ok, err)
	}
	// The second attempt fails too: no attempts left (retries 1), the task failed.
	tk, _, err = db.ReportTask(ctx, store.TaskResult{LeaseID: l0, Index: i0, Attempt: 1, ExitCode: 4, At: t0.Add(2 * time.Minute)})
	if err != nil || tk.State != iog.TaskFailed || *tk.ExitCode != 4 {
		t.Fatalf("exhausted: %+v %v", tk, err)
	}
	// A stale report of the first attempt (say, delayed) changes nothing.
	if _, _, err := db.ReportTask(ctx, store.TaskResult{LeaseID: l0, Index: i0, Attempt: 0, ExitCode: 0}); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a stale report: %v, want ECONFLICT", err)
	}

	// Node 1's lease ends (its device went down) while it runs a task: the task is pending again.
	l1 := ls[1].ID
	i1 := byLease[l1]
	if ok, err := db.EndLease(ctx, l1, store.LeaseEnd{State: iog.LeaseLost, Reason: "device down", At: t0.Add(3 * time.Minute)}, nil); err != nil || !ok {
		t.Fatalf("end lease: %v %v", ok, err)
	}
	all, _ := db.Tasks(ctx, c.ID)
	if tk := all[i1]; tk.State != iog.TaskPending || tk.Attempts != 1 || tk.Reason == "" {
		t.Fatalf("a lost node's task: %+v, want pending with a reason", tk)
	}
	if _, ok, err := db.ClaimTask(ctx, l1, t0); err != nil || ok {
		t.Fatalf("an ended lease claimed a task: %v %v", ok, err)
	}
	if _, _, err := db.ReportTask(ctx, store.TaskResult{LeaseID: l1, Index: i1, Attempt: 0, ExitCode: 0}); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a lost node's late report: %v, want ECONFLICT", err)
	}

	// The others drain the rest: every task ends, each exactly once.
	for _, l := range []string{ls[2].ID, ls[3].ID} {
		for {
			tk, ok, err := db.ClaimTask(ctx, l, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if _, _, err := db.ReportTask(ctx, store.TaskResult{LeaseID: l, Index: tk.Index, Attempt: tk.Attempts - 1, ExitCode: 0, At: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, _ = db.Tasks(ctx, c.ID)
	for _, tk := range all {
		want := iog.TaskSucceeded
		if tk.Index == i0 {
			want = iog.TaskFailed
		}
		if tk.State != want {
			t.Errorf("task %d: %s, want %s", tk.Index, tk.State, want)
		}
	}
	if all[i1].Attempts != 2 {
		t.Errorf("the lost node's task ran %d times, want 2", all[i1].Attempts)
	}
}
