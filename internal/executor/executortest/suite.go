// Package executortest holds the conformance suite that every executor must
// pass, a scripted Fake executor for the worker's unit tests, and helpers for
// integration tests that need a container image without a registry.
package executortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/iogtest"
)

// Starter is what the suite needs of an executor.
type Starter interface {
	Start(context.Context, executor.Spec) (executor.Task, error)
}

// Checker is implemented by the Starter given to Run, so that the suite can
// see past the Task interface after Stop or a failed Start.
type Checker interface {
	// Gone reports whether nothing started for spec is left: the processes
	// whose pids the workload printed (in its own pid namespace; none after a
	// failed Start) for a process executor, the container for Docker.
	Gone(ctx context.Context, spec executor.Spec, pids []int) (bool, error)
}

// The suite's workloads. They are shell scripts so that every real executor
// can run them; the Fake's own test maps them to scripted behaviour.
const (
	scriptOutput   = `echo out-line; echo err-line >&2`
	scriptEnv      = `echo "IOG_SUITE_VAR=$IOG_SUITE_VAR"`
	scriptExit0    = `exit 0`
	scriptExit7    = `exit 7`
	scriptExit3    = `exit 3`
	scriptChildren = `sleep 300 & echo "$$ $!"; wait`
	scriptLong     = `echo ready; sleep 300`
	missingBinary  = "/nonexistent/iog-suite-no-such-binary"
	suiteEnvValue  = "value with spaces=42"
)

// timeout bounds every step; a slow Docker engine on a busy machine needs a
// generous one, and a passing run never waits for it.
const timeout = 60 * time.Second

// Run runs the conformance suite. newExec returns a fresh executor, which must
// also implement Checker; spec returns a startable Spec (unique LeaseID, Owner,
// Image or Dir as the executor needs) that runs cmd. The suite sets the Spec's
// Stdout, Stderr and Env itself.
func Run(t *testing.T, newExec func(t *testing.T) Starter, spec func(t *testing.T, cmd ...string) executor.Spec) {
	sh := func(t *testing.T, script string) executor.Spec {
		return spec(t, "sh", "-c", script)
	}

	t.Run("output captured", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptOutput)
		out, errOut := capture(&s)
		task := start(t, ex, s)
		code := waitExit(t, task)
		if code != 0 {
			t.Errorf("exit code = %d, want 0", code)
		}
		if got := out.String(); got != "out-line\n" {
			t.Errorf("stdout = %q, want %q", got, "out-line\n")
		}
		if got := errOut.String(); got != "err-line\n" {
			t.Errorf("stderr = %q, want %q", got, "err-line\n")
		}
	})

	t.Run("nil writers", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptOutput)
		s.Stdout, s.Stderr = nil, nil
		task := start(t, ex, s)
		if code := waitExit(t, task); code != 0 {
			t.Errorf("exit code = %d, want 0", code)
		}
	})

	t.Run("env vars visible", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptEnv)
		s.Env = append(s.Env, "IOG_SUITE_VAR="+suiteEnvValue)
		out, _ := capture(&s)
		task := start(t, ex, s)
		if code := waitExit(t, task); code != 0 {
			t.Errorf("exit code = %d, want 0", code)
		}
		if got, want := out.String(), "IOG_SUITE_VAR="+suiteEnvValue+"\n"; got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
	})

	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"exit code zero", scriptExit0, 0},
		{"exit code non-zero", scriptExit7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := newExec(t)
			s := sh(t, tc.script)
			capture(&s)
			task := start(t, ex, s)
			if code := waitExit(t, task); code != tc.want {
				t.Errorf("exit code = %d, want %d", code, tc.want)
			}
		})
	}

	t.Run("wait after exit repeats the result", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptExit3)
		capture(&s)
		task := start(t, ex, s)
		for i := range 2 {
			if code := waitExit(t, task); code != 3 {
				t.Errorf("Wait #%d: exit code = %d, want 3", i+1, code)
			}
		}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				if code, err := task.Wait(ctx); code != 3 || err != nil {
					t.Errorf("concurrent Wait #%d = %d, %v; want 3, nil", i+1, code, err)
				}
			})
		}
		wg.Wait()
		// Stop after a natural exit changes nothing.
		stop(t, task)
		if code := waitExit(t, task); code != 3 {
			t.Errorf("Wait after Stop: exit code = %d, want 3", code)
		}
	})

	t.Run("wait honours its context", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptLong)
		out, _ := capture(&s)
		task := start(t, ex, s)
		waitOutput(t, out, "ready\n")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		code, err := task.Wait(ctx)
		if !errors.Is(err, context.Canceled) || code != -1 {
			t.Errorf("Wait(cancelled ctx) = %d, %v; want -1, context.Canceled", code, err)
		}
		stop(t, task)
	})

	t.Run("stop kills the task and its children", func(t *testing.T) {
		ex := newExec(t)
		checker := mustChecker(t, ex)
		s := sh(t, scriptChildren)
		out, _ := capture(&s)
		task := start(t, ex, s)
		line := waitOutput(t, out, "\n")
		var pids []int
		for f := range strings.FieldsSeq(line) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("workload printed %q, want two pids", line)
			}
			pids = append(pids, pid)
		}
		if len(pids) != 2 {
			t.Fatalf("workload printed %q, want two pids", line)
		}
		stop(t, task)
		// After Stop returns, Wait must be prompt: no long deadline here.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, err := task.Wait(ctx)
		if err != nil || code == 0 {
			t.Errorf("Wait after Stop = %d, %v; want a non-zero code and no error", code, err)
		}
		waitGone(t, checker, s, pids)
	})

	t.Run("stop is idempotent", func(t *testing.T) {
		ex := newExec(t)
		s := sh(t, scriptLong)
		out, _ := capture(&s)
		task := start(t, ex, s)
		waitOutput(t, out, "ready\n")
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { stop(t, task) })
		}
		wg.Wait()
		first := waitExit(t, task)
		stop(t, task)
		if code := waitExit(t, task); code != first {
			t.Errorf("Wait after a second Stop = %d, want %d", code, first)
		}
	})

	t.Run("bad spec", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			spec func(t *testing.T) executor.Spec
		}{
			{"missing binary", func(t *testing.T) executor.Spec { return spec(t, missingBinary) }},
			{"no lease id", func(t *testing.T) executor.Spec {
				s := sh(t, scriptExit0)
				s.LeaseID = ""
				return s
			}},
			{"malformed env", func(t *testing.T) executor.Spec {
				s := sh(t, scriptExit0)
				s.Env = append(s.Env, "NO_EQUALS_SIGN")
				return s
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ex := newExec(t)
				checker := mustChecker(t, ex)
				s := tc.spec(t)
				capture(&s)
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				task, err := ex.Start(ctx, s)
				if err == nil {
					_ = task.Stop(ctx)
					t.Fatalf("Start(%s) succeeded, want an error", tc.name)
				}
				if task != nil {
					t.Errorf("Start returned a task with its error")
				}
				if s.LeaseID != "" {
					waitGone(t, checker, s, nil)
				}
			})
		}
	})
}

// buffer is a bytes.Buffer safe for the executor's writers and the test's reads.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func capture(s *executor.Spec) (out, errOut *buffer) {
	out, errOut = &buffer{}, &buffer{}
	s.Stdout, s.Stderr = out, errOut
	return out, errOut
}

func start(t *testing.T, ex Starter, s executor.Spec) executor.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	task, err := ex.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := task.Stop(ctx); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	return task
}

func stop(t *testing.T, task executor.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := task.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// waitExit waits for the task to end on its own and returns its exit code.
func waitExit(t *testing.T, task executor.Task) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return code
}

// waitOutput polls until b holds suffix-terminated output and returns it.
func waitOutput(t *testing.T, b *buffer, suffix string) string {
	t.Helper()
	var got string
	poll(t, func() (bool, error) {
		got = b.String()
		return strings.HasSuffix(got, suffix), nil
	}, func() string { return fmt.Sprintf("output %q never ended in %q", got, suffix) })
	return got
}

func waitGone(t *testing.T, c Checker, s executor.Spec, pids []int) {
	t.Helper()
	poll(t, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return c.Gone(ctx, s, pids)
	}, func() string { return fmt.Sprintf("lease %s (pids %v) still has something running", s.LeaseID, pids) })
}

func mustChecker(t *testing.T, ex Starter) Checker {
	t.Helper()
	c, ok := ex.(Checker)
	if !ok {
		t.Fatalf("%T does not implement executortest.Checker; wrap it so the suite can verify that nothing is left", ex)
	}
	return c
}

// poll calls cond until it holds or the suite's timeout passes (iogtest.Poll); an error from
// cond fails the test at once.
func poll(t *testing.T, cond func() (bool, error), msg func() string) {
	t.Helper()
	iogtest.Poll(t, timeout, "executor", func() error {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", msg(), err)
		}
		if !ok {
			return errors.New(msg())
		}
		return nil
	})
}
