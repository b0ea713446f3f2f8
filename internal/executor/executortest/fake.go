package executortest

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/iognet/iog/internal/executor"
)

// StoppedCode is the exit code a Fake task reports when Stop ends it: a
// process killed by SIGTERM, as the real executors report it.
const StoppedCode = 128 + 15

// Script is what one Fake task does. The zero Script exits 0 at once with no
// output.
type Script struct {
	Stdout, Stderr string // written to the Spec's writers when the task starts
	ExitCode       int    // the code it exits with by itself
	// RunUntilStopped keeps the task running until Stop (which reports
	// StoppedCode) or FakeTask.Exit, instead of exiting at once with ExitCode.
	RunUntilStopped bool
	StartErr        error // Start fails with this error (wrapped as the real executors do)
	StopErr         error // Stop fails with this error and the task keeps running
}

// Fake is an executor that runs nothing: each Start follows a Script. It is
// safe for concurrent use.
type Fake struct {
	// Script decides what a started task does; nil runs every task until it
	// is stopped, as a cluster node would.
	Script func(executor.Spec) Script

	mu    sync.Mutex
	tasks []*FakeTask
}

// Start validates s like the real executors, then follows the Script.
func (f *Fake) Start(ctx context.Context, s executor.Spec) (executor.Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, err)
	}
	if len(s.Command) == 0 && s.Image == "" {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, &executor.SpecError{Field: "Command", Problem: "and Image are both empty"})
	}
	sc := Script{RunUntilStopped: true}
	if f.Script != nil {
		sc = f.Script(s)
	}
	if sc.StartErr != nil {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, sc.StartErr)
	}
	t := &FakeTask{Spec: s, script: sc, done: make(chan struct{})}
	f.mu.Lock()
	f.tasks = append(f.tasks, t)
	f.mu.Unlock()
	write(s.Stdout, sc.Stdout)
	write(s.Stderr, sc.Stderr)
	if !sc.RunUntilStopped {
		t.exit(sc.ExitCode, false)
	}
	return t, nil
}

func write(w io.Writer, s string) {
	if w != nil && s != "" {
		_, _ = io.WriteString(w, s)
	}
}

// Tasks returns every task started so far, in order.
func (f *Fake) Tasks() []*FakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*FakeTask(nil), f.tasks...)
}

// Task returns the latest task started for leaseID, or nil.
func (f *Fake) Task(leaseID string) *FakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.tasks) - 1; i >= 0; i-- {
		if f.tasks[i].Spec.LeaseID == leaseID {
			return f.tasks[i]
		}
	}
	return nil
}

// FakeTask is a task started by a Fake.
type FakeTask struct {
	Spec executor.Spec // as given to Start; do not modify

	script Script

	mu      sync.Mutex
	stopped bool // Stop ended it
	stops   int  // Stop calls, failed ones included
	code    int
	reason  string // why Kill ended it
	done    chan struct{}
}

// Kill makes a running task end now with code as if the executor had killed
// it at one of its limits, for reason (what Killed then says).
func (t *FakeTask) Kill(code int, reason string) {
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		return
	default:
	}
	t.reason = reason
	t.mu.Unlock()
	t.exit(code, false)
}

// Killed implements executor.Task.
func (t *FakeTask) Killed() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

// Exit makes a running task exit now with code, as if the workload had ended
// by itself. It does nothing to a task that has already ended.
func (t *FakeTask) Exit(code int) { t.exit(code, false) }

func (t *FakeTask) exit(code int, stopped bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return
	default:
	}
	t.code, t.stopped = code, stopped
	close(t.done)
}

// Done is closed when the task has ended.
func (t *FakeTask) Done() <-chan struct{} { return t.done }

// Stopped reports whether Stop ended the task.
func (t *FakeTask) Stopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// Stops reports how many times Stop was called, failed calls included.
func (t *FakeTask) Stops() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stops
}

// Wait implements executor.Task.
func (t *FakeTask) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
	default:
		select {
		case <-t.done:
		case <-ctx.Done():
			return -1, fmt.Errorf("executor: wait %s: %w", t.Spec.LeaseID, ctx.Err())
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.code, nil
}

// Stop implements executor.Task: it ends a running task with StoppedCode
// unless the Script's StopErr is set.
func (t *FakeTask) Stop(ctx context.Context) error {
	t.mu.Lock()
	t.stops++
	t.mu.Unlock()
	if t.script.StopErr != nil {
		return fmt.Errorf("executor: stop %s: %w", t.Spec.LeaseID, t.script.StopErr)
	}
	t.exit(StoppedCode, true)
	return nil
}
