package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
)

// processChecker lets the suite look for the workload's processes on the host.
type processChecker struct{ *executor.Process }

func (processChecker) Gone(_ context.Context, _ executor.Spec, pids []int) (bool, error) {
	for _, pid := range pids {
		if alive(pid) {
			return false, nil
		}
	}
	return true, nil
}

// alive reports whether pid runs; a zombie does not, as its reaping is up to
// whoever inherited it.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	switch stat[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

func processSpec(n *atomic.Int64) func(t *testing.T, cmd ...string) executor.Spec {
	return func(t *testing.T, cmd ...string) executor.Spec {
		return executor.Spec{
			LeaseID: fmt.Sprintf("proc-%d", n.Add(1)),
			Owner:   "dev-test",
			Command: cmd,
			Dir:     t.TempDir(),
		}
	}
}

func TestProcessConformance(t *testing.T) {
	var n atomic.Int64
	executortest.Run(t,
		func(t *testing.T) executortest.Starter {
			return processChecker{&executor.Process{Grace: 2 * time.Second}}
		},
		processSpec(&n))
}

// syncBuffer is a bytes.Buffer that the executor's copiers may write to
// while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// run starts s on p, waits for it and returns its exit code and stdout.
func run(t *testing.T, p *executor.Process, s executor.Spec) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	s.Stdout = &out
	task, err := p.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	code, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return code, out.String()
}

func TestProcessEnvironment(t *testing.T) {
	t.Setenv("IOG_WORKER_SECRET", "must-not-leak")
	p := &executor.Process{}
	tests := []struct {
		name string
		gpus []string
		env  []string
		want string
	}{
		{"no gpus hides them", nil, nil, "cuda=[] secret=[]"},
		{"gpus listed", []string{"GPU-a", "GPU-b"}, nil, "cuda=[GPU-a,GPU-b] secret=[]"},
		{"spec cannot widen gpus", []string{"GPU-a"}, []string{"CUDA_VISIBLE_DEVICES=all"}, "cuda=[GPU-a] secret=[]"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := executor.Spec{
				LeaseID: fmt.Sprintf("env-%d", i),
				Command: []string{"sh", "-c", `echo "cuda=[$CUDA_VISIBLE_DEVICES] secret=[$IOG_WORKER_SECRET]"`},
				GPUs:    tc.gpus,
				Env:     tc.env,
			}
			code, out := run(t, p, s)
			if code != 0 || strings.TrimSpace(out) != tc.want {
				t.Errorf("got %d %q, want 0 %q", code, out, tc.want)
			}
		})
	}
}

func TestProcessDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := executor.Spec{LeaseID: "dir", Command: []string{"pwd"}, Dir: dir}
	code, out := run(t, &executor.Process{}, s)
	if code != 0 || strings.TrimSpace(out) != dir {
		t.Errorf("pwd = %d %q, want 0 %q", code, out, dir)
	}
}

func TestProcessStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		spec     executor.Spec
		notFound bool
	}{
		{"empty command", t.Context(), executor.Spec{LeaseID: "e1"}, false},
		{"binary not in PATH", t.Context(), executor.Spec{LeaseID: "e2", Command: []string{"iog-no-such-binary"}}, true},
		{"spec PATH is used", t.Context(), executor.Spec{LeaseID: "e3", Command: []string{"sh"}, Env: []string{"PATH=" + dir}}, true},
		{"missing path", t.Context(), executor.Spec{LeaseID: "e4", Command: []string{filepath.Join(dir, "nope")}}, true},
		{"not executable", t.Context(), executor.Spec{LeaseID: "e5", Command: []string{notExec}}, true},
		{"bad lease id", t.Context(), executor.Spec{LeaseID: "a/b", Command: []string{"true"}}, false},
		{"cancelled ctx", cancelled, executor.Spec{LeaseID: "e6", Command: []string{"true"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, err := (&executor.Process{}).Start(tc.ctx, tc.spec)
			if err == nil {
				_ = task.Stop(t.Context())
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "executor: start "+tc.spec.LeaseID+": ") {
				t.Errorf("error %q is not wrapped with the operation", err)
			}
			if got := errors.Is(err, exec.ErrNotFound); got != tc.notFound {
				t.Errorf("errors.Is(%v, exec.ErrNotFound) = %v, want %v", err, got, tc.notFound)
			}
			var se *executor.SpecError
			if tc.notFound && !errors.As(err, &se) {
				t.Errorf("error %v is not a SpecError", err)
			}
		})
	}
}

// A SIGTERM-proof workload is killed after the grace period, or at once when
// Stop's ctx has already ended.
func TestProcessStopEscalates(t *testing.T) {
	tests := []struct {
		name      string
		grace     time.Duration
		cancelled bool
	}{
		{"after grace", 100 * time.Millisecond, false},
		{"ctx already ended", time.Minute, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			s := executor.Spec{
				LeaseID: "stubborn",
				Command: []string{"sh", "-c", `trap '' TERM; echo ready; while :; do sleep 1; done`},
				Stdout:  &out,
			}
			task, err := (&executor.Process{Grace: tc.grace}).Start(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for out.String() != "ready\n" {
				if time.Now().After(deadline) {
					t.Fatalf("output %q, want ready", out.String())
				}
				time.Sleep(10 * time.Millisecond) // polling with a deadline
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancelled {
				cancel()
			}
			defer cancel()
			if err := task.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer wcancel()
			if code, err := task.Wait(wctx); code != 128+9 || err != nil {
				t.Errorf("Wait = %d, %v; want 137 (SIGKILL), nil", code, err)
			}
		})
	}
}

// A background child that outlives its shell is killed with it, and does not
// hold Wait hostage through the stdout it inherited.
func TestProcessLeftoverChildrenKilledOnExit(t *testing.T) {
	var out syncBuffer
	s := executor.Spec{
		LeaseID: "leftover",
		Command: []string{"sh", "-c", `sleep 300 & echo $!`},
		Stdout:  &out,
	}
	task, err := (&executor.Process{}).Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if code, err := task.Wait(ctx); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v; want 0, nil", code, err)
	}
	var pid int
	if _, err := fmt.Sscan(out.String(), &pid); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d still alive after its shell exited", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}
