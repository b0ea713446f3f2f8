package cli

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/task"
)

// arrayAt is an ended job array of 2 nodes and 3 tasks: task 1 succeeded on its second
// attempt, task 2 failed (failed true) or succeeded.
func arrayAt(failed bool) api.Cluster {
	c := clusterAt(1, "completed", "exited", "exited")
	c.Spec.Type, c.Spec.Tasks, c.Spec.Retries = "array", 3, 1
	c.Reason = "all 3 tasks ended: 3 succeeded"
	code := func(n int) *int { return &n }
	c.Tasks = []api.Task{
		{Index: 0, State: "succeeded", Attempts: 1, ExitCode: code(0), Rank: 0, DeviceID: "dv_a"},
		{Index: 1, State: "succeeded", Attempts: 2, ExitCode: code(0), Rank: 1, DeviceID: "dv_b"},
		{Index: 2, State: "succeeded", Attempts: 1, ExitCode: code(0), Rank: 1, DeviceID: "dv_b"},
	}
	if failed {
		c.Reason = "all 3 tasks ended: 2 succeeded, 1 failed (2)"
		c.Tasks[2] = api.Task{Index: 2, State: "failed", Attempts: 2, ExitCode: code(3), Rank: 0, DeviceID: "dv_a", Reason: "attempt 2 exited with code 3"}
	}
	return c
}

func TestClusterGetShowsTasks(t *testing.T) {
	d := &deployment{steps: []api.Cluster{arrayAt(true)}}
	f := newFake(t, d.routes())
	r := runCLI(t, f.env(t), Services{}, "cluster", "get", "cl_1")
	wantCode(t, r, exitOK)
	for _, want := range []string{
		"Tasks: 3 (2 succeeded, 1 failed, 0 running, 0 pending)",
		"TASK  STATE      ATTEMPTS  EXIT  NODE  DEVICE  REASON",
		"1     succeeded  2         0     1     dv_b    -",
		"2     failed     2         3     0     dv_a    attempt 2 exited with code 3",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster get output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// cluster wait exits non-zero when a task finally failed, naming it, although the array
// completed; 0 when every task succeeded.
func TestClusterWaitArray(t *testing.T) {
	d := &deployment{steps: []api.Cluster{arrayAt(true)}}
	f := newFake(t, d.routes())
	r := runCLI(t, f.env(t), Services{}, "cluster", "wait", "cl_1")
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, "task(s) 2 failed") {
		t.Errorf("stderr %q does not name the failed task", r.stderr)
	}
	d = &deployment{steps: []api.Cluster{arrayAt(false)}}
	f = newFake(t, d.routes())
	wantCode(t, runCLI(t, f.env(t), Services{}, "cluster", "wait", "cl_1"), exitOK)
}

// The flags of a job array and its task file fields map both ways.
func TestArrayCreateArgsRoundTrip(t *testing.T) {
	tf, err := task.Parse("a.yaml", strings.NewReader("type: array\nnodes: 4\ntasks: 16\nretries: 2\nrun: python trial.py\noutputs: out\n"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := tf.Request()
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{steps: []api.Cluster{clusterAt(1, "running", "running")}}
	f := newFake(t, d.routes())
	wantCode(t, runCLI(t, f.env(t), Services{}, append([]string{"cluster", "create", "--detach"}, createArgs(want)...)...), exitOK)
	if len(d.got) != 1 || d.got[0].Type != "array" || d.got[0].Tasks != 16 || d.got[0].Retries != 2 {
		t.Fatalf("cluster create sent %+v", d.got)
	}
	// --array is --type array.
	wantCode(t, runCLI(t, f.env(t), Services{}, "cluster", "create", "--detach", "--array", "--nodes", "4", "--tasks", "16", "--", "x"), exitOK)
	if len(d.got) != 2 || d.got[1].Type != "array" || d.got[1].Tasks != 16 {
		t.Fatalf("--array sent %+v", d.got[1])
	}
}
