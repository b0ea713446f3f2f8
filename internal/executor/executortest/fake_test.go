package executortest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iognet/iog/internal/executor"
)

// suiteScript plays the suite's workloads: the Fake runs nothing, so this is
// what a shell would have done with them.
func suiteScript(s executor.Spec) Script {
	if len(s.Command) == 1 && s.Command[0] == missingBinary {
		return Script{StartErr: &executor.SpecError{Field: "Command", Problem: "names a missing binary", Err: exec.ErrNotFound}}
	}
	if len(s.Command) != 3 || s.Command[0] != "sh" || s.Command[1] != "-c" {
		return Script{StartErr: fmt.Errorf("fake cannot play %q", s.Command)}
	}
	switch script := s.Command[2]; {
	case script == scriptOutput:
		return Script{Stdout: "out-line\n", Stderr: "err-line\n"}
	case script == scriptEnv:
		v := ""
		for _, kv := range s.Env {
			if k, val, _ := strings.Cut(kv, "="); k == "IOG_SUITE_VAR" {
				v = val
			}
		}
		return Script{Stdout: "IOG_SUITE_VAR=" + v + "\n"}
	case script == scriptChildren:
		return Script{Stdout: "100 101\n", RunUntilStopped: true}
	case script == scriptLong:
		return Script{Stdout: "ready\n", RunUntilStopped: true}
	case strings.HasPrefix(script, "exit "):
		code, err := strconv.Atoi(strings.TrimPrefix(script, "exit "))
		if err != nil {
			return Script{StartErr: err}
		}
		return Script{ExitCode: code}
	}
	return Script{StartErr: fmt.Errorf("fake cannot play %q", s.Command)}
}

// fakeChecker lets the suite look behind the Fake's tasks.
type fakeChecker struct{ *Fake }

func (f fakeChecker) Gone(_ context.Context, s executor.Spec, _ []int) (bool, error) {
	t := f.Task(s.LeaseID)
	if t == nil {
		return true, nil
	}
	select {
	case <-t.Done():
		return true, nil
	default:
		return false, nil
	}
}

func TestFakeConformance(t *testing.T) {
	var n atomic.Int64
	Run(t,
		func(t *testing.T) Starter { return fakeChecker{&Fake{Script: suiteScript}} },
		func(t *testing.T, cmd ...string) executor.Spec {
			return executor.Spec{
				LeaseID: fmt.Sprintf("fake-%d", n.Add(1)),
				Owner:   "dev-test",
				Command: cmd,
			}
		})
}

func TestFakeKnobs(t *testing.T) {
	ctx := t.Context()
	f := &Fake{}
	s := executor.Spec{LeaseID: "l1", Command: []string{"serve"}}

	task, err := f.Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	ft := f.Task("l1")
	if ft == nil || ft.Spec.LeaseID != "l1" || len(f.Tasks()) != 1 {
		t.Fatalf("Task(l1) = %v, Tasks = %v", ft, f.Tasks())
	}
	select {
	case <-ft.Done():
		t.Fatal("a task with the default script ended by itself")
	default:
	}
	ft.Exit(42)
	if code, err := task.Wait(ctx); code != 42 || err != nil {
		t.Errorf("Wait = %d, %v; want 42, nil", code, err)
	}
	if err := task.Stop(ctx); err != nil {
		t.Errorf("Stop after Exit: %v", err)
	}
	if ft.Stopped() || ft.Stops() != 1 {
		t.Errorf("Stopped = %v, Stops = %d; want false, 1", ft.Stopped(), ft.Stops())
	}

	boom := errors.New("boom")
	f.Script = func(executor.Spec) Script { return Script{StartErr: boom} }
	if _, err := f.Start(ctx, executor.Spec{LeaseID: "l2", Image: "img"}); !errors.Is(err, boom) {
		t.Errorf("Start with StartErr = %v, want it to wrap boom", err)
	}

	f.Script = func(executor.Spec) Script { return Script{RunUntilStopped: true, StopErr: boom} }
	task, err = f.Start(ctx, executor.Spec{LeaseID: "l3", Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Stop(ctx); !errors.Is(err, boom) {
		t.Errorf("Stop with StopErr = %v, want it to wrap boom", err)
	}
	select {
	case <-f.Task("l3").Done():
		t.Error("a task whose Stop failed ended")
	default:
	}

	var se *executor.SpecError
	if _, err := f.Start(ctx, executor.Spec{LeaseID: "l4"}); !errors.As(err, &se) {
		t.Errorf("Start without Command or Image = %v, want a SpecError", err)
	}
}
