package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/executor"
)

// runArray runs a job array node: it pulls a task from the coordinator, runs the command with
// IOG_TASK_INDEX, IOG_TASK_ATTEMPT and IOG_TASKS set (in the node's one work directory, so
// that outputs add up), reports the task's exit code and pulls again. A task's failure is
// the task's: the node carries on. When no task is left the node uploads its outputs and ends
// with exit code 0. When the node is stopped meanwhile the running task is not reported: the
// lease's end puts it back to pending on the coordinator.
func (w *Worker) runArray(ctx context.Context, a api.Assignment, ex Starter, spec executor.Spec, dir string, logs *shipper) {
	w.report(ctx, a.LeaseID, api.LeaseStatusRequest{State: string(wire.LeaseRunning)})
	w.wg.Go(func() { logs.run(ctx) })
	var refused *api.NextTask // the last task whose report the coordinator refused
	for {
		if w.nodeStopping(a.LeaseID) || ctx.Err() != nil {
			w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseStopped), Message: "stopped between tasks"})
			return
		}
		var next api.NextTask
		err := w.retry(ctx, "next task", func() (err error) {
			next, err = w.cl.NextTask(ctx, a.LeaseID)
			return err
		})
		if err != nil {
			msg := "could not get the next task: " + err.Error()
			logs.system(msg)
			w.collectOutputs(ctx, a, dir, logs)
			w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: msg})
			return
		}
		if next.None {
			logs.system("no task left")
			w.collectOutputs(ctx, a, dir, logs)
			zero := 0
			w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseExited), ExitCode: &zero})
			return
		}
		if refused != nil && *refused == next {
			// Never run one attempt twice: the coordinator disagrees with this worker about it.
			msg := fmt.Sprintf("the coordinator handed back task %d attempt %d after refusing its report", next.Index, next.Attempt)
			logs.system(msg)
			w.collectOutputs(ctx, a, dir, logs)
			w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: msg})
			return
		}
		refused = nil
		r, stopped := w.runTask(ctx, a, ex, spec, next, logs)
		if stopped {
			continue
		}
		err = w.retry(ctx, "report task", func() error { return w.cl.ReportTask(ctx, a.LeaseID, next.Index, r) })
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
				refused = &next
			}
			w.cfg.Log.Warn("report task", "lease", a.LeaseID, "task", next.Index, "err", err)
		}
	}
}

// runTask runs one attempt of a task; stopped reports that the node was stopped meanwhile
// (its result is then not the task's).
func (w *Worker) runTask(ctx context.Context, a api.Assignment, ex Starter, spec executor.Spec, t api.NextTask, logs *shipper) (api.TaskReport, bool) {
	r := api.TaskReport{Attempt: t.Attempt, ExitCode: -1}
	spec.Env = append(slices.Clone(spec.Env),
		"IOG_TASK_INDEX="+strconv.Itoa(t.Index), "IOG_TASK_ATTEMPT="+strconv.Itoa(t.Attempt), "IOG_TASKS="+strconv.Itoa(t.Tasks))
	logs.system(fmt.Sprintf("task %d (attempt %d) started", t.Index, t.Attempt))
	task, err := ex.Start(ctx, spec)
	if err != nil {
		r.Message = "failed to start: " + err.Error()
		logs.system(fmt.Sprintf("task %d: %s", t.Index, r.Message))
		return r, false
	}
	w.mu.Lock()
	n := w.tasks[a.LeaseID]
	stopping := n == nil || n.stopping
	if n != nil {
		n.task = task
	}
	w.mu.Unlock()
	if stopping {
		_ = task.Stop(context.WithoutCancel(ctx))
	}
	code, werr := task.Wait(context.WithoutCancel(ctx))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	if serr := task.Stop(sctx); serr != nil {
		w.cfg.Log.Error("clean up task", "lease", a.LeaseID, "task", t.Index, "err", serr)
	}
	cancel()
	if w.nodeStopping(a.LeaseID) || ctx.Err() != nil {
		return r, true
	}
	switch reason := task.Killed(); {
	case reason != "":
		r.Message = reason
		if code >= 0 {
			r.ExitCode = code
		}
	case werr != nil && code < 0:
		r.Message = "wait: " + werr.Error()
	default:
		r.ExitCode = code
	}
	msg := fmt.Sprintf("task %d (attempt %d) exited with code %d", t.Index, t.Attempt, r.ExitCode)
	if r.Message != "" {
		msg += ": " + r.Message
	}
	logs.system(msg)
	return r, false
}

// nodeStopping reports whether the lease's node is being stopped (or is gone).
func (w *Worker) nodeStopping(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.tasks[id]
	return n == nil || n.stopping
}
