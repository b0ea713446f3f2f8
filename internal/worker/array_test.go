package worker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// An array node runs the tasks it pulls one after another, each with its index in the
// environment; a failed task is reported and the node carries on; with none left the node
// exits 0.
func TestArrayNodeRunsTasksInTurn(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	f.pending = []int{0, 1, 2}
	fake := &executortest.Fake{Script: func(s executor.Spec) executortest.Script {
		if slices.Contains(s.Env, "IOG_TASK_INDEX=1") {
			return executortest.Script{ExitCode: 3}
		}
		return executortest.Script{}
	}}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	f.assign(lease("l1", "array"))
	iogtest.Until(t, 30*time.Second, "the node's end", func() bool { r := f.last("l1"); return r != nil && r.State == "exited" })
	if r := f.last("l1"); *r.ExitCode != 0 {
		t.Errorf("the node exited %d, want 0", *r.ExitCode)
	}
	ts := fake.Tasks()
	if len(ts) != 3 {
		t.Fatalf("%d starts, want 3", len(ts))
	}
	for i, tk := range ts {
		for _, want := range []string{"IOG_TASK_INDEX=" + string(rune('0'+i)), "IOG_TASK_ATTEMPT=0", "IOG_TASKS=3"} {
			if !slices.Contains(tk.Spec.Env, want) {
				t.Errorf("start %d lacks %s: %v", i, want, tk.Spec.Env)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, want := range []int{0, 3, 0} {
		if rs := f.taskReports[i]; len(rs) != 1 || rs[0].ExitCode != want {
			t.Errorf("task %d reports %+v, want one with exit code %d", i, rs, want)
		}
	}
}

// A node never runs again an attempt whose report the coordinator refused: it ends failed,
// saying why, instead of looping.
func TestArrayNodeStopsWhenItsReportIsRefused(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	f.pending = []int{0}
	f.refuse = true
	fake := &executortest.Fake{Script: func(executor.Spec) executortest.Script { return executortest.Script{} }}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	f.assign(lease("l1", "array"))
	iogtest.Until(t, 30*time.Second, "the node's end", func() bool { r := f.last("l1"); return r != nil && r.State == "failed" })
	if r := f.last("l1"); !strings.Contains(r.Message, "handed back task 0 attempt 0") {
		t.Errorf("report %+v", r)
	}
	if n := len(fake.Tasks()); n != 1 {
		t.Errorf("the task ran %d times, want once", n)
	}
}
